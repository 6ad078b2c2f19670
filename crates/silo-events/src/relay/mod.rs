//! Moving events from publishers' outboxes to consumers' inboxes.
//!
//! [`embedded`] is the bus with no server: it reads each publisher's
//! `silo_outbox` and writes each consumer's `silo_inbox` directly.
//! [`retention`] retires the outbox rows every consumer has, and
//! [`backlog`] measures what is still on its way; [`collisions`] warns
//! of an event id already in an inbox from another source, which
//! [`inbox_rows`], the one insert both buses use, calls.
//! [`nats`] goes through NATS JetStream: each publisher's outbox into the
//! project's stream, the stream into each consumer's inbox.

pub mod backlog;
mod collisions;
pub mod embedded;
mod inbox_rows;
pub mod nats;
pub mod retention;
