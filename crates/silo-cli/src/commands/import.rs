//! `silo migrations import`: convert another tool's migration files.

use std::process::ExitCode;

use serde_json::json;
use silo_migrate::FileError;
use silo_migrate::import::Tool;

use super::migrations_common::migrate_failure;
use crate::cli::{ImportTool, MigrationsCommand};
use crate::context::{CmdResult, Context, print_json};

pub fn import(ctx: &Context, command: &MigrationsCommand) -> CmdResult {
    let MigrationsCommand::Import {
        from,
        source,
        service,
        json,
    } = command
    else {
        unreachable!("adopt has its own handler");
    };
    let service = ctx.service(service)?;
    let tool = match from {
        ImportTool::Sqlx => Tool::Sqlx,
        ImportTool::Diesel => Tool::Diesel,
        ImportTool::Refinery => Tool::Refinery,
    };
    let fail = |e: FileError| migrate_failure(&service.name, e.into());
    let plan = silo_migrate::import::plan(tool, source).map_err(fail)?;
    let dest = silo_migrate::file::service_dir(&ctx.manifest, service).map_err(fail)?;
    let written = silo_migrate::import::write(&plan, &dest).map_err(fail)?;
    if *json {
        print_json(&json!({"service": service.name, "written": written}));
    } else {
        outln!(
            "imported {} file(s) from {} into {}",
            written.len(),
            source.display(),
            dest.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
