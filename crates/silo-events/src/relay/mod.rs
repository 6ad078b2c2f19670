//! Moving events from publishers' outboxes to consumers' inboxes.
//!
//! [`embedded`] is the bus with no server: it reads each publisher's
//! `silo_outbox` and writes each consumer's `silo_inbox` directly.

pub mod embedded;
