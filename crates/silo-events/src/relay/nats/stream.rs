//! The project's stream and the consuming services' durable consumers,
//! created and checked idempotently.
//!
//! One stream per project ([`names::stream_name`]) over `<project>.>`,
//! file storage, limits retention (events stay for replay; JetStream's
//! age and size limits can be set on the stream by hand, silo leaves
//! them), and the manifest's duplicate window, within which a second
//! publish of an event id is dropped. Its description marks it as silo's:
//! a stream of that name without the mark is never adopted.
//!
//! One durable pull consumer per consuming service and consumed type
//! ([`names::durable`]), filtered to that type's subject, explicit acks,
//! starting from the first event of the stream (a new consumer gets the
//! type's history). nats-server 2.9 has one filter subject per consumer;
//! 2.10's several would allow one consumer per service.

use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use silo_manifest::{Manifest, Service};

use super::connect::Connection;
use super::error::{NatsError, request};
use super::names;

/// How long the server waits for an ack before it delivers a message
/// again, unless [`super::NatsConfig::ack_wait`] says otherwise.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// How many messages a durable hands out before it waits for acks. The
/// delivery holds at most this many per consumed type.
pub const MAX_ACK_PENDING: i64 = 1000;

/// What ensuring the stream or a consumer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Updated,
    Unchanged,
}

/// The mark in the description of everything silo creates on the bus.
fn marker(project: &str) -> String {
    format!("managed by silo: project={project}")
}

/// The stream silo wants for `manifest`.
fn wanted_stream(manifest: &Manifest) -> stream::Config {
    stream::Config {
        name: names::stream_name(&manifest.project),
        description: Some(marker(&manifest.project)),
        subjects: vec![names::all_subjects(&manifest.project)],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(manifest.events.duplicate_window_secs),
        num_replicas: 1,
        ..Default::default()
    }
}

/// Creates the project's stream, or brings the one silo made up to the
/// manifest (subjects, duplicate window). A stream of that name that silo
/// did not make, or whose storage or retention differ (JetStream cannot
/// change them), is an error that says so.
pub async fn ensure_stream(conn: &Connection, manifest: &Manifest) -> Result<Ensured, NatsError> {
    let wanted = wanted_stream(manifest);
    let name = wanted.name.clone();
    match conn.js.get_stream(&name).await {
        Ok(s) => {
            let mut config = s.cached_info().config.clone();
            check_stream_config(&config, &wanted)?;
            if config.subjects == wanted.subjects
                && config.duplicate_window == wanted.duplicate_window
            {
                return Ok(Ensured::Unchanged);
            }
            config.subjects = wanted.subjects;
            config.duplicate_window = wanted.duplicate_window;
            conn.js
                .update_stream(config)
                .await
                .map_err(request(format!("updating the stream {name}")))?;
            Ok(Ensured::Updated)
        }
        Err(e) if stream_missing(&e) => {
            conn.js.create_stream(wanted).await.map_err(|e| {
                match e.kind() {
                    // The server answered: its own words say what is wrong
                    // (a setting it refuses, subjects another stream has).
                    CreateStreamErrorKind::JetStream(refusal) => NatsError::StreamRefused {
                        stream: name.clone(),
                        reason: refusal.to_string(),
                    },
                    _ => no_jetstream(conn, e.to_string()),
                }
            })?;
            Ok(Ensured::Created)
        }
        Err(e) => Err(no_jetstream(conn, e.to_string())),
    }
}

/// Deletes the project's stream, with every event in it and every
/// durable on it, when silo made it (for `silo destroy`). True when there
/// was one; a stream of that name that silo did not make (or made for
/// another project) is refused and left alone.
pub async fn remove_stream(conn: &Connection, manifest: &Manifest) -> Result<bool, NatsError> {
    let wanted = wanted_stream(manifest);
    let name = wanted.name.clone();
    match conn.js.get_stream(&name).await {
        Ok(s) => {
            check_owner(&s.cached_info().config, &wanted)?;
            conn.js
                .delete_stream(&name)
                .await
                .map_err(request(format!("removing the stream {name}")))?;
            Ok(true)
        }
        Err(e) if stream_missing(&e) => Ok(false),
        Err(e) => Err(no_jetstream(conn, e.to_string())),
    }
}

