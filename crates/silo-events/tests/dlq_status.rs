//! Dead letters and status, on real SQLite files and on the real
//! PostgreSQL server, each store read and changed as its own service.

mod common;

use std::collections::HashSet;

use common::*;
use silo_events::EventsError;
use silo_events::dlq::{self, Selection, Side};
use silo_events::inbox::{Backoff, Inbox};
use silo_events::relay::embedded::deliver_once;
use silo_events::status::{self, StoredTypes};

/// Handles `billing`'s ready events with a handler that fails for the
/// payloads `ns` until they are dead (max_attempts 2, no wait); the
/// others are done.
async fn kill(p: &Project, ns: &[i64]) {
    let inbox = Inbox::default()
        .with_max_attempts(2)
        .with_backoff(Backoff::NONE);
    let handled = p.handle(&inbox, 100, &ns.iter().copied().collect()).await;
    assert_eq!(handled.dead(), ns.len(), "{handled:?}");
}

#[tokio::test]
async fn a_dead_letter_is_listed_retried_and_then_delivered() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2)]).await;
        kill(&p, &[1]).await;
        let billing = p.service("billing");

        let dead = dlq::list(&p.stores, billing).await.unwrap();
        assert_eq!(dead.len(), 1, "{engine}: {dead:?}");
        let letter = &dead[0];
        assert_eq!(letter.side, Side::Inbox);
        assert_eq!(
            (letter.event_type.as_str(), letter.key.as_str()),
            ("order.placed", "a")
        );
        assert_eq!(letter.source.as_deref(), Some("orders"));
        assert_eq!(letter.attempts, Some(2));
        assert_eq!(letter.error.as_deref(), Some("refusing order 1"));
        assert!(letter.time.ends_with('Z'), "{engine}: {}", letter.time);
        // The publisher has none.
        assert!(
            dlq::list(&p.stores, p.service("orders"))
                .await
                .unwrap()
                .is_empty()
        );

        // Retry: pending again, attempts reset; the next handle delivers it.
        let id = letter.id.to_uppercase(); // ids match whatever their case
        let retried = dlq::retry(&p.stores, billing, Selection::One(&id))
            .await
            .unwrap();
        assert_eq!(retried, 1, "{engine}");
        assert_eq!(p.inbox().await[&1].0, "pending");
        assert_eq!(p.inbox().await[&1].1, 0, "{engine}: attempts reset");
        assert!(dlq::list(&p.stores, billing).await.unwrap().is_empty());
        let handled = p.handle(&Inbox::default(), 10, &none()).await;
        assert_eq!(handled.done, 1, "{engine}: {handled:?}");
        assert_eq!(p.inbox().await[&1].0, "done", "{engine}");
        assert!(p.seen().await.contains(&("a".to_string(), 1)), "{engine}");
        // An id that is not dead retries nothing.
        let again = dlq::retry(&p.stores, billing, Selection::One(&id))
            .await
            .unwrap();
        assert_eq!(again, 0, "{engine}");
    }
}

