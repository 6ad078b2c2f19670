//! Consuming, on real SQLite files and on the real PostgreSQL server, each
//! store reached as its own service: the Rust helper ([`Inbox`]) and the
//! plain SQL of docs/events.md ([`ConsumeSql`]).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;
use silo_events::EventsError;
use silo_events::inbox::{Backoff, ConsumeSql, Failed, Handled, Inbox};
use silo_store::ServiceConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

#[tokio::test]
async fn handle_commits_the_handlers_writes_with_the_done_mark() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2), ("c", 3)]).await;
        let inbox = Inbox::default();
        let handled = p.handle(&inbox, 10, &none()).await;
        assert_eq!(handled.done, 3, "{engine}: {handled:?}");
        assert!(handled.failures.is_empty(), "{engine}");
        assert_eq!(
            p.seen().await,
            [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)],
            "{engine}"
        );
        let states = p.inbox().await;
        assert!(
            states
                .values()
                .all(|(s, a, e)| s == "done" && *a == 0 && e.is_none()),
            "{engine}: {states:?}"
        );
        let stamped = p
            .rows("SELECT CAST(count(*) AS TEXT) FROM silo_inbox WHERE done_at IS NOT NULL")
            .await;
        assert_eq!(stamped[0][0].as_deref(), Some("3"), "{engine}");

        // Done events are never handled again.
        let again = p.handle(&inbox, 10, &none()).await;
        assert_eq!(again, Handled::default(), "{engine}");
        assert_eq!(p.seen().await.len(), 3, "{engine}");
    }
}

#[tokio::test]
async fn handle_takes_at_most_limit_events() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2), ("c", 3)]).await;
        let handled = p.handle(&Inbox::default(), 2, &none()).await;
        assert_eq!(handled.done, 2, "{engine}");
        assert_eq!(p.seen().await, [("a".into(), 1), ("b".into(), 2)]);
        let rest = p.handle(&Inbox::default(), 2, &none()).await;
        assert_eq!(rest.done, 1, "{engine}");
    }
}

#[tokio::test]
async fn a_failing_handler_rolls_back_its_writes_and_counts_an_attempt() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2)]).await;
        let inbox = Inbox::default().with_backoff(LONG);
        let handled = p.handle(&inbox, 10, &HashSet::from([1])).await;
        assert_eq!(handled.done, 1, "{engine}: {handled:?}");
        assert_eq!(handled.failures.len(), 1, "{engine}");
        let failure = &handled.failures[0];
        assert_eq!(failure.error, "refusing order 1");
        assert_eq!(failure.event_type, "order.placed");
        assert_eq!(
            failure.outcome,
            Failed::Retry {
                attempts: 1,
                delay: Duration::from_secs(3600)
            }
        );
        // The failed handler's row is gone with its rollback; the other
        // event's row stays.
        assert_eq!(p.seen().await, [("b".into(), 2)], "{engine}");
        let states = p.inbox().await;
        assert_eq!(
            states[&1],
            ("pending".into(), 1, Some("refusing order 1".into())),
            "{engine}"
        );
        // It waits about the backoff (an hour), counted from the store's
        // own clock.
        let wait = if engine == "postgres" {
            "SELECT CAST(extract(epoch FROM next_attempt_at - now()) AS TEXT) FROM silo_inbox WHERE attempts = 1"
        } else {
            "SELECT CAST((julianday(next_attempt_at) - julianday('now')) * 86400 AS TEXT) FROM silo_inbox WHERE attempts = 1"
        };
        let wait: f64 = p.rows(wait).await[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3000.0..=3600.5).contains(&wait), "{engine}: {wait}");
        // Not ready again yet: nothing to handle.
        let again = p.handle(&inbox, 10, &none()).await;
        assert_eq!(again, Handled::default(), "{engine}");
    }
}

#[tokio::test]
async fn a_consumer_failing_max_attempts_times_goes_dead() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1)]).await;
        // No wait between attempts: one handle runs them all.
        let inbox = Inbox::default()
            .with_max_attempts(3)
            .with_backoff(Backoff::NONE);
        let handled = p.handle(&inbox, 10, &HashSet::from([1])).await;
        let outcomes: Vec<Failed> = handled.failures.iter().map(|f| f.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Failed::Retry {
                    attempts: 1,
                    delay: Duration::ZERO
                },
                Failed::Retry {
                    attempts: 2,
                    delay: Duration::ZERO
                },
                Failed::Dead { attempts: 3 },
            ],
            "{engine}"
        );
        assert_eq!(handled.dead(), 1);
        assert_eq!(handled.done, 0);
        assert_eq!(
            p.inbox().await[&1],
            ("dead".into(), 3, Some("refusing order 1".into())),
            "{engine}"
        );
        assert!(p.seen().await.is_empty(), "{engine}");
        let next = p.rows("SELECT next_attempt_at FROM silo_inbox").await;
        assert_eq!(next[0][0], None, "{engine}: a dead event waits for nothing");
        // Dead is dead: not taken again, even by a handler that would work.
        let again = p.handle(&inbox, 10, &none()).await;
        assert_eq!(again, Handled::default(), "{engine}");
    }
}

