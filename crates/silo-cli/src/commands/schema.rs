//! `silo schema dump`: print a store's live schema.

use std::process::ExitCode;

use serde_json::json;

use super::migrations_common::{migrate_failure, policy};
use crate::cli::SchemaCommand;
use crate::context::{CmdResult, Context, print_json};

pub async fn schema(ctx: &Context, command: &SchemaCommand) -> CmdResult {
    let SchemaCommand::Dump(args) = command;
    let service = ctx.service(&args.service)?;
    let schema = silo_migrate::verify::dump(
        &ctx.stores,
        service,
        policy(&service.name, args.lock.lock_timeout),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    if args.json {
        print_json(&json!({"service": service.name, "schema": schema}));
    } else {
        out!("{schema}");
    }
    Ok(ExitCode::SUCCESS)
}