/// Checks that the project's stream exists and is silo's, without
/// changing it: for a service's worker under auth, which may not create
/// it.
pub async fn check_stream(conn: &Connection, manifest: &Manifest) -> Result<(), NatsError> {
    let wanted = wanted_stream(manifest);
    match conn.js.get_stream(&wanted.name).await {
        Ok(s) => check_stream_config(&s.cached_info().config, &wanted),
        Err(e) if stream_missing(&e) => Err(NatsError::NotSetUp {
            what: format!("the stream {}", wanted.name),
            user: conn.user.clone(),
        }),
        Err(e) => Err(no_jetstream(conn, e.to_string())),
    }
}

fn check_stream_config(found: &stream::Config, wanted: &stream::Config) -> Result<(), NatsError> {
    check_owner(found, wanted)?;
    check_settings(found, wanted)
}

/// Whether silo made the stream `found`, for this project.
fn check_owner(found: &stream::Config, wanted: &stream::Config) -> Result<(), NatsError> {
    let description = found.description.clone().unwrap_or_default();
    // Another project whose name maps to the same stream name (`a.b` and
    // `a_b` are both `a_b`): silo's mark, another project's name.
    if Some(&description) != wanted.description.as_ref()
        && let Some(project) = description.strip_prefix(&marker(""))
    {
        return Err(NatsError::StreamOfOtherProject {
            stream: wanted.name.clone(),
            project: project.to_string(),
        });
    }
    if Some(&description) != wanted.description.as_ref() {
        return Err(NatsError::StreamNotOurs {
            stream: wanted.name.clone(),
            description,
        });
    }
    Ok(())
}

/// Whether the stream `found` has the settings JetStream cannot change
/// that silo needs.
fn check_settings(found: &stream::Config, wanted: &stream::Config) -> Result<(), NatsError> {
    let incompatible = |setting: &str, found: String, expected: String| {
        Err(NatsError::StreamIncompatible {
            stream: wanted.name.clone(),
            setting: setting.into(),
            found,
            expected,
        })
    };
    if found.storage != wanted.storage {
        return incompatible(
            "storage",
            format!("{:?}", found.storage).to_lowercase(),
            "file".into(),
        );
    }
    if found.retention != wanted.retention {
        return incompatible(
            "retention",
            format!("{:?}", found.retention).to_lowercase(),
            "limits (events stay for replay and for every consumer)".into(),
        );
    }
    Ok(())
}

fn stream_missing(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// A request the server did not answer as JetStream would: no JetStream,
/// or no server.
fn no_jetstream(conn: &Connection, reason: String) -> NatsError {
    NatsError::NoJetStream {
        url: conn.client.server_info().host.clone()
            + ":"
            + &conn.client.server_info().port.to_string(),
        reason,
    }
}

/// The durable consumer silo wants for `service` and `event_type`.
fn wanted_consumer(
    manifest: &Manifest,
    service: &Service,
    event_type: &str,
    ack_wait: Duration,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(names::durable(&service.name, event_type)),
        description: Some(format!(
            "{}; service={}; type={event_type}",
            marker(&manifest.project),
            service.name
        )),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: -1,
        filter_subject: names::subject(&manifest.project, event_type),
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    }
}

/// Creates `service`'s durable consumers, one per consumed type, or checks
/// the ones there: a durable of that name with another filter or ack
/// policy is an error (nats-server 2.9 cannot change a filter).
pub async fn ensure_consumers(
    conn: &Connection,
    manifest: &Manifest,
    service: &Service,
    ack_wait: Duration,
) -> Result<Vec<Ensured>, NatsError> {
    let stream_name = names::stream_name(&manifest.project);
    let stream = conn
        .js
        .get_stream(&stream_name)
        .await
        .map_err(request(format!("reading the stream {stream_name}")))?;
    let mut out = Vec::new();
    for t in &service.consumes {
        let wanted = wanted_consumer(manifest, service, t, ack_wait);
        let name = wanted.durable_name.clone().unwrap_or_default();
        match conn
            .js
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(&name, &stream_name)
            .await
        {
            Ok(c) => {
                check_consumer(&stream_name, &c.cached_info().config, &wanted)?;
                out.push(Ensured::Unchanged);
            }
            Err(e) if consumer_missing(&e) => {
                stream
                    .create_consumer(wanted)
                    .await
                    .map_err(request(format!("creating the consumer {name}")))?;
                out.push(Ensured::Created);
            }
            Err(e) => return Err(request(format!("reading the consumer {name}"))(e)),
        }
    }
    Ok(out)
}

