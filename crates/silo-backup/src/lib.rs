//! silo's backups: every service's store backed up on its own policy, as
//! the service's own role, into a destination of its own, and restored only
//! after every file checks out.
//!
//! The pieces, one per module:
//! - [`meta`]: what a backup is: its files with their SHA-256 and the
//!   metadata a restore checks against (engine, versions, row counts).
//! - [`objects`]: a destination's backups as objects (put, get, list,
//!   delete), one code path for local folders and S3.
//! - [`s3`]: `s3://bucket/prefix` destinations, configured from `AWS_*`.
//! - [`crypt`]: age encryption of a backup's files.
//!
//! Engines write a backup's files into a local staging folder and read
//! them back from one; the destination moves finished folders in and out.

pub mod crypt;
pub mod error;
pub mod meta;
pub mod objects;
pub mod s3;

pub use error::BackupError;
pub use meta::{BackupId, BackupMeta, Dump, FileEntry};
