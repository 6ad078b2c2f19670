//! The nats bus: events through NATS JetStream.
//!
//! - [`names`]: the stream, subjects, durables and inbox prefixes.
//! - [`connect`]: where the server is and who connects ([`NatsConfig`]).
//! - [`stream`]: the project's stream and the durable consumers, made or
//!   checked idempotently.
//! - [`envelope`]: the CloudEvents 1.0 attributes as message headers.
//! - [`admit`]: what the delivery believes of a message: the type from
//!   the subject, the source from the manifest, the contract checked here.
//! - [`publish`]: the relay, a service's outbox → the stream.
//! - [`deliver`]: the delivery, the stream → a service's inbox, in stream
//!   order.
//! - [`replay`]: a type's history again into a service's inbox.
//! - [`auth`]: one NATS user per service and the server's authorization
//!   block.
//! - [`run`]: the worker's loops over both.
//!
//! Designed for nats-server 2.9 (one filter subject per consumer, so one
//! durable per consuming service and type; consumers created by the
//! admin, since a 2.9 user allowed to create consumers could filter on
//! anything). Newer servers work the same way.

pub mod admit;
pub mod auth;
pub mod connect;
pub mod deliver;
pub mod envelope;
mod error;
pub mod names;
pub mod publish;
pub mod replay;
pub mod run;
pub mod stream;

pub use connect::{Connection, NatsConfig};
pub use error::NatsError;
