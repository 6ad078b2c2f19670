//! Schema snapshots ("catalog introspection"): what one store's schema is,
//! read from its own catalog, as sorted plain data that can be printed,
//! serialized, compared and diffed.
//!
//! - `silo verify` snapshots a scratch store, applies a migration and its
//!   undo, snapshots again and requires an empty [`diff`].
//! - `silo diff` compares a live store with what its migrations build.
//! - `silo schema dump` prints a snapshot ([`Schema`]'s `Display`) or
//!   serializes it (`--json`).
//!
//! [`snapshot_postgres`] and [`snapshot_sqlite`] read the service's own
//! objects only: never system catalogs, members of extensions or silo's
//! bookkeeping (`silo_*` tables and what hangs off them).

mod diff;
mod dump;
mod model;
mod postgres;
mod sqlite;

pub use diff::{Change, Difference, diff};
pub use model::{
    Column, Constraint, ConstraintKind, EnumType, Extension, Function, Index, ObjectKind, Schema,
    Sequence, Table, Trigger, View,
};
pub use postgres::snapshot_postgres;
pub use sqlite::snapshot_sqlite;
