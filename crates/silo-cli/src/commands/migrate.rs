//! `silo migrate`: apply pending migrations, every service at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use silo_manifest::Service;
use silo_migrate::service as ops;
use silo_migrate::{MigrateError, MigrateOptions, Step};
use silo_store::StoreError;

use super::migrate_backup::BackupFirst;
use super::migrations_common::{exit_code, policy, report, version};
use crate::cli::MigrateArgs;
use crate::context::{CmdResult, Context, print_json, table};
use crate::interrupt;

/// One service's migrate run that stopped: the steps applied before the
/// error, and the error.
struct Halted {
    applied: Vec<Step>,
    error: MigrateError,
}

impl From<StoreError> for Halted {
    fn from(e: StoreError) -> Self {
        Halted {
            applied: Vec::new(),
            error: e.into(),
        }
    }
}

/// One service's migrate run: its steps, or where it stopped.
type ServiceRun = Result<Vec<Step>, Halted>;

fn spinner(multi: &MultiProgress, service: &str) -> ProgressBar {
    let bar = multi.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}").expect("template"),
    );
    bar.set_prefix(service.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

pub async fn migrate(ctx: &Context, args: &MigrateArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let options = MigrateOptions {
        target: args
            .target
            .as_deref()
            .map(|t| version(t, "--target"))
            .transpose()?,
        dry_run: args.dry_run,
        ignore_mismatch: args.ignore_mismatch,
        out_of_order: args.out_of_order,
        resume: args.resume,
        ignore_missing: false,
    };
    let backup_first = BackupFirst::of(ctx, args);
    interrupt::install();
    let cancel = interrupt::token();
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let stop = AtomicBool::new(false);
    let results: Vec<(&Service, ServiceRun)> = ctx
        .stores
        .for_each(
            &services,
            |_, service| {
                let (options, stop, cancel, multi) = (&options, &stop, &cancel, &multi);
                let backup_first = backup_first.as_ref();
                async move {
                    if cancel.is_cancelled() {
                        let skipped = MigrateError::Cancelled(Box::new(
                            silo_migrate::Cancelled::new(silo_migrate::Stopped::NotStarted),
                        ));
                        return Err(Halted {
                            applied: Vec::new(),
                            error: skipped,
                        });
                    }
                    if stop.load(Ordering::SeqCst) {
                        return Err(Halted {
                            applied: Vec::new(),
                            error: MigrateError::Refused("skipped: --fail-fast".into()),
                        });
                    }
                    let bar = spinner(multi, &service.name);
                    if let Some(backup_first) = backup_first
                        && let Err(error) =
                            backup_first.before(ctx, service, options, args, &bar).await
                    {
                        bar.finish_and_clear();
                        if args.fail_fast {
                            stop.store(true, Ordering::SeqCst);
                        }
                        return Err(Halted {
                            applied: Vec::new(),
                            error,
                        });
                    }
                    // Steps arrive as they commit, so a failure still
                    // reports what was applied before it.
                    let mut applied: Vec<Step> = Vec::new();
                    let result = ops::migrate(
                        &ctx.manifest,
                        &ctx.stores,
                        service,
                        options,
                        policy(&service.name, args.lock.lock_timeout),
                        |step: &Step| {
                            bar.set_message(format!("applied {}", step.script));
                            applied.push(step.clone());
                        },
                    )
                    .await;
                    bar.finish_and_clear();
                    result.map_err(|error| {
                        if args.fail_fast {
                            stop.store(true, Ordering::SeqCst);
                        }
                        Halted { applied, error }
                    })
                }
            },
            |_, _| {},
        )
        .await;

    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| {
                let mut row = match r {
                    Ok(steps) => json!({"service": s.name, "applied": steps, "error": null}),
                    Err(h) => json!({
                        "service": s.name,
                        "applied": h.applied,
                        "error": h.error.describe(),
                        "cancelled": h.error.is_cancelled(),
                    }),
                };
                if let Some(b) = &backup_first {
                    row["backup"] = b.json(&s.name);
                }
                row
            })
            .collect();
        print_json(
            &json!({"dry_run": args.dry_run, "services": rows, "summary": {"failed": failed}}),
        );
    } else {
        print_table(args, &results);
        if let Some(b) = &backup_first {
            b.print();
        }
    }
    let outcomes: Vec<(&Service, Result<(), MigrateError>)> = results
        .into_iter()
        .map(|(s, r)| (s, r.map(|_| ()).map_err(|h| h.error)))
        .collect();
    let code = exit_code(&outcomes);
    if !args.json {
        for (s, r) in outcomes {
            match r {
                // What state the store is in, in one line per store.
                Err(e) if e.is_cancelled() => {
                    errln!("{}: {}", s.name, e.describe());
                    if let Some(hint) = e.hint() {
                        errln!("  {}", hint.replace("<service>", &s.name));
                    }
                }
                Err(e) => errln!("{:?}", report(&s.name, e)),
                Ok(()) => {}
            }
        }
    }
    Ok(code)
}

/// The result of each service, then with `--dry-run` the SQL it would run.
fn print_table(args: &MigrateArgs, results: &[(&Service, ServiceRun)]) {
    let mut t = table(&["service", "result", "migrations"]);
    for (s, r) in results {
        let (result, detail) = match r {
            Ok(steps) if steps.is_empty() => ("up to date".to_string(), String::new()),
            Ok(steps) => (
                if args.dry_run {
                    "would apply"
                } else {
                    "applied"
                }
                .to_string(),
                steps
                    .iter()
                    .map(|st| match (&st.no_transaction, st.resumed_from) {
                        (Some(why), Some(n)) => format!(
                            "{} (no transaction: {why}; resumed from statement {n})",
                            st.script
                        ),
                        (Some(why), None) => format!("{} (no transaction: {why})", st.script),
                        (None, _) => st.script.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Err(h) => (
                if h.error.is_cancelled() {
                    "CANCELLED"
                } else {
                    "FAILED"
                }
                .to_string(),
                h.applied
                    .iter()
                    .map(|st| format!("{} applied", st.script))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        t.add_row(vec![s.name.clone(), result, detail]);
    }
    outln!("{t}");
    if args.dry_run {
        for (s, r) in results {
            for st in r.iter().flatten() {
                outln!(
                    "\n-- {}: {}\n{}",
                    s.name,
                    st.script,
                    st.sql.as_deref().unwrap_or("")
                );
            }
        }
    }
}