#[tokio::test]
async fn a_key_waiting_for_a_retry_holds_its_later_events_back_and_a_dead_one_does_not() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("k", 1), ("k", 2), ("other", 3)]).await;
        let waiting = Inbox::default().with_backoff(LONG);
        let handled = p.handle(&waiting, 10, &HashSet::from([1])).await;
        // k#1 failed and waits: k#2 stays back; the other key goes on.
        assert_eq!(handled.done, 1, "{engine}: {handled:?}");
        assert_eq!(p.seen().await, [("other".into(), 3)], "{engine}");
        assert_eq!(p.inbox().await[&2].0, "pending", "{engine}");

        // Once k#1 is dead it holds nothing back: k#2 is handled.
        p.exec(
            "billing",
            "UPDATE silo_inbox SET state = 'dead', next_attempt_at = NULL WHERE attempts = 1",
        )
        .await;
        let handled = p.handle(&waiting, 10, &none()).await;
        assert_eq!(handled.done, 1, "{engine}: {handled:?}");
        assert_eq!(
            p.seen().await,
            [("other".into(), 3), ("k".into(), 2)],
            "{engine}"
        );

        // The same with a failure that kills at once: the later event of
        // its key follows in the same handle.
        p.deliver(&[("j", 4), ("j", 5)]).await;
        let once = Inbox::default().with_max_attempts(1);
        let handled = p.handle(&once, 10, &HashSet::from([4])).await;
        assert_eq!(handled.dead(), 1, "{engine}: {handled:?}");
        assert_eq!(handled.done, 1, "{engine}");
        assert_eq!(p.seen().await.last(), Some(&("j".into(), 5)), "{engine}");
    }
}

