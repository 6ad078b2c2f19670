//! `silo baseline`: record that a store already has the files up to a
//! version.

use std::process::ExitCode;

use serde_json::json;
use silo_migrate::service as ops;

use super::migrations_common::{migrate_failure, policy, version};
use crate::cli::BaselineArgs;
use crate::context::{CmdResult, Context, print_json};
use crate::interrupt;

pub async fn baseline(ctx: &Context, args: &BaselineArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    let v = version(&args.baseline, "VERSION")?;
    interrupt::install();
    ops::baseline(
        &ctx.stores,
        service,
        &v,
        policy(&service.name, args.lock.lock_timeout),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    if args.json {
        print_json(&json!({"service": service.name, "baseline": v.to_string()}));
    } else {
        outln!(
            "{}: baselined at version {v}; files up to it will not run",
            service.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
