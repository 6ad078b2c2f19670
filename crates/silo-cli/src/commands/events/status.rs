//! `silo events status`: per service, outbox backlog, inbox progress and
//! how far delivery lags (embedded bus: the cursors; nats bus: the
//! durables' pending messages), each store read as its service.

use serde_json::{Value, json};
use silo_events::EventsError;
use silo_events::relay::nats::NatsConfig;
use silo_events::status::{Behind, Status};
use silo_manifest::{Bus, Service};

use super::{age, event_services};
use crate::cli::EventsStatusArgs;
use crate::context::{
    CmdResult, Context, describe, exit_code_all, print_json, progress, store_report, table,
};

pub async fn status(ctx: &Context, args: &EventsStatusArgs) -> CmdResult {
    let services = event_services(ctx, &args.services)?;
    let bar = progress(services.len(), "reading");
    let nats = (ctx.manifest.events.bus == Bus::Nats).then(|| NatsConfig::from_env(&ctx.manifest));
    let nats = &nats;
    let results = ctx
        .stores
        .for_each(
            &services,
            |_, service| async move {
                silo_events::ensure(&ctx.stores, service).await?;
                let mut st =
                    silo_events::status::status(&ctx.stores, &ctx.manifest, service).await?;
                if let Some(config) = nats {
                    st.lag = silo_events::status::nats_lag(config, &ctx.manifest, service).await;
                }
                Ok(st)
            },
            |_, _| bar.inc(1),
        )
        .await;
    bar.finish_and_clear();

    if args.json {
        print_json(&json!({
            "bus": ctx.manifest.events.bus.as_str(),
            "services": results.iter().map(|(s, r)| service_json(s, r)).collect::<Vec<_>>(),
        }));
    } else {
        print_tables(ctx.manifest.events.bus, &results);
    }
    // Each error decides the code (2 for a store that cannot be reached),
    // a lag's as well as a service's.
    let lag_errors = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|st| st.lag.iter().filter_map(|l| l.behind.as_ref().err()));
    let errors = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .chain(lag_errors);
    Ok(exit_code_all(errors))
}

fn service_json(service: &Service, result: &Result<Status, EventsError>) -> Value {
    let Ok(st) = result else {
        return json!({
            "service": service.name,
            "outbox": null,
            "inbox": null,
            "lag": [],
            "error": result.as_ref().err().map(describe),
        });
    };
    json!({
        "service": service.name,
        "outbox": st.outbox.as_ref().map(|o| json!({
            "pending": o.pending,
            "oldest_pending_secs": o.oldest_pending_secs,
            "dead": o.dead,
            "sent": o.sent,
        })),
        "inbox": st.inbox.as_ref().map(|i| json!({
            "pending": i.pending,
            "retrying": i.retrying,
            "done": i.done,
            "dead": i.dead,
        })),
        "lag": st.lag.iter().map(|l| match &l.behind {
            Ok(Behind { events, oldest_secs }) => json!({
                "publisher": l.publisher,
                "events": events,
                "oldest_secs": oldest_secs,
            }),
            Err(e) => json!({ "publisher": l.publisher, "error": describe(e) }),
        }).collect::<Vec<_>>(),
        "error": null,
    })
}

fn print_tables(bus: Bus, results: &[(&Service, Result<Status, EventsError>)]) {
    let dash = || "-".to_string();
    let mut t = table(&[
        "service",
        "outbox pending",
        "oldest unsent",
        "outbox dead",
        "inbox pending",
        "retrying",
        "done",
        "dead",
    ]);
    for (s, r) in results {
        let mut row = vec![s.name.clone()];
        match r {
            Ok(st) => {
                match &st.outbox {
                    Some(o) => row.extend([
                        o.pending.to_string(),
                        o.oldest_pending_secs.map(age).unwrap_or_else(dash),
                        o.dead.to_string(),
                    ]),
                    None => row.extend([dash(), dash(), dash()]),
                }
                match &st.inbox {
                    Some(i) => row.extend([
                        i.pending.to_string(),
                        i.retrying.to_string(),
                        i.done.to_string(),
                        i.dead.to_string(),
                    ]),
                    None => row.extend([dash(), dash(), dash(), dash()]),
                }
            }
            Err(_) => row.extend(std::iter::repeat_n("?".to_string(), 7)),
        }
        t.add_row(row);
    }
    outln!("{t}");

    let lags: Vec<_> = results
        .iter()
        .filter_map(|(s, r)| r.as_ref().ok().map(|st| (s, st)))
        .flat_map(|(s, st)| st.lag.iter().map(move |l| (s, l)))
        .collect();
    if !lags.is_empty() {
        let mut t = table(&["consumer", "publisher", "behind", "oldest"]);
        for (s, l) in &lags {
            let (behind, oldest) = match &l.behind {
                Ok(b) => (
                    b.events.to_string(),
                    b.oldest_secs.map(age).unwrap_or_else(dash),
                ),
                Err(_) => ("?".to_string(), "?".to_string()),
            };
            t.add_row(vec![s.name.clone(), l.publisher.clone(), behind, oldest]);
        }
        let source = match bus {
            Bus::Embedded => "embedded bus",
            Bus::Nats => "nats bus: messages the durables have not seen acked",
        };
        outln!("\nDelivery ({source}):\n{t}");
    }
    for (s, r) in results {
        match r {
            Err(e) => errln!("{:?}", store_report(&format!("{}: ", s.name), e)),
            Ok(st) => {
                for l in &st.lag {
                    if let Err(e) = &l.behind {
                        let prefix = format!("{}: lag behind {}: ", s.name, l.publisher);
                        errln!("{:?}", store_report(&prefix, e));
                    }
                }
            }
        }
    }
}
