//! The NATS face (seed 003's Message Hub path): the same operations over
//! NATS request/reply, with the same JSON bodies and error bodies as
//! HTTP, since both go through [`crate::dispatch`].
//!
//! A service sends a request to `<project>_db.<service>.<operation>`
//! ([`names::gateway_subject`]; `_db` keeps requests out of the project's
//! event stream, which captures `<project>.>`). Every gateway subscribes
//! in the queue group [`QUEUE_GROUP`], so several gateways share the
//! requests. A reply carries the HTTP status the same request would get
//! in the header [`STATUS_HEADER`], and, on an error, the NATS services
//! convention's `Nats-Service-Error-Code` and `Nats-Service-Error`.
//!
//! Who is calling: with `[events] nats_auth` the gateway connects as
//! [`names::GATEWAY_USER`], whose password exists only in the
//! authorization block silo writes. The server accepting it means that
//! block is in force, and under it only `<service>`'s NATS user may
//! publish on `<project>_db.<service>.>`; so the subject's service is the
//! caller. Without `nats_auth` anyone may publish anywhere, and the
//! caller is the token in the message's `Authorization` header.
//!
//! A semaphore bounds the requests run at once: past the bound the
//! gateway stops taking messages, and the server keeps them for it.
//! Shutdown drains: the subscription is closed, the requests already
//! received are answered, and the replies are flushed before it returns.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_nats::{Client, HeaderMap, Message, Subscriber};
use futures::StreamExt;
use silo_events::relay::nats::{NatsConfig, NatsError, names};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dispatch::{self, Operation, RequestContext};
use crate::error::GatewayError;
use crate::identity::Credential;
use crate::{Gateway, request_id};

/// The queue group every gateway joins, so that each request is answered
/// by one of them.
pub const QUEUE_GROUP: &str = "silo-gateway";

/// The reply header holding the HTTP status of the answer (`200`, `403`).
pub const STATUS_HEADER: &str = "Silo-Status";

/// The request header holding the caller's `Bearer <token>`.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// The NATS services convention's error headers, set on error replies.
const ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";
const ERROR_HEADER: &str = "Nats-Service-Error";

/// The default of [`NatsOptions::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 64;

/// How the gateway serves over NATS.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The server, the project, and whether per-service NATS users are in
    /// force (`[events] nats_auth`).
    pub bus: NatsConfig,
    /// Most requests run at once.
    pub concurrency: usize,
}

/// Counters of the NATS face, read by tests and operators.
#[derive(Debug, Default)]
pub struct NatsStats {
    taken: AtomicU64,
    in_flight: AtomicUsize,
    answered: AtomicU64,
}

impl NatsStats {
    /// Requests taken off the subscription so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::SeqCst)
    }
    /// Requests running now (never more than the concurrency bound).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }
}

/// A gateway subscribed on NATS, not yet answering: like a bound TCP
/// listener, it takes requests from the moment [`NatsListener::bind`]
/// returns, so a caller may send before [`serve`] runs.
pub struct NatsListener {
    client: Client,
    subscriber: Subscriber,
    trust_users: bool,
    prefix: String,
    concurrency: usize,
    stats: Arc<NatsStats>,
}

impl NatsListener {
    /// Connects to the server (as [`names::GATEWAY_USER`] under
    /// `nats_auth`) and subscribes to every gateway subject of the
    /// project in the queue group.
    pub async fn bind(options: &NatsOptions) -> Result<Self, NatsError> {
        let conn = options.bus.connect(names::GATEWAY_USER).await?;
        let prefix = names::gateway_prefix(&options.bus.project);
        let failed = |action: &str, e: &dyn std::fmt::Display| NatsError::Request {
            action: action.to_string(),
            reason: e.to_string(),
        };
        let subscriber = conn
            .client
            .queue_subscribe(format!("{prefix}.*.*"), QUEUE_GROUP.to_string())
            .await
            .map_err(|e| failed("subscribing to the gateway's subjects", &e))?;
        // The server holds the subscription once the flush's PONG is back.
        conn.client
            .flush()
            .await
            .map_err(|e| failed("subscribing to the gateway's subjects", &e))?;
        Ok(NatsListener {
            client: conn.client,
            subscriber,
            trust_users: options.bus.auth,
            prefix,
            concurrency: options.concurrency.max(1),
            stats: Arc::default(),
        })
    }

    /// The subjects served, for messages: `<project>_db.<service>.<operation>`.
    pub fn subjects(&self) -> String {
        format!("{}.<service>.<operation>", self.prefix)
    }

    /// Whether the caller is the NATS user that published (true) or the
    /// token it carries (false).
    pub fn trusts_nats_users(&self) -> bool {
        self.trust_users
    }

    /// The listener's counters; they keep counting while it serves.
    pub fn stats(&self) -> Arc<NatsStats> {
        self.stats.clone()
    }
}

