//! The peer silo's relay is measured against: plain async-nats publishing
//! EVENTS messages of 256 bytes, each with a `Nats-Msg-Id` (a UUID v7, as
//! silo's event ids), to a file-storage stream with a duplicate window,
//! WINDOW publishes in flight before their acks are awaited (silo's relay
//! awaits the acks of each batch of 500 before it reads the next).
//!
//! ```text
//! cargo run --release -p silo-events --example nats_raw_publish STREAM [EVENTS] [WINDOW]
//! ```
//!
//! Creates STREAM (subjects `STREAM.>`) on the server at `SILO_NATS_URL`
//! (default `nats://127.0.0.1:4222`), deletes it at the end, and prints
//! one line: `raw <events> <seconds> <events per second>`.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .expect("usage: nats_raw_publish STREAM [EVENTS] [WINDOW]");
    let events: usize = args.next().map_or(100_000, |n| n.parse().expect("EVENTS"));
    let window: usize = args.next().map_or(500, |n| n.parse().expect("WINDOW"));
    let url = std::env::var("SILO_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url)
        .await
        .expect("reach the NATS server");
    let js = jetstream::new(client);
    let _ = js.delete_stream(&name).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create the stream");
    let subject = format!("{name}.bench.event");
    let payload = bytes_of(256);

    let started = Instant::now();
    let mut acked = 0;
    let mut pending = Vec::with_capacity(window);
    for _ in 0..events {
        let message = PublishMessage::build()
            .payload(payload.clone().into())
            .message_id(uuid::Uuid::now_v7().to_string());
        pending.push(
            js.send_publish(subject.clone(), message)
                .await
                .expect("publish"),
        );
        if pending.len() == window {
            acked += await_acks(&mut pending).await;
        }
    }
    acked += await_acks(&mut pending).await;
    let took = started.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    println!("raw {acked} {took:.3} {:.0}", acked as f64 / took);
}

/// Awaits every ack in flight, all at once; returns how many were new.
async fn await_acks(pending: &mut Vec<jetstream::context::PublishAckFuture>) -> usize {
    let acks = futures::future::join_all(pending.drain(..).map(|f| f.into_future())).await;
    acks.into_iter()
        .map(|a| a.expect("publish ack"))
        .filter(|a| !a.duplicate)
        .count()
}

/// A 256-byte JSON payload, like the benchmark's events.
fn bytes_of(size: usize) -> String {
    let head = "{\"n\":0,\"pad\":\"";
    let pad = "x".repeat(size - head.len() - 2);
    format!("{head}{pad}\"}}")
}
