//! silo's migration engine. Each service migrates its own store, as its
//! own role, on its own schedule.
//!
//! - [`file`]: Flyway-compatible names (`V1__x.sql`, `U1__x.sql`,
//!   `R__x.sql`), discovery, checksums.
//! - [`split`]: statements split by each engine's own lexer.
//! - [`state`]: files against history (`info`, `validate`).
//! - [`adopt`]: moving in with the history of Flyway, sqlx, diesel or
//!   refinery.
//! - [`run`]: `migrate`, `undo`, `baseline`, `repair` through a
//!   [`target::Target`] ([`postgres::PgTarget`], [`sqlite::SqliteTarget`]).
//! - [`cancel`]: calling a run off (Ctrl-C): the running statement is
//!   cancelled on the server, the transaction rolled back, the lock
//!   released, and the error says what the store holds.

pub mod adopt;
pub mod cancel;
pub mod connect;
pub mod error;
pub mod file;
pub mod history;
pub mod import;
pub mod placeholders;
pub mod postgres;
pub mod run;
pub mod service;
pub mod split;
pub mod sqlite;
pub mod state;
pub mod sum;
pub mod target;
pub mod verify;
pub mod version;

pub use cancel::Cancel;
pub use error::{Cancelled, Failure, Location, MigrateError, PartialStop, Stopped};
pub use file::{Kind, Migration, discover};
pub use run::{
    MigrateOptions, Prepared, Step, UndoOptions, baseline, migrate, prepare, repair, undo,
    undo_plan, undo_with,
};
pub use state::{Entry, Partial, State, entries};
pub use target::{LockPolicy, Target};
pub use version::Version;