/// Answers requests on `listener` until `shutdown` completes, then drains:
/// stops taking requests, answers those already received and returns
/// once their replies are sent.
pub async fn serve(
    listener: NatsListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NatsError> {
    let NatsListener {
        client,
        mut subscriber,
        trust_users,
        concurrency,
        stats,
        ..
    } = listener;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut draining = false;
    loop {
        let message = tokio::select! {
            () = &mut shutdown, if !draining => {
                draining = true;
                drain(&mut subscriber).await?;
                continue;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                report(done);
                continue;
            }
            message = subscriber.next() => match message {
                Some(message) => message,
                // Drained: every message the server sent us is taken.
                None => break,
            },
        };
        stats.taken.fetch_add(1, Ordering::SeqCst);
        // At the bound, wait here: no more messages are taken meanwhile.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = &mut shutdown, if !draining => {
                draining = true;
                drain(&mut subscriber).await?;
                permits.clone().acquire_owned().await
            }
        }
        .expect("the semaphore is never closed");
        let (client, gateway, stats) = (client.clone(), gateway.clone(), stats.clone());
        tasks.spawn(async move {
            stats.in_flight.fetch_add(1, Ordering::SeqCst);
            answer(&client, &gateway, trust_users, message).await;
            stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            stats.answered.fetch_add(1, Ordering::SeqCst);
            drop(permit);
        });
    }
    while let Some(done) = tasks.join_next().await {
        report(done);
    }
    client.flush().await.map_err(|e| NatsError::Request {
        action: "sending the last replies".into(),
        reason: e.to_string(),
    })
}

/// Unsubscribes; the messages already on their way are still delivered.
async fn drain(subscriber: &mut Subscriber) -> Result<(), NatsError> {
    subscriber.drain().await.map_err(|e| NatsError::Request {
        action: "draining the gateway's subscription".into(),
        reason: e.to_string(),
    })
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!("a NATS request's task failed: {e}");
    }
}

/// Runs one request and publishes its reply. A message without a reply
/// subject is dropped unrun: nobody would learn whether it committed.
async fn answer(client: &Client, gateway: &Gateway, trust_users: bool, message: Message) {
    let Some(reply) = message.reply.clone() else {
        tracing::debug!(subject = %message.subject, "a request without a reply subject was dropped");
        return;
    };
    let presented = message
        .headers
        .as_ref()
        .and_then(|h| h.get(request_id::HEADER))
        .map(|v| v.as_str());
    let id = request_id::accept(presented);
    let ctx = RequestContext {
        transport: "nats",
        request_id: &id,
    };
    let mut headers = HeaderMap::new();
    headers.insert(request_id::HEADER, id.as_str());
    let body = match respond(gateway, &ctx, trust_users, &message).await {
        Ok(json) => {
            headers.insert(STATUS_HEADER, "200");
            Ok(json)
        }
        Err(e) => {
            headers.insert(STATUS_HEADER, e.status.as_str());
            headers.insert(ERROR_CODE_HEADER, e.status.as_str());
            headers.insert(ERROR_HEADER, e.code);
            serde_json::to_vec(&e.body_for(&id))
        }
    }
    .unwrap_or_else(|_| b"{}".to_vec());
    if let Err(e) = client
        .publish_with_headers(reply, headers, body.into())
        .await
    {
        tracing::warn!("a NATS reply could not be sent: {e}");
    }
}

/// The answer to one request, checked in [`crate::dispatch`]'s order
/// after the size and the subject.
async fn respond(
    gateway: &Gateway,
    ctx: &RequestContext<'_>,
    trust_users: bool,
    message: &Message,
) -> Result<Vec<u8>, GatewayError> {
    // The subscription is `<prefix>.*.*`: the last two tokens.
    let mut tokens = message.subject.rsplitn(3, '.');
    let (operation, service) = (tokens.next(), tokens.next());
    let credential = if trust_users {
        service.map_or(Credential::None, Credential::NatsUser)
    } else {
        Credential::from(
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(AUTHORIZATION_HEADER))
                .map(|v| v.as_str()),
        )
    };
    // Refused before dispatch, yet counted and audited like the rest.
    let refuse = |name: &'static str, error: GatewayError| {
        Err(dispatch::refused(gateway, ctx, credential, name, error))
    };
    let known = operation.and_then(Operation::from_name);
    // The largest any service may send; each service's own
    // `max_body_bytes` is checked once the caller is known.
    let limit = gateway.max_body_bytes();
    if message.payload.len() > limit {
        let name = known.map_or("none", Operation::name);
        return refuse(name, GatewayError::payload_too_large(limit));
    }
    let (Some(operation), Some(_)) = (operation, service) else {
        return refuse(
            "none",
            GatewayError::bad_request("the subject names no operation"),
        );
    };
    let Some(operation) = known else {
        return refuse("none", GatewayError::unknown_operation(operation));
    };
    dispatch::handle(gateway, ctx, credential, operation, &message.payload).await
}
