//! Replay on the nats bus: a type's events again from the stream into a
//! consuming service's inbox (`silo events replay`), how a new service
//! builds its denormalized copy from history.
//!
//! The silo admin (under `nats_auth`; anyone otherwise) reads the type's
//! subject with a consumer of its own that lives only for the replay, up
//! to the last event in the stream when the replay started, and writes
//! each batch into the inbox as the service, in stream order. The inbox's
//! unique event id skips the events it has; with `reprocess` those are
//! made pending again, attempts reset, so the service runs them again.
//! The service's durable consumer is left alone.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy};
use futures::StreamExt;
use silo_manifest::{Manifest, Service};
use silo_store::Stores;

use super::admit::Gate;
use super::connect::Connection;
use super::deliver::{InboxWrite, write_inbox};
use super::error::{NatsError, request};
use super::names;
use crate::EventsError;

/// The connections' name on the store's server.
const APPLICATION: &str = "silo events replay";

/// Messages fetched at once.
const BATCH: usize = 500;

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Events read from the stream.
    pub read: u64,
    /// Events written into the inbox: new ones, or with `reprocess` also
    /// the ones made pending again.
    pub written: u64,
    /// Messages on the subject that are not silo events or are refused
    /// (see [`super::admit`]), left out.
    pub skipped: u64,
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// The type.
    pub event_type: String,
    /// Only events stored in the stream at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Make events already in the inbox pending again.
    pub reprocess: bool,
}

/// Replays `request.event_type` from the stream into `service`'s inbox.
pub async fn replay(
    stores: &Stores,
    bus: &Connection,
    manifest: &Manifest,
    service: &Service,
    request_: &ReplayRequest,
) -> Result<Replayed, EventsError> {
    if !service.consumes.contains(&request_.event_type) {
        return Err(NatsError::NotConsumed {
            service: service.name.clone(),
            event_type: request_.event_type.clone(),
        }
        .into());
    }
    if let Some(since) = request_.since {
        check_since(since)?;
    }
    let stream_name = names::stream_name(&manifest.project);
    let mut stream = bus
        .js
        .get_stream(&stream_name)
        .await
        .map_err(request(format!("reading the stream {stream_name}")))?;
    let last = stream
        .info()
        .await
        .map_err(request(format!("reading the stream {stream_name}")))?
        .state
        .last_sequence;
    let mut done = Replayed::default();
    if last == 0 {
        return Ok(done);
    }
    let reader = stream
        .create_consumer(consumer::pull::Config {
            description: Some(format!("silo events replay for {}", service.name)),
            deliver_policy: match request_.since {
                Some(start_time) => DeliverPolicy::ByStartTime { start_time },
                None => DeliverPolicy::All,
            },
            ack_policy: AckPolicy::Explicit,
            filter_subject: names::subject(&manifest.project, &request_.event_type),
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(request("creating the replay's consumer"))?;
    let gate = Gate::new(manifest, crate::contracts::Contracts::load(manifest)?);
    let mut store = stores.connect_as(service, APPLICATION).await?;
    let mode = if request_.reprocess {
        InboxWrite::Reprocess
    } else {
        InboxWrite::New
    };
    let result = async {
        loop {
            let mut messages = reader
                .fetch()
                .max_messages(BATCH)
                .messages()
                .await
                .map_err(request("reading the stream for the replay"))?;
            let mut events = Vec::new();
            let mut highest = 0;
            let mut got = Vec::new();
            while let Some(m) = messages.next().await {
                let m = m.map_err(request("reading the stream for the replay"))?;
                let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                highest = highest.max(seq);
                if seq <= last {
                    match gate.admit(m.subject.as_str(), m.headers.as_ref(), &m.payload) {
                        Ok(e) => events.push(e),
                        Err(why) => {
                            done.skipped += 1;
                            tracing::warn!(
                                service = %service.name,
                                subject = %m.subject,
                                seq,
                                "skipping the message on {}: {why}",
                                m.subject
                            );
                        }
                    }
                }
                got.push(m);
            }
            if got.is_empty() {
                break;
            }
            done.read += events.len() as u64;
            done.written += write_inbox(&mut store, service, &events, mode)
                .await?
                .total();
            for m in got {
                let _ = m.ack().await;
            }
            if highest >= last {
                break;
            }
        }
        Ok::<_, EventsError>(())
    }
    .await;
    store.close().await;
    let name = reader.cached_info().name.clone();
    let _ = stream.delete_consumer(&name).await;
    result.map(|()| done)
}

/// Refuses a start time JetStream cannot compare: the server keeps times
/// as nanoseconds since 1970 in an `i64`, and one beyond that range
/// overflows there into a time long past, so the replay would deliver the
/// whole history instead of nothing.
fn check_since(since: time::OffsetDateTime) -> Result<(), NatsError> {
    if i64::try_from(since.unix_timestamp_nanos()).is_ok() {
        return Ok(());
    }
    Err(NatsError::SinceOutOfRange {
        since: since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| since.to_string()),
        reason: "it does not fit in JetStream's 64-bit nanoseconds".into(),
    })
}
