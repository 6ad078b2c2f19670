//! The online copy of a SQLite store, and the checks of the copy.
//!
//! The copy is SQLite's online backup API, the page copy `sqlite3 .backup`
//! makes, run inside one read transaction on the live store: every page
//! comes from the same snapshot while the service keeps writing (WAL lets
//! writers go on beside a reader), and the copy never starts over because
//! a writer changed a page. It is several times faster than `VACUUM INTO`,
//! which rebuilds every table and index.
//!
//! The checks that follow read the copy only and do not depend on each
//! other, so they run at once on threads: `PRAGMA quick_check` (every page
//! and record well formed), the file's SHA-256, and the rows of every
//! table. quick_check skips comparing each index with its table; the full
//! `PRAGMA integrity_check` runs at every restore instead
//! ([`integrity_check`]), where a store is about to be trusted.
//!
//! This runs on blocking threads (rusqlite), beside sqlx's SQLite: both
//! use the one SQLite library linked into silo, so the locks SQLite keeps
//! per file are shared between them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::BackupError;

/// What the checks of a copy found.
#[derive(Debug)]
pub(crate) struct Checked {
    /// `PRAGMA quick_check`'s report: `["ok"]` for a sound copy.
    pub quick_check: Vec<String>,
    /// The copy's size and SHA-256.
    pub size: u64,
    pub sha256: String,
    /// Rows per table (every table, silo's own included), by name.
    pub tables: BTreeMap<String, u64>,
}

fn failed(action: &str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let action = action.to_string();
    let path = path.display().to_string();
    move |source| BackupError::SqliteCopy {
        action,
        path,
        source,
    }
}

/// Copies the store `live` into the new file `copy` (made readable by its
/// owner only before a byte lands in it), in one snapshot. The copy stands
/// alone: rollback journal, no WAL beside it.
pub(crate) fn copy(live: &Path, copy: &Path) -> Result<(), BackupError> {
    crate::destination::private_file_now(copy)?;
    let src = Connection::open_with_flags(
        live,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed("opening", live))?;
    src.busy_timeout(Duration::from_secs(30))
        .map_err(failed("opening", live))?;
    // The read transaction is the snapshot: the backup steps run inside
    // it instead of each opening its own and restarting when a writer
    // committed in between.
    src.execute_batch("BEGIN")
        .map_err(failed("starting a read on", live))?;
    src.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(failed("starting a read on", live))?;

    let mut dst = Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed("opening", copy))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(failed("copying", live))?;
        loop {
            // -1: every remaining page in one step.
            match backup.step(-1).map_err(failed("copying", live))? {
                StepResult::Done => break,
                // More pages (a step of -1 copies them all, so hardly
                // ever), or the new copy busy, which nothing else opens: a
                // short wait, never a loop that spins.
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    src.execute_batch("COMMIT")
        .map_err(failed("ending the read on", live))?;
    drop(src);
    // The pages carry the live store's WAL mode in their header.
    dst.query_row("PRAGMA journal_mode = DELETE", [], |r| {
        r.get::<_, String>(0)
    })
    .map_err(failed("setting the journal mode of", copy))?;
    dst.close().map_err(|(_, e)| failed("closing", copy)(e))
}

/// Checks and describes the copy: quick_check, SHA-256 and row counts,
/// at once on three threads.
///
/// Reading the file for its checksum while SQLite has it open drops the
/// read locks SQLite holds on it when the file is closed (POSIX locks go
/// with any close of the file in the process); nothing writes the copy,
/// so no reader can be surprised.
pub(crate) fn check(copy: &Path) -> Result<Checked, BackupError> {
    std::thread::scope(|threads| {
        let quick = threads.spawn(|| pragma_report(copy, "PRAGMA quick_check"));
        let sum = threads.spawn(|| crate::digest::file_now(copy));
        let tables = count_rows(copy);
        let quick_check = quick.join().expect("quick_check does not panic")?;
        let (size, sha256) = sum.join().expect("hashing does not panic")?;
        Ok(Checked {
            quick_check,
            size,
            sha256,
            tables: tables?,
        })
    })
}

/// The full `PRAGMA integrity_check` of the store file `path`: `["ok"]`
/// when it is sound.
pub(crate) fn integrity_check(path: &Path) -> Result<Vec<String>, BackupError> {
    pragma_report(path, "PRAGMA integrity_check")
}

fn read_only(path: &Path) -> Result<Connection, BackupError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed("opening", path))
}

fn pragma_report(path: &Path, pragma: &str) -> Result<Vec<String>, BackupError> {
    let conn = read_only(path)?;
    let mut stmt = conn.prepare(pragma).map_err(failed("checking", path))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(failed("checking", path))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(failed("checking", path))
}

fn count_rows(path: &Path) -> Result<BTreeMap<String, u64>, BackupError> {
    let conn = read_only(path)?;
    let names: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .map_err(failed("listing the tables of", path))?;
        stmt.query_map([], |r| r.get::<_, String>(0))
            .map_err(failed("listing the tables of", path))?
            .collect::<Result<_, _>>()
            .map_err(failed("listing the tables of", path))?
    };
    let mut counts = BTreeMap::new();
    for name in names {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))
            .map_err(failed("counting the rows of", path))?;
        counts.insert(name, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}
