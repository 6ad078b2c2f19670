//! `silo repair`: realign the history with the files.

use std::process::ExitCode;

use serde_json::json;
use silo_migrate::service as ops;

use super::migrations_common::{migrate_failure, policy};
use crate::cli::RepairArgs;
use crate::context::{CmdResult, Context, print_json, require_yes};
use crate::interrupt;

pub async fn repair(ctx: &Context, args: &RepairArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    require_yes(
        args.yes,
        &format!("rewrite the migration history of `{}`", service.name),
    )?;
    interrupt::install();
    let changes = ops::repair(
        &ctx.manifest,
        &ctx.stores,
        service,
        policy(&service.name, args.lock.lock_timeout),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    if args.json {
        print_json(&json!({"service": service.name, "changes": changes}));
    } else if changes.is_empty() {
        outln!("{}: the history needed no repair", service.name);
    } else {
        for c in &changes {
            outln!("{}: {c}", service.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
