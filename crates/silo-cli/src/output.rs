//! Everything silo prints on stdout goes through [`out!`] and [`outln!`],
//! so that a reader that leaves early (`silo lint --explain | head -1`)
//! ends the output quietly, like ripgrep, instead of a panic.
//!
//! Why not restore SIGPIPE's default action at startup, as C tools do: the
//! signal kills the process wherever it is, on any broken pipe or socket
//! that is not written with `MSG_NOSIGNAL`, possibly half way through work
//! a command must finish or clean up (a scratch database, a migration
//! lock). Here a closed stdout only ends the output: the command finishes
//! its work and exits with its own code.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout can no longer be written; later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// A write error other than a closed pipe (a full disk, say), reported
/// when the command ends.
static FAILURE: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes to stdout; see the module's documentation for closed pipes.
pub fn write(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            *FAILURE.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }
}

/// Flushes stdout at the end of a command, and returns the write error to
/// report, if any (a closed pipe is not one).
pub fn finish() -> Option<std::io::Error> {
    if !CLOSED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
        && e.kind() != ErrorKind::BrokenPipe
    {
        return Some(e);
    }
    FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// `print!` that survives a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// `println!` that survives a closed stdout.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stderr, ignoring a closed or broken stderr: diagnostics are
/// worth nothing to a reader that has gone, and a failed write must never
/// end a command half way (`eprintln!` panics there).
pub fn write_err(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `eprint!` that survives a closed stderr.
#[allow(unused_macros)]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!($($arg)*))
    };
}

/// `eprintln!` that survives a closed stderr.
macro_rules! errln {
    () => {
        $crate::output::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
