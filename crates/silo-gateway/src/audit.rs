//! The audit log: one JSON line per request, naming who asked for what
//! and how it ended — never a value, a credential or a message a store
//! wrote (those can quote values).
//!
//! ```json
//! {"time":"2026-11-29T02:00:00.123Z","request_id":"0193...","transport":"http",
//!  "service":"character","operation":"write","tables":["characters"],"rows":1,
//!  "duration_ms":2.417,"outcome":{"status":200,"code":"ok"}}
//! ```
//!
//! Lines go through a channel to a thread of their own, so a request never
//! waits on the disk; the thread writes in batches and flushes whenever the
//! channel runs dry, and [`AuditLog::close`] writes what is left.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::Serialize;

/// One request, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// When the request arrived (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    pub request_id: String,
    /// `http` or `nats`.
    pub transport: &'static str,
    /// The caller; `null` when it was not identified.
    pub service: Option<String>,
    pub operation: &'static str,
    /// The tables the request named, in order, each once.
    pub tables: Vec<String>,
    /// Rows returned (query) or changed (write); `null` when nothing ran.
    pub rows: Option<u64>,
    pub duration_ms: f64,
    pub outcome: Outcome,
}

/// How a request ended: the HTTP status and `ok` or the error's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub status: u16,
    pub code: &'static str,
}

impl Outcome {
    /// How a request refused with `error` ended.
    pub fn of(error: &crate::error::GatewayError) -> Self {
        Outcome {
            status: error.status.as_u16(),
            code: error.code,
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let t = time::OffsetDateTime::from(*t);
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Appended to a file, created 0600.
    File(PathBuf),
    /// Standard output (`-`).
    Stdout,
}

impl Target {
    /// `-` is standard output, anything else a path.
    pub fn parse(s: &str) -> Self {
        if s == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(s))
        }
    }
}

/// The audit log's writer.
pub struct AuditLog {
    tx: Mutex<Option<Sender<Entry>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens `target` (a file is created 0600 if missing, and appended to)
    /// and starts the thread that writes it.
    pub fn open(target: &Target) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(io::stdout()),
            Target::File(path) => Box::new(open_file(path)?),
        };
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("silo-gateway-audit".into())
            .spawn(move || write_lines(rx, BufWriter::new(out)))?;
        Ok(AuditLog {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues one line; never waits on the disk. After [`AuditLog::close`]
    /// the entry is dropped.
    pub fn record(&self, entry: Entry) {
        if let Some(tx) = self.tx.lock().expect("audit lock").as_ref() {
            // The writer only stops after close, so a send cannot fail
            // before it.
            let _ = tx.send(entry);
        }
    }

    /// Writes every queued line, flushes, and stops the writer. Called
    /// when the gateway has stopped; a second call does nothing.
    pub fn close(&self) {
        drop(self.tx.lock().expect("audit lock").take());
        if let Some(thread) = self.thread.lock().expect("audit lock").take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_file(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The writer thread: a line per entry, a flush whenever no more are
/// waiting, until every sender is gone.
fn write_lines(rx: Receiver<Entry>, mut out: BufWriter<Box<dyn Write + Send>>) {
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(entry) = next {
            let mut line = serde_json::to_vec(&entry).expect("an entry serializes");
            line.push(b'\n');
            if let Err(e) = out.write_all(&line) {
                report(&mut failed, &e);
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            report(&mut failed, &e);
        }
    }
    if let Err(e) = out.flush() {
        report(&mut failed, &e);
    }
}

/// A failing disk is said once, not once per request.
fn report(failed: &mut bool, e: &io::Error) {
    if !*failed {
        tracing::error!("cannot write the audit log: {e}");
        *failed = true;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    fn entry(n: u64) -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            request_id: format!("r{n}"),
            transport: "http",
            service: Some("orders".into()),
            operation: "write",
            tables: vec!["items".into()],
            rows: Some(n),
            duration_ms: 1.5,
            outcome: Outcome {
                status: 200,
                code: "ok",
            },
        }
    }

    #[test]
    fn lines_are_appended_to_a_private_file_and_flushed_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "earlier\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = AuditLog::open(&Target::File(path.clone())).unwrap();
        for n in 0..100 {
            log.record(entry(n));
        }
        log.close();
        log.record(entry(999));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 101, "{text}");
        assert_eq!(lines[0], "earlier");
        let first: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(first["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(first["request_id"], "r0");
        assert_eq!(first["outcome"]["code"], "ok");
        assert_eq!(first["tables"][0], "items");

        let fresh = dir.path().join("new.jsonl");
        AuditLog::open(&Target::File(fresh.clone()))
            .unwrap()
            .close();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
