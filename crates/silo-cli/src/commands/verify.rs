//! `silo verify`: prove on a scratch store that each undo restores the
//! schema.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use silo_migrate::verify::VerifyFailure;

use super::migrations_common::{migrate_failure, policy};
use crate::cli::ServiceArgs;
use crate::context::{CmdResult, Context, print_json};
use crate::interrupt;

pub async fn verify(ctx: &Context, args: &ServiceArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    interrupt::install();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} verifying {msg}").expect("template"));
    let report = silo_migrate::verify::verify(
        &ctx.manifest,
        &ctx.stores,
        service,
        policy(&service.name, args.lock.lock_timeout),
        |v| bar.set_message(format!("version {v}")),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, e))?;
    bar.finish_and_clear();
    if args.json {
        print_json(&json!({"service": service.name, "report": report}));
    } else {
        for v in &report.proven {
            outln!("{}: version {v}: undo restores the schema", service.name);
        }
        if !report.without_undo.is_empty() {
            outln!(
                "{}: no undo file for version(s) {}",
                service.name,
                report.without_undo.join(", ")
            );
        }
        match &report.failure {
            None => outln!(
                "{}: verified: {} undo(s) proven on a scratch store",
                service.name,
                report.proven.len()
            ),
            Some(VerifyFailure::Apply { version, error }) => {
                outln!(
                    "{}: version {version} does not apply: {error}",
                    service.name
                )
            }
            Some(VerifyFailure::Undo { version, error }) => {
                outln!(
                    "{}: the undo of version {version} fails: {error}",
                    service.name
                )
            }
            Some(VerifyFailure::NotRestored {
                version,
                differences,
            }) => {
                outln!(
                    "{}: the undo of version {version} does not restore the schema; after V{version} and U{version}, compared with before:",
                    service.name
                );
                for d in differences {
                    outln!("  {d}");
                }
            }
        }
    }
    Ok(if report.failure.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
