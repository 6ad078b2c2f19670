//! `silo diff`: compare the live schema with what the migrations make.

use std::process::ExitCode;

use serde_json::json;

use super::migrations_common::{migrate_failure, policy};
use crate::cli::ServiceArgs;
use crate::context::{CmdResult, Context, print_json};
use crate::interrupt;

pub async fn diff(ctx: &Context, args: &ServiceArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    interrupt::install();
    let differences = silo_migrate::verify::drift(
        &ctx.manifest,
        &ctx.stores,
        service,
        policy(&service.name, args.lock.lock_timeout),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    if args.json {
        print_json(&json!({"service": service.name, "drift": differences}));
    } else if differences.is_empty() {
        outln!(
            "{}: no drift: the live schema is what the migrations make",
            service.name
        );
    } else {
        outln!(
            "{}: the live schema differs from what the migrations make (+ only live, - only in migrations):",
            service.name
        );
        for d in &differences {
            outln!("  {d}");
        }
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
