//! The worker's Prometheus metrics, recorded through the `metrics` facade:
//! they cost nothing until a program installs a recorder (`silo events run
//! --metrics-addr` serves them over HTTP).
//!
//! | name | kind | labels | what (embedded bus) | on the nats bus |
//! |---|---|---|---|---|
//! | `silo_events_delivered_total` | counter | publisher, consumer, type | events written into a consumer's inbox | the same, written by the consumer's delivery |
//! | `silo_events_published_total` | counter | publisher, type | events seen committed in a publisher's outbox | events the stream acknowledged |
//! | `silo_events_retired_total` | counter | publisher, type | delivered outbox rows deleted or marked sent | the same: the rows the stream acknowledged |
//! | `silo_events_dead_total` | counter | publisher, type | outbox rows seen going `dead` while the worker ran | outbox rows the relay marked `dead` |
//! | `silo_events_outbox_dead` | gauge | publisher, type | `dead` outbox rows now | the same, counted by the relay |
//! | `silo_events_backlog` | gauge | publisher, consumer | events not yet in the consumer's inbox | messages of the route's types the consumer's durables have not seen acked (`num_pending` + `num_ack_pending`) |
//! | `silo_events_lag_seconds` | gauge | publisher, consumer | age of the oldest of them (0: none) | not recorded |
//! | `silo_events_batch_seconds` | histogram | publisher, consumer | one batch, begin to commit | a relay pass that read events (consumer "") or a delivery's inbox write (publisher "") |
//! | `silo_events_errors_total` | counter | publisher, consumer | failed attempts (consumer is empty for a publisher's own work) | a relay's (consumer "") or a delivery's (publisher "") |
//! | `silo_events_route_up` | gauge | publisher, consumer | 1 while a route delivers, 0 while it fails | per relay (consumer "") and per delivery (publisher "") |
//!
//! On the nats bus the relay and the delivery are separate (and may run in
//! separate sidecars), so what they do alone is labelled with the other
//! side empty.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub const DELIVERED: &str = "silo_events_delivered_total";
pub const PUBLISHED: &str = "silo_events_published_total";
pub const RETIRED: &str = "silo_events_retired_total";
pub const DEAD: &str = "silo_events_dead_total";
pub const OUTBOX_DEAD: &str = "silo_events_outbox_dead";
pub const BACKLOG: &str = "silo_events_backlog";
pub const LAG: &str = "silo_events_lag_seconds";
pub const BATCH_SECONDS: &str = "silo_events_batch_seconds";
pub const ERRORS: &str = "silo_events_errors_total";
pub const ROUTE_UP: &str = "silo_events_route_up";

/// Bucket bounds (seconds) for [`BATCH_SECONDS`]: a batch takes from well
/// under a millisecond to seconds on a loaded store.
pub const BATCH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Gives each metric its help text and unit, for the recorder installed.
pub fn describe() {
    describe_counter!(
        DELIVERED,
        Unit::Count,
        "Events written into a consumer's inbox"
    );
    describe_counter!(
        PUBLISHED,
        Unit::Count,
        "Events seen committed in a publisher's outbox"
    );
    describe_counter!(
        RETIRED,
        Unit::Count,
        "Delivered outbox rows deleted or marked sent"
    );
    describe_counter!(
        DEAD,
        Unit::Count,
        "Outbox rows seen going dead while the worker ran"
    );
    describe_gauge!(OUTBOX_DEAD, Unit::Count, "Dead outbox rows");
    describe_gauge!(
        BACKLOG,
        Unit::Count,
        "Events not yet in the consumer's inbox"
    );
    describe_gauge!(
        LAG,
        Unit::Seconds,
        "Age of the oldest event not yet in the consumer's inbox"
    );
    describe_histogram!(
        BATCH_SECONDS,
        Unit::Seconds,
        "One delivery batch, begin to commit"
    );
    describe_counter!(ERRORS, Unit::Count, "Failed attempts");
    describe_gauge!(
        ROUTE_UP,
        Unit::Count,
        "1 while a route delivers, 0 while it fails"
    );
}
