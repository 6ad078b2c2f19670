//! silo's migration files, with no database: what `lint` reads offline and
//! what `migrate` runs.
//!
//! - [`version`]: Flyway's versions, compared numerically.
//! - [`file`]: Flyway-compatible names (`V1__x.sql`, `U1__x.sql`,
//!   `R__x.sql`), a service's engine folders, discovery, checksums.
//! - [`split`]: statements split by each engine's own lexer (PostgreSQL's
//!   parser, SQLite's `sqlite3_complete`), and scripts left open.
//! - [`placeholders`]: `${name}` substitution with a map back to the file.
//! - [`sum`]: `silo.sum`, the chained checksums of a folder.
//! - [`import`]: sqlx, diesel and refinery folders under silo's names.

pub mod error;
pub mod file;
pub mod import;
pub mod placeholders;
pub mod split;
pub mod sum;
pub mod version;

pub use error::FileError;
pub use file::{
    FileName, Kind, Migration, discover, engine_dir, engine_folder, engine_folders, service_dir,
};
pub use version::Version;
