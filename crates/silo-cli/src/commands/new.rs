//! `silo new`: write the next V and U files of a service.

use std::process::ExitCode;

use serde_json::json;
use silo_migrate::service as ops;

use super::migrations_common::migrate_failure;
use crate::cli::NewArgs;
use crate::context::{CmdResult, Context, print_json};

pub fn new(ctx: &Context, args: &NewArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    let created = ops::new_migration(&ctx.manifest, service, &args.description)
        .map_err(|e| migrate_failure(&service.name, e))?;
    if args.json {
        print_json(&json!({"service": service.name, "created": created}));
    } else {
        for path in &created {
            outln!("created {}", path.display());
        }
        if created.len() > 2 {
            outln!(
                "the migrations folder keeps one subfolder per engine: each got the pair; write each engine's SQL"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