#[tokio::test]
async fn retry_all_and_drop() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2), ("c", 3)]).await;
        kill(&p, &[1, 2, 3]).await;
        let billing = p.service("billing");
        let dead = dlq::list(&p.stores, billing).await.unwrap();
        assert_eq!(dead.len(), 3, "{engine}");

        // drop removes one for good; a second drop finds nothing.
        let gone = dlq::drop(&p.stores, billing, &dead[0].id).await.unwrap();
        assert_eq!(gone, Some(Side::Inbox), "{engine}");
        assert_eq!(
            dlq::drop(&p.stores, billing, &dead[0].id).await.unwrap(),
            None
        );
        assert!(!p.inbox().await.contains_key(&1), "{engine}: row deleted");
        // A pending or done event is no dead letter: drop leaves it.
        p.deliver(&[("d", 4)]).await;
        let pending = p
            .rows("SELECT CAST(event_id AS TEXT) FROM silo_inbox WHERE state = 'pending'")
            .await;
        let pending = pending[0][0].clone().unwrap();
        assert_eq!(dlq::drop(&p.stores, billing, &pending).await.unwrap(), None);
        assert_eq!(p.inbox().await[&4].0, "pending", "{engine}");

        let retried = dlq::retry(&p.stores, billing, Selection::All)
            .await
            .unwrap();
        assert_eq!(retried, 2, "{engine}");
        let handled = p.handle(&Inbox::default(), 10, &none()).await;
        assert_eq!(handled.done, 3, "{engine}: b, c and d");
        assert!(dlq::list(&p.stores, billing).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_dead_outbox_event_is_listed_with_its_error_and_dropped_not_retried() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let orders = p.service("orders");
        let mut conn = p.connect("orders").await;
        let id = silo_events::publish(&mut conn, "order.placed", "9", &serde_json::json!({}))
            .await
            .unwrap()
            .to_string();
        conn.close().await;
        // What the worker does to a payload its contract refuses.
        p.exec(
            "orders",
            "UPDATE silo_outbox SET state = 'dead', error = '/total: is a required property'",
        )
        .await;
        let dead = dlq::list(&p.stores, orders).await.unwrap();
        assert_eq!(dead.len(), 1, "{engine}");
        assert_eq!(dead[0].side, Side::Outbox);
        assert_eq!(dead[0].id, id);
        assert_eq!(
            dead[0].error.as_deref(),
            Some("/total: is a required property")
        );
        assert_eq!((dead[0].source.as_deref(), dead[0].attempts), (None, None));

        let refused = dlq::retry(&p.stores, orders, Selection::One(&id))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, EventsError::OutboxNotRetried { service, .. } if service == "orders"),
            "{engine}: {refused:?}"
        );
        assert_eq!(refused.exit_code(), 1);
        // `--all` leaves it alone too: it retries inbox dead letters.
        assert_eq!(
            dlq::retry(&p.stores, orders, Selection::All).await.unwrap(),
            0
        );
        assert_eq!(
            dlq::drop(&p.stores, orders, &id).await.unwrap(),
            Some(Side::Outbox),
            "{engine}"
        );
        assert!(dlq::list(&p.stores, orders).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn status_counts_backlog_progress_and_lag() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let (orders, billing) = (p.service("orders"), p.service("billing"));
        let empty = status::status(&p.stores, &p.manifest, orders)
            .await
            .unwrap();
        assert_eq!(empty.outbox.unwrap().pending, 0);
        assert!(empty.inbox.is_none(), "orders consumes nothing");

        p.deliver(&[("a", 1), ("b", 2), ("c", 3)]).await;
        // Three more, not delivered yet: the lag.
        let mut conn = p.connect("orders").await;
        for key in ["d", "e", "f"] {
            silo_events::publish(&mut conn, "order.placed", key, &serde_json::json!({"n": 0}))
                .await
                .unwrap();
        }
        conn.close().await;
        // 1 and 2 fail and wait; 3 is done; then 1 fails for good.
        let flaky = Inbox::default().with_backoff(LONG);
        p.handle(&flaky, 10, &HashSet::from([1, 2])).await;
        p.exec(
            "billing",
            "UPDATE silo_inbox SET next_attempt_at = NULL WHERE key = 'a'",
        )
        .await;
        kill(&p, &[1]).await;

        let out = status::status(&p.stores, &p.manifest, orders)
            .await
            .unwrap()
            .outbox
            .unwrap();
        // The embedded relay keeps delivered rows pending until retention
        // runs; all six are in the outbox.
        assert_eq!(out.pending, 6, "{engine}: {out:?}");
        assert!(
            out.oldest_pending_secs.is_some_and(|s| s >= 0.0),
            "{engine}"
        );
        assert_eq!((out.dead, out.sent), (0, 0));

        let st = status::status(&p.stores, &p.manifest, billing)
            .await
            .unwrap();
        assert!(st.outbox.is_none(), "billing publishes nothing");
        let inbox = st.inbox.unwrap();
        assert_eq!(
            (inbox.pending, inbox.retrying, inbox.done, inbox.dead),
            (1, 1, 1, 1),
            "{engine}: {inbox:?}"
        );
        assert_eq!(st.lag.len(), 1);
        assert_eq!(st.lag[0].publisher, "orders");
        let behind = st.lag[0].behind.as_ref().unwrap();
        assert_eq!(behind.events, 3, "{engine}: {behind:?}");
        assert!(behind.oldest_secs.is_some_and(|s| s >= 0.0));

        // Delivered: no lag. (On PostgreSQL a transaction of another test
        // on the server can hold delivery back for a moment: a bounded
        // number of passes.)
        let mut passes = 0;
        let st = loop {
            deliver_once(
                &p.stores,
                &p.manifest,
                &silo_events::contracts::Contracts::none(),
            )
            .await
            .unwrap();
            let st = status::status(&p.stores, &p.manifest, billing)
                .await
                .unwrap();
            let behind = st.lag[0].behind.as_ref().unwrap();
            if behind.events == 0 {
                break st;
            }
            passes += 1;
            assert!(passes < 200, "{engine}: still behind: {behind:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let behind = st.lag[0].behind.as_ref().unwrap();
        assert_eq!((behind.events, behind.oldest_secs), (0, None), "{engine}");
        assert_eq!(st.inbox.unwrap().pending, 4, "{engine}");

        // A publisher that cannot be reached is an error in that lag only.
        p.break_store("orders");
        let st = status::status(&p.stores, &p.manifest, billing)
            .await
            .unwrap();
        assert_eq!(st.inbox.unwrap().pending, 4, "{engine}");
        let err = st.lag[0].behind.as_ref().unwrap_err();
        assert!(matches!(err, EventsError::Store(_)), "{engine}: {err:?}");
        assert!(
            status::status(&p.stores, &p.manifest, orders)
                .await
                .is_err()
        );
        p.mend("orders");
    }
}

#[tokio::test]
async fn status_lag_starts_over_with_a_cursor_of_another_origin() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2)]).await;
        p.exec(
            "billing",
            "UPDATE silo_inbox_cursor SET origin = 'elsewhere'",
        )
        .await;
        let st = status::status(&p.stores, &p.manifest, p.service("billing"))
            .await
            .unwrap();
        // As the relay would: from the beginning of the outbox.
        assert_eq!(st.lag[0].behind.as_ref().unwrap().events, 2, "{engine}");
    }
}

#[tokio::test]
async fn stored_types_lists_each_tables_types() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2)]).await;
        p.exec(
            "orders",
            "INSERT INTO silo_outbox (type, key, payload) VALUES ('payment.made', '1', '{}')",
        )
        .await;
        let orders = status::stored_types(&p.stores, p.service("orders"))
            .await
            .unwrap();
        assert_eq!(
            orders,
            Some(StoredTypes {
                outbox: vec![("order.placed".into(), 2), ("payment.made".into(), 1)],
                inbox: vec![],
            }),
            "{engine}"
        );
        let billing = status::stored_types(&p.stores, p.service("billing"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(billing.inbox, vec![("order.placed".into(), 2)], "{engine}");
    }
}