fn check_consumer(
    stream: &str,
    found: &consumer::Config,
    wanted: &consumer::pull::Config,
) -> Result<(), NatsError> {
    let name = wanted.durable_name.clone().unwrap_or_default();
    let incompatible = |setting: &str, found: String, expected: String| {
        Err(NatsError::StreamIncompatible {
            stream: format!("{stream} (consumer {name})"),
            setting: setting.into(),
            found,
            expected,
        })
    };
    if found.filter_subject != wanted.filter_subject {
        return incompatible(
            "filter subject",
            found.filter_subject.clone(),
            wanted.filter_subject.clone(),
        );
    }
    if found.ack_policy != AckPolicy::Explicit {
        return incompatible(
            "ack policy",
            format!("{:?}", found.ack_policy).to_lowercase(),
            "explicit".into(),
        );
    }
    Ok(())
}

fn consumer_missing(e: &async_nats::jetstream::stream::ConsumerError) -> bool {
    matches!(e.kind(), async_nats::jetstream::stream::ConsumerErrorKind::JetStream(j) if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}

/// `service`'s durable consumer for `event_type`, which must exist: under
/// auth only the admin may create it.
pub async fn durable(
    conn: &Connection,
    manifest: &Manifest,
    service: &Service,
    event_type: &str,
) -> Result<PullConsumer, NatsError> {
    let stream_name = names::stream_name(&manifest.project);
    let name = names::durable(&service.name, event_type);
    match conn
        .js
        .get_consumer_from_stream::<consumer::pull::Config, _, _>(&name, &stream_name)
        .await
    {
        Ok(c) => Ok(c),
        Err(e) if consumer_missing(&e) => Err(NatsError::NotSetUp {
            what: format!("the durable consumer {name} on {stream_name}"),
            user: conn.user.clone(),
        }),
        Err(e) => Err(request(format!("reading the consumer {name}"))(e)),
    }
}

/// How many messages of each of `types` `service`'s durables have not
/// seen acked: not handed out yet (`num_pending`) or handed out and not
/// acked, so not yet committed in the inbox (`num_ack_pending`). One
/// request per durable; a durable that does not exist is an error.
pub async fn pending(
    conn: &Connection,
    manifest: &Manifest,
    service: &Service,
    types: &[String],
) -> Result<u64, NatsError> {
    let mut total = 0;
    for t in types {
        let c = durable(conn, manifest, service, t).await?;
        let info = c.cached_info();
        total += info.num_pending + info.num_ack_pending as u64;
    }
    Ok(total)
}

/// Sets up the bus for `services`: the stream, then each one's durable
/// consumers. Returns what changed, as lines to report.
pub async fn set_up(
    conn: &Connection,
    manifest: &Manifest,
    services: &[&Service],
    ack_wait: Duration,
) -> Result<Vec<String>, NatsError> {
    let mut changes = Vec::new();
    let stream = names::stream_name(&manifest.project);
    match ensure_stream(conn, manifest).await? {
        Ensured::Created => changes.push(format!("created the stream {stream}")),
        Ensured::Updated => changes.push(format!("updated the stream {stream}")),
        Ensured::Unchanged => {}
    }
    for s in services {
        for (t, done) in s
            .consumes
            .iter()
            .zip(ensure_consumers(conn, manifest, s, ack_wait).await?)
        {
            if done == Ensured::Created {
                changes.push(format!(
                    "created the consumer {}",
                    names::durable(&s.name, t)
                ));
            }
        }
    }
    Ok(changes)
}
