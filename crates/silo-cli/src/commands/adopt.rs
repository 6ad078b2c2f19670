//! `silo migrations adopt`: take in the history another tool kept in a
//! service's store. The work is `silo_migrate::adopt`; this prints it.

use std::process::ExitCode;

use serde_json::json;
use silo_migrate::adopt::{self, Adoption, Outcome, Tool};
use silo_migrate::service as ops;

use crate::cli::{AdoptArgs, AdoptTool};
use crate::commands::migrations_common::{migrate_failure, policy};
use crate::context::{CmdResult, Context, Failure, print_json, table};

pub async fn run(ctx: &Context, args: &AdoptArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    if let Some(table) = &args.table {
        adopt::check_table_name(table)
            .map_err(|e| Failure::usage(miette::miette!("invalid --table: {e}")))?;
    }
    let options = adopt::Options {
        tool: match args.from {
            AdoptTool::Flyway => Tool::Flyway,
            AdoptTool::Sqlx => Tool::Sqlx,
            AdoptTool::Diesel => Tool::Diesel,
            AdoptTool::Refinery => Tool::Refinery,
        },
        table: args.table.clone(),
        dry_run: args.dry_run,
    };
    crate::interrupt::install();
    let adoption = ops::adopt(
        &ctx.manifest,
        &ctx.stores,
        service,
        &options,
        policy(&service.name, args.lock.lock_timeout),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    let problems = adoption.problems().count();
    if args.json {
        print_json(&json!({
            "service": service.name,
            "tool": adoption.tool,
            "table": adoption.table,
            "dry_run": adoption.dry_run,
            "rows": adoption.rows,
            "summary": {
                "rows": adoption.rows.len(),
                "recorded": adoption.recorded(),
                "already_recorded": adoption.already_recorded(),
                "problems": problems,
            },
        }));
    } else {
        print_human(&service.name, &adoption);
    }
    Ok(if problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_human(service: &str, a: &Adoption) {
    let tool = a.tool.title();
    if a.rows.is_empty() {
        outln!("{service}: {} is empty: nothing to adopt", a.table);
        return;
    }
    if a.recorded() == 0 && a.problems().count() == 0 {
        outln!(
            "{service}: nothing to do: every row of {} is already in silo_schema_history ({} already recorded)",
            a.table,
            a.already_recorded()
        );
        return;
    }
    let mut t = table(&["version", "script", "installed on", "by", "result"]);
    for r in &a.rows {
        t.add_row(vec![
            r.version.clone().unwrap_or_else(|| "-".into()),
            r.script.clone(),
            r.installed_on.clone(),
            r.installed_by.clone().unwrap_or_default(),
            format!("{}: {}", r.outcome.as_str(), r.detail),
        ]);
    }
    outln!("{service}: {} ({tool}), {} row(s)", a.table, a.rows.len());
    outln!("{t}");
    let verb = if a.dry_run {
        "would record"
    } else {
        "recorded"
    };
    outln!(
        "{service}: {verb} {} row(s) in silo_schema_history; {} already there; {} problem(s){}",
        a.recorded(),
        a.already_recorded(),
        a.problems().count(),
        if a.dry_run {
            " (--dry-run: nothing was changed)"
        } else {
            ""
        }
    );
    let has = |o: Outcome| a.rows.iter().any(|r| r.outcome == o);
    if has(Outcome::ChecksumMismatch) {
        errln!(
            "help: a file is not what {tool} applied: restore it, or check the store and accept the file with `silo repair {service} --yes`; until then `silo migrate` refuses"
        );
    }
    if has(Outcome::Failed) {
        errln!(
            "help: {tool} recorded a failure: fix what it left half done, then `silo repair {service} --yes` drops the failed row and `silo migrate` runs the file again"
        );
    }
    if has(Outcome::MissingFile) {
        errln!(
            "help: a migration {tool} applied has no file here: restore it into the service's migrations folder (`silo migrations import` converts a folder)"
        );
    }
    if has(Outcome::Unsupported) {
        errln!("help: silo runs SQL files only: rewrite the migration as SQL, or baseline past it");
    }
    if !a.dry_run && a.recorded() > 0 {
        outln!(
            "{service}: {} is left as it is; `silo info {service}` shows the adopted history",
            a.table
        );
    }
}
