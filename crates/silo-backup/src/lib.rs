//! silo's backups: every service's store backed up on its own policy, as
//! the service's own role, into a destination of its own, and restored only
//! after every file checks out.
//!
//! The pieces, one per module:
//! - [`meta`]: what a backup is: its files with their SHA-256 and the
//!   metadata a restore checks against (engine, versions, row counts).
//! - [`retention`]: which backups a prune deletes.
//! - [`schedule`]: when a service's next backup is due, and the clock a
//!   daemon waits on.
//! - [`postgres`]: a PostgreSQL store dumped and restored with the server's
//!   own `pg_dump` and `pg_restore`, as the service's own role.
//! - [`destination`]: where a service's backups live as its manifest policy
//!   says (a folder or `s3://`, both as an object store and a prefix), and
//!   whether they are encrypted; `meta.json` written last.
//! - [`sqlite`]: the SQLite engine's dump and restore; its online copy
//!   and the checks of the copy run on threads (`sqlite_copy`).
//! - [`digest`]: SHA-256 of files and streams, off the async runtime.
//! - [`backup`]: taking one backup of one service.
//! - [`restore`]: restoring one (SQLite files; PostgreSQL into a store
//!   silo-store makes, swapped in for `--replace`), and the restore drill
//!   (`verify`).
//! - [`objects`]: a destination's backups as objects (put, get, list,
//!   delete), one code path for local folders and S3.
//! - [`s3`]: `s3://bucket/prefix` destinations, configured from `AWS_*`.
//! - [`crypt`]: age encryption of a backup's files.
//! - [`pgbackrest`]: point-in-time recovery of a service's own server
//!   (`method = "pgbackrest"`) with the `pgbackrest` binary.
//! - [`prune`]: a destination pruned by its policy (`silo backup prune`).
//! - [`daemon`]: every schedule run until stopped (`silo backup daemon`),
//!   with its [`metrics`] served for Prometheus.
//!
//! Engines write a backup's files into a local staging folder and read
//! them back from one; the destination moves finished folders in and out.

pub mod backup;
pub mod crypt;
pub mod daemon;
pub mod destination;
pub mod digest;
pub mod error;
mod local_files;
pub mod meta;
pub mod metrics;
pub mod objects;
pub mod pgbackrest;
pub mod postgres;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod s3;
pub mod schedule;
pub mod sqlite;
mod sqlite_copy;

pub use destination::{Destination, Listing};
pub use error::BackupError;
pub use meta::{BackupId, BackupMeta, Dump, FileEntry};