#[tokio::test]
async fn concurrent_consumers_handle_each_event_once_in_key_order() {
    const EVENTS: i64 = 60;
    const KEYS: i64 = 6;
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let events: Vec<(String, i64)> = (0..EVENTS).map(|n| ((n % KEYS).to_string(), n)).collect();
        let borrowed: Vec<(&str, i64)> = events.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        p.deliver(&borrowed).await;
        // Every 7th event fails its first attempt and is retried at once.
        let flaky: HashSet<i64> = (0..EVENTS).filter(|n| n % 7 == 0).collect();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let stores = stores(&p.manifest);
            let billing = p.service("billing").clone();
            let flaky = flaky.clone();
            // Spawned: the helper's future is Send.
            tasks.push(tokio::spawn(async move {
                let inbox = Inbox::default().with_backoff(Backoff::NONE);
                let mut conn = stores.connect_as(&billing, "test").await.unwrap();
                let mut handled = Handled::default();
                for _ in 0..2000 {
                    // Moved into the handler: a spawned task's handler
                    // owns what it uses (see Inbox::handle).
                    let flaky = flaky.clone();
                    let round = match &mut conn {
                        ServiceConnection::Postgres(c) => {
                            inbox
                                .handle(c, 5, async move |tx, e| {
                                    let fail = if e.attempts == 0 { &flaky } else { &none() };
                                    record(tx, e, fail).await
                                })
                                .await
                        }
                        ServiceConnection::Sqlite(c) => {
                            inbox
                                .handle(c, 5, async move |tx, e| {
                                    let fail = if e.attempts == 0 { &flaky } else { &none() };
                                    record(tx, e, fail).await
                                })
                                .await
                        }
                    }
                    .unwrap();
                    handled.done += round.done;
                    handled.failures.extend(round.failures);
                    let pending: i64 = match &mut conn {
                        ServiceConnection::Postgres(c) => sqlx::query_scalar(
                            "SELECT count(*) FROM silo_inbox WHERE state = 'pending'",
                        )
                        .fetch_one(c)
                        .await
                        .unwrap(),
                        ServiceConnection::Sqlite(c) => sqlx::query_scalar(
                            "SELECT count(*) FROM silo_inbox WHERE state = 'pending'",
                        )
                        .fetch_one(c)
                        .await
                        .unwrap(),
                    };
                    if pending == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                conn.close().await;
                handled
            }));
        }
        let mut done = 0;
        let mut failures = 0;
        for t in tasks {
            let h = t.await.unwrap();
            done += h.done;
            failures += h.failures.len();
            assert_eq!(h.dead(), 0, "{engine}");
        }
        assert_eq!(done, EVENTS as u64, "{engine}: each event done once");
        assert_eq!(
            failures,
            flaky.len(),
            "{engine}: each flaky event failed once"
        );
        let seen = p.seen().await;
        assert_eq!(seen.len(), EVENTS as usize, "{engine}: no write twice");
        let distinct: HashSet<i64> = seen.iter().map(|(_, n)| *n).collect();
        assert_eq!(distinct.len(), EVENTS as usize, "{engine}");
        // Per key, written in publish order.
        for key in 0..KEYS {
            let ns: Vec<i64> = seen
                .iter()
                .filter(|(k, _)| *k == key.to_string())
                .map(|(_, n)| *n)
                .collect();
            let mut sorted = ns.clone();
            sorted.sort();
            assert_eq!(ns, sorted, "{engine}: key {key}");
        }
        assert!(
            p.inbox().await.values().all(|(s, _, _)| s == "done"),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn next_batch_claims_in_the_callers_transaction_and_only_there() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("a", 2), ("b", 3)]).await;
        let inbox = Inbox::default();
        let mut conn = p.connect("billing").await;
        match &mut conn {
            ServiceConnection::Postgres(c) => {
                let refused = inbox.next_batch(c, 10).await.unwrap_err();
                assert!(matches!(refused, EventsError::NotInTransaction));
                let mut tx = c.begin().await.unwrap();
                let batch = inbox.next_batch(&mut *tx, 10).await.unwrap();
                let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
                // One per key: a#2 waits for a#1.
                assert_eq!(keys, ["a", "b"]);
                assert_eq!(batch[0].payload, json!({"n": 1}));
                assert_eq!(batch[0].source, "orders");
                assert!(batch[0].time.ends_with('Z'), "{}", batch[0].time);
                for e in &batch {
                    inbox.done(&mut *tx, e).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            ServiceConnection::Sqlite(c) => {
                let refused = inbox.next_batch(c, 10).await.unwrap_err();
                assert!(matches!(refused, EventsError::NotInTransaction));
                let mut tx = c.begin_with("BEGIN IMMEDIATE").await.unwrap();
                let batch = inbox.next_batch(&mut *tx, 10).await.unwrap();
                let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
                assert_eq!(keys, ["a", "b"]);
                assert_eq!(batch[0].payload, json!({"n": 1}));
                assert_eq!(batch[0].source, "orders");
                assert!(batch[0].time.ends_with('Z'), "{}", batch[0].time);
                for e in &batch {
                    inbox.done(&mut *tx, e).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
        conn.close().await;
        let states = p.inbox().await;
        assert_eq!(
            [&states[&1].0, &states[&2].0, &states[&3].0],
            ["done", "pending", "done"],
            "{engine}"
        );
    }
}

#[tokio::test]
async fn postgres_consumers_skip_events_another_one_holds() {
    let p = Project::new("postgres").await;
    p.deliver(&[("a", 1), ("a", 2), ("b", 3)]).await;
    let inbox = Inbox::default();
    let (mut one, mut two) = (p.connect("billing").await, p.connect("billing").await);
    let (ServiceConnection::Postgres(one), ServiceConnection::Postgres(two)) = (&mut one, &mut two)
    else {
        unreachable!()
    };
    let mut first = one.begin().await.unwrap();
    let held = inbox.next_batch(&mut *first, 1).await.unwrap();
    assert_eq!(held[0].key, "a");
    // The second consumer neither waits for a#1 nor takes a#2 behind it.
    let mut second = two.begin().await.unwrap();
    let other = inbox.next_batch(&mut *second, 10).await.unwrap();
    let keys: Vec<&str> = other.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["b"]);
    second.rollback().await.unwrap();
    inbox.done(&mut *first, &held[0]).await.unwrap();
    first.commit().await.unwrap();
    // Now a#2 is next.
    let mut third = two.begin().await.unwrap();
    let next = inbox.next_batch(&mut *third, 10).await.unwrap();
    let ns: Vec<&serde_json::Value> = next.iter().map(|e| &e.payload["n"]).collect();
    assert_eq!(ns, [&json!(2), &json!(3)]);
    third.rollback().await.unwrap();
}

/// The consume loop exactly as docs/events.md gives it, run statement by
/// statement as a service in another language would.
#[tokio::test]
async fn the_documented_consume_sql_gives_an_exactly_once_effect() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.deliver(&[("a", 1), ("b", 2), ("c", 3)]).await;
        let mut conn = p.connect("billing").await;
        let sql = ConsumeSql::of(p.service("billing").engine);
        let insert = if engine == "postgres" {
            "INSERT INTO seen (event_id, key, n) VALUES ($1, $2, $3)"
        } else {
            "INSERT INTO seen (event_id, key, n) VALUES (?1, ?2, ?3)"
        };
        macro_rules! exec {
            ($c:expr, $statement:expr) => {
                sqlx::raw_sql(AssertSqlSafe($statement.to_string()))
                    .execute(&mut *$c)
                    .await
                    .unwrap()
            };
        }
        macro_rules! run {
            ($c:expr) => {{
                let c = $c;
                // One event per transaction; the handler fails for b.
                for round in 0..3 {
                    exec!(c, sql.begin);
                    let rows = sqlx::query(sql.claim)
                        .bind(1i64)
                        .fetch_all(&mut *c)
                        .await
                        .unwrap();
                    assert_eq!(rows.len(), 1, "{engine} round {round}");
                    let seq: i64 = rows[0].get("seq");
                    let key: String = rows[0].get("key");
                    exec!(c, sql.savepoint);
                    sqlx::query(insert)
                        .bind(format!("event-{seq}"))
                        .bind(&key)
                        .bind(seq)
                        .execute(&mut *c)
                        .await
                        .unwrap();
                    if key == "b" {
                        exec!(c, sql.rollback_to);
                        let (state, attempts): (String, i32) = sqlx::query_as(sql.fail)
                            .bind(seq)
                            .bind("the handler failed")
                            .bind(5i32)
                            .bind(3600.0f64)
                            .fetch_one(&mut *c)
                            .await
                            .unwrap();
                        assert_eq!((state.as_str(), attempts), ("pending", 1), "{engine}");
                    } else {
                        exec!(c, sql.release);
                        let marked = sqlx::query(sql.done)
                            .bind(seq)
                            .execute(&mut *c)
                            .await
                            .unwrap();
                        assert_eq!(marked.rows_affected(), 1, "{engine}");
                    }
                    exec!(c, "COMMIT");
                }
                // b waits an hour: nothing is ready.
                exec!(c, sql.begin);
                let rows = sqlx::query(sql.claim)
                    .bind(10i64)
                    .fetch_all(&mut *c)
                    .await
                    .unwrap();
                assert!(rows.is_empty(), "{engine}");
                exec!(c, "ROLLBACK");

                // A driver that rolls the whole transaction back on an
                // error: the failure is recorded on its own afterwards.
                sqlx::query("UPDATE silo_inbox SET next_attempt_at = NULL WHERE key = 'b'")
                    .execute(&mut *c)
                    .await
                    .unwrap();
                exec!(c, sql.begin);
                let rows = sqlx::query(sql.claim)
                    .bind(10i64)
                    .fetch_all(&mut *c)
                    .await
                    .unwrap();
                assert_eq!(rows.len(), 1, "{engine}");
                let seq: i64 = rows[0].get("seq");
                sqlx::query(insert)
                    .bind("lost")
                    .bind("b")
                    .bind(seq)
                    .execute(&mut *c)
                    .await
                    .unwrap();
                exec!(c, "ROLLBACK");
                let (state, attempts): (String, i32) = sqlx::query_as(sql.fail)
                    .bind(seq)
                    .bind("the handler failed again")
                    .bind(2i32)
                    .bind(0.0f64)
                    .fetch_one(&mut *c)
                    .await
                    .unwrap();
                assert_eq!((state.as_str(), attempts), ("dead", 2), "{engine}");
            }};
        }
        match &mut conn {
            ServiceConnection::Postgres(c) => run!(c),
            ServiceConnection::Sqlite(c) => run!(c),
        }
        conn.close().await;
        // The writes of a and c committed with their done marks; b's
        // writes never did.
        let seen: Vec<String> = p.seen().await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(seen, ["a", "c"], "{engine}");
        let states = p.inbox().await;
        assert_eq!(states[&1].0, "done", "{engine}");
        assert_eq!(
            states[&2],
            ("dead".into(), 2, Some("the handler failed again".into())),
            "{engine}"
        );
        assert_eq!(states[&3].0, "done", "{engine}");
    }
}

/// docs/events.md shows the statements the helper and the test above run,
/// character for character.
#[test]
fn docs_show_the_consume_sql_exactly() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md"))
        .unwrap();
    let blocks: Vec<&str> = doc
        .split("```sql\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap())
        .collect();
    for sql in [ConsumeSql::POSTGRES, ConsumeSql::SQLITE] {
        for statement in [
            sql.begin,
            sql.claim,
            sql.savepoint,
            sql.release,
            sql.done,
            sql.rollback_to,
            sql.fail,
        ] {
            let shown = format!("{statement};");
            assert!(
                blocks.iter().any(|b| b.contains(&shown)),
                "docs/events.md does not show, in a ```sql block:\n{shown}"
            );
        }
    }
}
