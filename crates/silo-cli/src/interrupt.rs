//! Ctrl-C and SIGTERM during a command that writes a store (migrate, undo,
//! repair, baseline, migrations adopt) or runs migrations on a scratch
//! store (verify, diff), and during the events worker.
//!
//! The first signal cancels the run through its [`Cancel`] token: the
//! running statement is cancelled on the server, the open transaction
//! rolled back, the migration lock released, and the command reports what
//! state each store is in, then exits 130 (SIGINT) or 143 (SIGTERM). A
//! second signal exits at once. Commands that never install this keep the
//! default: the signal ends them.
//!
//! A long-running command that stops on a signal as its normal end (the
//! events worker) installs [`install_stop`] instead: the first signal asks
//! it to stop, and it exits with its own code (0 when all went well).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use silo_migrate::Cancel;
use tokio::signal::unix::{SignalKind, signal};

static TOKEN: OnceLock<Cancel> = OnceLock::new();
static INSTALLED: OnceLock<()> = OnceLock::new();
/// Set by [`install_stop`]: a signal is how the command ends, not a
/// failure.
static STOP_MODE: OnceLock<()> = OnceLock::new();
/// The first signal received, 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// The process's cancellation token (cancelled by the first signal once
/// [`install`] ran).
pub fn token() -> Cancel {
    TOKEN.get_or_init(Cancel::new).clone()
}

/// The first signal received, if one was and it cut the command short
/// (not when it was the way to stop a command installed with
/// [`install_stop`]).
pub fn received() -> Option<i32> {
    if STOP_MODE.get().is_some() {
        return None;
    }
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// The exit code of a command stopped by signal `signal`: 128 + its number,
/// as a shell reports it.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}

/// Takes over SIGINT and SIGTERM for the rest of the process. Call it
/// inside the runtime, once the command is about to touch a store (after
/// any question it asks, so Ctrl-C at a prompt still ends it at once).
pub fn install() {
    install_with(
        "cancelling the running statement on the server, rolling back and releasing the migration lock",
        "a statement still running on the server goes on until it ends (PostgreSQL then rolls back its open transaction and frees the lock)",
    );
}

/// Takes over SIGINT and SIGTERM for a command that runs until stopped:
/// the first signal cancels [`token`] and the command ends as it chooses
/// (its exit code stands); a second one exits at once.
pub fn install_stop() {
    install_stop_saying(
        "stopping: the batches in flight commit, no new one starts",
        "nothing is lost: a batch that did not commit is delivered again by the next run",
    );
}

/// [`install_stop`] for another command: `first_does` says what the first
/// signal does, `then` what exiting at once on the second leaves.
pub fn install_stop_saying(first_does: &'static str, then: &'static str) {
    let _ = STOP_MODE.set(());
    install_with(first_does, then);
}

/// Installs the handlers; `first` says what the first signal does, `then`
/// what exiting at once on the second leaves.
fn install_with(first_does: &'static str, then: &'static str) {
    if INSTALLED.set(()).is_err() {
        return;
    }
    // Registered here, before returning, so no signal falls between the
    // default action and ours.
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot handle Ctrl-C: it will end silo at once");
        return;
    };
    let cancel = token();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = interrupt.recv() => SIGINT,
            _ = terminate.recv() => SIGTERM,
        };
        RECEIVED.store(first, Ordering::SeqCst);
        let again = if first == SIGINT {
            "press Ctrl-C again"
        } else {
            "send SIGTERM or SIGINT again"
        };
        errln!("\nsilo: interrupted: {first_does}; {again} to exit at once");
        cancel.cancel();
        let second = tokio::select! {
            _ = interrupt.recv() => SIGINT,
            _ = terminate.recv() => SIGTERM,
        };
        errln!("silo: exiting at once; {then}");
        std::process::exit(i32::from(exit_code(second)));
    });
}
