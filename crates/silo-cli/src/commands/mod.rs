//! One module per command.

pub mod adopt;
pub mod audit;
pub mod backup;
pub mod backup_daemon;
pub mod backup_prune;
pub mod baseline;
pub mod connect;
pub mod credentials;
pub mod diff;
pub mod down;
pub mod events;
pub mod gateway;
pub mod import;
pub mod info;
pub mod init;
pub mod lint;
pub mod migrate;
mod migrate_backup;
mod migrations_common;
pub mod new;
pub mod repair;
pub mod restore;
pub mod restore_pitr;
pub mod schema;
pub mod status;
pub mod undo;
pub mod up;
pub mod validate;
pub mod verify;

use std::process::ExitCode;

use crate::context::{CmdResult, Failure};

/// `--explain [ID]` of lint (rules) and audit (checks): the page of `id`,
/// or with none the list of ids and what each is about.
pub fn explain(pages: &silo_report::Pages, id: &str, ids: &[&str], noun: &str) -> CmdResult {
    match pages.explain(id, ids) {
        Ok(text) => {
            out!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(unknown) => Err(Failure::usage(miette::miette!(
            help = format!("{noun}s: {}", unknown.known),
            "unknown {noun} `{}`",
            unknown.id
        ))),
    }
}
