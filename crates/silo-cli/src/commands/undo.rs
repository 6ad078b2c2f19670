//! `silo undo`: run U files, newest first, after a preview and a
//! confirmation.

use std::process::ExitCode;

use serde_json::json;
use silo_migrate::Step;
use silo_migrate::service as ops;

use super::migrations_common::{migrate_failure, policy, version};
use crate::cli::UndoArgs;
use crate::context::{CmdResult, Context, ask, interactive, print_json, refuse_without_terminal};
use crate::interrupt;

pub async fn undo(ctx: &Context, args: &UndoArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    let to = args.to.as_deref().map(|t| version(t, "--to")).transpose()?;
    let what = format!("undo migrations of `{}`", service.name);
    // Refuse before connecting: nothing is read or changed.
    if !args.dry_run && !args.yes && !interactive() {
        return Err(refuse_without_terminal(
            &what,
            "run again with --dry-run to see the U files and their SQL, then with --yes to undo",
        ));
    }
    let mut expect = None;
    if args.dry_run || !args.yes {
        let plan = ops::undo_plan(
            &ctx.manifest,
            &ctx.stores,
            service,
            to.as_ref(),
            policy(&service.name, args.lock.lock_timeout),
        )
        .await
        .map_err(|e| migrate_failure(&service.name, e))?;
        if args.dry_run {
            if args.json {
                print_json(&json!({"service": service.name, "dry_run": true, "undone": plan}));
            } else {
                out!("{}", plan_text(&service.name, &plan));
            }
            return Ok(ExitCode::SUCCESS);
        }
        if plan.is_empty() {
            if args.json {
                print_json(&json!({"service": service.name, "dry_run": false, "undone": plan}));
            } else {
                outln!("{}: nothing to undo", service.name);
            }
            return Ok(ExitCode::SUCCESS);
        }
        err!("{}", plan_text(&service.name, &plan));
        if !ask(&format!(
            "\nrun these {} U file(s) on `{}`? what they drop is gone",
            plan.len(),
            service.name
        )) {
            errln!("nothing changed");
            return Ok(ExitCode::from(1));
        }
        // Exactly what was shown runs, or nothing.
        expect = Some(plan.iter().map(|s| s.script.clone()).collect());
    }
    interrupt::install();
    let options = silo_migrate::UndoOptions {
        to,
        resume: args.resume,
        expect,
    };
    let steps = ops::undo(
        &ctx.manifest,
        &ctx.stores,
        service,
        &options,
        policy(&service.name, args.lock.lock_timeout),
        |step: &Step| errln!("{}: undid {}", service.name, step.script),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    if args.json {
        print_json(&json!({"service": service.name, "dry_run": false, "undone": steps}));
    } else if steps.is_empty() {
        outln!("{}: nothing to undo", service.name);
    } else {
        outln!("{}: undid {} migration(s)", service.name, steps.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// The U files an undo would run, in order, each with its SQL.
fn plan_text(service: &str, plan: &[Step]) -> String {
    if plan.is_empty() {
        return format!("{service}: nothing to undo\n");
    }
    let mut out = format!(
        "{service}: would undo {} migration(s), newest first:\n",
        plan.len()
    );
    for step in plan {
        let mut how = match &step.no_transaction {
            Some(why) => format!("no transaction: {why}"),
            None => "one transaction".to_string(),
        };
        if let Some(n) = step.resumed_from {
            how.push_str(&format!(
                "; it stopped part way: --resume goes on from statement {n}"
            ));
        }
        out.push_str(&format!(
            "\n-- {service}: {} ({how})\n{}\n",
            step.script,
            step.sql.as_deref().unwrap_or("").trim_end()
        ));
    }
    out
}
