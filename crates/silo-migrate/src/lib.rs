//! silo's migration engine. Each service migrates its own store, as its
//! own role, on its own schedule.
//!
//! - [`file`], [`version`], [`split`], [`placeholders`], [`sum`],
//!   [`import`]: the migration files themselves, from the
//!   `silo-migration-files` crate (no database), re-exported here.
//! - [`state`]: files against history (`info`, `validate`).
//! - [`adopt`]: moving in with the history of Flyway, sqlx, diesel or
//!   refinery.
//! - [`run`]: `migrate`, `undo`, `baseline`, `repair` through a
//!   [`target::Target`] ([`postgres::PgTarget`], [`sqlite::SqliteTarget`]).
//! - [`given`]: migrations sent as text (the gateway's `/v1/schema`),
//!   run as the files they stand for.
//! - [`cancel`]: calling a run off (Ctrl-C): the running statement is
//!   cancelled on the server, the transaction rolled back, the lock
//!   released, and the error says what the store holds.

pub mod adopt;
pub mod cancel;
pub mod connect;
pub mod error;
pub mod given;
pub mod history;
pub mod postgres;
pub mod run;
pub mod service;
pub mod sqlite;
pub mod state;
pub mod target;
pub mod verify;

pub use cancel::Cancel;
pub use error::{Cancelled, Failure, Location, MigrateError, PartialStop, ServiceError, Stopped};
pub use history::HistoryKind;
pub use run::{
    Applied, MigrateOptions, NoHook, Prepared, Step, UndoOptions, baseline, migrate, migrate_with,
    prepare, repair, undo, undo_plan, undo_with,
};
pub use silo_migration_files::{
    FileError, Kind, Migration, Version, discover, file, import, placeholders, split, sum, version,
};
pub use state::{Entry, Partial, State, entries};
pub use target::{Conn, LockPolicy, Target};
