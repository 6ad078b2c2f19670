//! `silo migrate`, `info`, `validate`, `undo`, `repair`, `baseline`, `new`,
//! `migrations import`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use miette::{LabeledSpan, MietteDiagnostic, NamedSource, Report};
use serde_json::json;
use silo_manifest::Service;
use silo_migrate::service as ops;
use silo_migrate::{FileError, LockPolicy, MigrateError, MigrateOptions, Step, Version};

use crate::cli::{
    BaselineArgs, ImportTool, InfoArgs, LockArgs, MigrateArgs, MigrationsCommand, NewArgs,
    RepairArgs, SchemaCommand, ServiceArgs, UndoArgs,
};
use crate::context::{
    CmdResult, Context, Failure, ask, exit_code_all, exit_code_of, interactive, print_json,
    refuse_without_terminal, require_yes, table,
};
use crate::interrupt;
use silo_migrate::import::Tool;
use silo_migrate::verify::VerifyFailure;

/// One service's migrate run: its steps, or the steps applied before the
/// error and the error.
type ServiceRun = Result<Vec<Step>, (Vec<Step>, MigrateError)>;

pub(crate) fn policy(service: &str, lock: &LockArgs) -> LockPolicy {
    let service = service.to_string();
    LockPolicy {
        timeout: Duration::from_secs(lock.lock_timeout),
        on_wait: Arc::new(move |who| {
            errln!("{service}: waiting for {who} to finish migrating this store");
        }),
        cancel: interrupt::token(),
    }
}

fn version(text: &str, flag: &str) -> Result<Version, Failure> {
    Version::parse(text)
        .map_err(|e| Failure::usage(miette::miette!("invalid {flag} `{text}`: {e}")))
}

/// A migration error as a diagnostic; a failed file shows its source with
/// the failing spot underlined.
pub fn report(service: &str, e: &MigrateError) -> Report {
    let message = format!("{service}: {}", e.describe());
    let mut diag = MietteDiagnostic::new(message);
    if let Some(hint) = e.hint() {
        diag = diag.with_help(hint.replace("<service>", service));
    }
    if let MigrateError::Failed(f) = e {
        diag = diag.with_help(if f.rolled_back {
            "the file ran in a transaction: it was rolled back and is not recorded as applied".to_string()
        } else {
            "the file ran outside a transaction: statements before the failing one stay applied, and `silo info` shows it partial. Fix the failing statement and run again with --resume to go on from it; or revert what ran by hand, then `silo repair`".to_string()
        });
        if let Some(loc) = &f.location
            && let Ok(text) = std::fs::read_to_string(&loc.path)
        {
            let offset = offset_of(&text, loc.line, loc.column);
            let len = f
                .statement
                .as_ref()
                .map_or(1, |s| s.len().min(text.len() - offset).max(1));
            diag = diag.with_label(LabeledSpan::at(offset..offset + len, "here"));
            return Report::new(diag)
                .with_source_code(NamedSource::new(loc.path.display().to_string(), text));
        }
    }
    Report::new(diag)
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

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
    };
    interrupt::install();
    let cancel = interrupt::token();
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let jobs = services.iter().enumerate().map(|(position, &service)| {
        let bar = spinner(&multi, &service.name);
        let options = options.clone();
        let stop = stop.clone();
        let cancel = cancel.clone();
        async move {
            if cancel.is_cancelled() {
                bar.finish_and_clear();
                let skipped = MigrateError::Cancelled(Box::new(silo_migrate::Cancelled::new(
                    silo_migrate::Stopped::NotStarted,
                )));
                return (position, service, Err((Vec::new(), skipped)));
            }
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                bar.finish_and_clear();
                let skipped = MigrateError::Refused("skipped: --fail-fast".into());
                return (position, service, Err((Vec::new(), skipped)));
            }
            // Steps arrive as they commit, so a failure still reports what
            // was applied before it.
            let mut applied: Vec<Step> = Vec::new();
            let result = ops::migrate(
                &ctx.manifest,
                &ctx.stores,
                service,
                &options,
                policy(&service.name, &args.lock),
                |step: &Step| {
                    bar.set_message(format!("applied {}", step.script));
                    applied.push(step.clone());
                },
            )
            .await;
            let result = match result {
                Ok(steps) => Ok(steps),
                Err(e) => Err((applied, e)),
            };
            if result.is_err() && args.fail_fast {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            bar.finish_and_clear();
            (position, service, result)
        }
    });
    let mut finished: Vec<(usize, &Service, ServiceRun)> = futures::stream::iter(jobs)
        .buffer_unordered(ctx.jobs)
        .collect()
        .await;
    finished.sort_unstable_by_key(|(position, _, _)| *position);
    let results: Vec<(&Service, ServiceRun)> = finished
        .into_iter()
        .map(|(_, service, result)| (service, result))
        .collect();

    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| match r {
                Ok(steps) => json!({"service": s.name, "applied": steps, "error": null}),
                Err((steps, e)) => json!({
                    "service": s.name,
                    "applied": steps,
                    "error": e.describe(),
                    "cancelled": e.is_cancelled(),
                }),
            })
            .collect();
        print_json(
            &json!({"dry_run": args.dry_run, "services": rows, "summary": {"failed": failed}}),
        );
    } else {
        let mut t = table(&["service", "result", "migrations"]);
        for (s, r) in &results {
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
                Err((steps, e)) => (
                    if e.is_cancelled() {
                        "CANCELLED"
                    } else {
                        "FAILED"
                    }
                    .to_string(),
                    steps
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
            for (s, r) in &results {
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
        for (s, r) in &results {
            match r {
                // What state the store is in, in one line per store.
                Err((_, e)) if e.is_cancelled() => {
                    errln!("{}: {}", s.name, e.describe());
                    if let Some(hint) = e.hint() {
                        errln!("  {}", hint.replace("<service>", &s.name));
                    }
                }
                Err((_, e)) => errln!("{:?}", report(&s.name, e)),
                Ok(_) => {}
            }
        }
    }
    let outcomes: Vec<(&Service, Result<(), MigrateError>)> = results
        .into_iter()
        .map(|(s, r)| (s, r.map(|_| ()).map_err(|(_, e)| e)))
        .collect();
    Ok(exit_code(&outcomes))
}

fn exit_code<T>(results: &[(&Service, Result<T, MigrateError>)]) -> ExitCode {
    exit_code_all(results.iter().filter_map(|(_, r)| r.as_ref().err()))
}

async fn infos<'a>(
    ctx: &'a Context,
    services: &[&'a Service],
) -> Vec<(&'a Service, Result<ops::Info, MigrateError>)> {
    let lock = LockArgs { lock_timeout: 30 };
    let jobs = services.iter().map(|&service| {
        let policy = policy(&service.name, &lock);
        async move {
            (
                service,
                ops::info(&ctx.manifest, &ctx.stores, service, policy).await,
            )
        }
    });
    // `buffered` keeps the order of `services`.
    futures::stream::iter(jobs)
        .buffered(ctx.jobs)
        .collect()
        .await
}

pub async fn info(ctx: &Context, args: &InfoArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let results = infos(ctx, &services).await;
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| match r {
                Ok(info) => json!({
                    "service": s.name,
                    "migrations": info.entries,
                    "foreign_history": info.foreign,
                    "hint": foreign_hint(&s.name, &info.foreign),
                }),
                Err(e) => json!({"service": s.name, "migrations": [], "error": e.describe()}),
            })
            .collect();
        print_json(&json!({ "services": rows }));
    } else {
        let mut t = table(&[
            "service",
            "version",
            "description",
            "type",
            "state",
            "undo",
            "installed on",
        ]);
        for (s, r) in &results {
            match r {
                Ok(info) if info.entries.is_empty() => {
                    t.add_row(vec![s.name.clone(), "-".into(), "(no migrations)".into()]);
                }
                Ok(info) => {
                    for e in &info.entries {
                        t.add_row(vec![
                            s.name.clone(),
                            e.version.clone().unwrap_or_else(|| "-".into()),
                            e.description.clone(),
                            e.kind.to_string(),
                            match &e.partial {
                                Some(p) => format!("partial ({})", p.summary()),
                                None => e.state.as_str().to_string(),
                            },
                            if e.undo { "yes" } else { "" }.to_string(),
                            e.installed_on.clone().unwrap_or_default(),
                        ]);
                    }
                }
                Err(e) => {
                    t.add_row(vec![
                        s.name.clone(),
                        "-".into(),
                        format!("error: {}", e.describe()),
                    ]);
                }
            }
        }
        outln!("{t}");
        for (s, r) in &results {
            if let Err(e) = r {
                errln!("{:?}", report(&s.name, e));
            }
        }
        print_foreign_notes(&results);
    }
    Ok(exit_code(&results))
}

/// What to do about another tool's history in a store silo never migrated.
fn foreign_hint(service: &str, foreign: &[silo_migrate::adopt::Found]) -> Option<String> {
    let found = foreign.iter().find(|f| f.rows != Some(0))?;
    Some(format!(
        "{}'s history ({}) is in the store and silo's is empty: the files above are shown pending, but {} applied them. `silo migrations adopt {service} --from {}` records what it applied; `silo migrate` refuses until then",
        found.tool.title(),
        found.table,
        found.tool.title(),
        found.tool,
    ))
}

/// Prints [`foreign_hint`] for each service, on stderr (stdout is the
/// table).
fn print_foreign_notes(results: &[(&Service, Result<ops::Info, MigrateError>)]) {
    for (s, r) in results {
        if let Ok(info) = r
            && let Some(hint) = foreign_hint(&s.name, &info.foreign)
        {
            errln!("note: {}: {hint}", s.name);
        }
    }
}

pub async fn validate(ctx: &Context, args: &InfoArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let results = infos(ctx, &services).await;
    let mut any = false;
    let mut rows = Vec::new();
    for (s, r) in &results {
        match r {
            Ok(info) => {
                let problems = silo_migrate::state::problems(&info.entries);
                any |= !problems.is_empty();
                if !args.json {
                    for p in &problems {
                        outln!("{}: {p}", s.name);
                    }
                }
                rows.push(
                    json!({"service": s.name, "valid": problems.is_empty(), "problems": problems}),
                );
            }
            Err(e) => {
                if !args.json {
                    errln!("{:?}", report(&s.name, e));
                }
                rows.push(json!({"service": s.name, "valid": false, "error": e.describe()}));
            }
        }
    }
    if args.json {
        print_json(&json!({ "services": rows }));
    } else {
        if !any && results.iter().all(|(_, r)| r.is_ok()) {
            outln!(
                "{} service(s) valid: every applied migration matches its file",
                results.len()
            );
        }
        print_foreign_notes(&results);
    }
    let code = exit_code(&results);
    Ok(if code == ExitCode::SUCCESS && any {
        ExitCode::from(1)
    } else {
        code
    })
}

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
    if args.dry_run || !args.yes {
        let plan = ops::undo_plan(
            &ctx.manifest,
            &ctx.stores,
            service,
            to.as_ref(),
            policy(&service.name, &args.lock),
        )
        .await
        .map_err(|e| migrate_failure(&service.name, &e))?;
        if args.dry_run {
            if args.json {
                print_json(&json!({"service": service.name, "dry_run": true, "undone": plan}));
            } else {
                out!("{}", undo_plan_text(&service.name, &plan));
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
        err!("{}", undo_plan_text(&service.name, &plan));
        if !ask(&format!(
            "\nrun these {} U file(s) on `{}`? what they drop is gone",
            plan.len(),
            service.name
        )) {
            errln!("nothing changed");
            return Ok(ExitCode::from(1));
        }
    }
    interrupt::install();
    let options = silo_migrate::UndoOptions {
        to,
        resume: args.resume,
    };
    let result = ops::undo(
        &ctx.manifest,
        &ctx.stores,
        service,
        &options,
        policy(&service.name, &args.lock),
        |step: &Step| errln!("{}: undid {}", service.name, step.script),
    )
    .await;
    match result {
        Ok(steps) => {
            if args.json {
                print_json(&json!({"service": service.name, "dry_run": false, "undone": steps}));
            } else if steps.is_empty() {
                outln!("{}: nothing to undo", service.name);
            } else {
                outln!("{}: undid {} migration(s)", service.name, steps.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(migrate_failure(&service.name, &e)),
    }
}

/// The U files an undo would run, in order, each with its SQL.
fn undo_plan_text(service: &str, plan: &[Step]) -> String {
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

pub(crate) fn migrate_failure(service: &str, e: &MigrateError) -> Failure {
    Failure {
        code: exit_code_of(e),
        report: report(service, e),
    }
}

pub async fn repair(ctx: &Context, args: &RepairArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    require_yes(
        args.yes,
        &format!("rewrite the migration history of `{}`", service.name),
    )?;
    interrupt::install();
    let lock = LockArgs { lock_timeout: 300 };
    let changes = ops::repair(
        &ctx.manifest,
        &ctx.stores,
        service,
        policy(&service.name, &lock),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, &e))?;
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

pub async fn baseline(ctx: &Context, args: &BaselineArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    let v = version(&args.baseline, "VERSION")?;
    interrupt::install();
    let lock = LockArgs { lock_timeout: 300 };
    ops::baseline(&ctx.stores, service, &v, policy(&service.name, &lock))
        .await
        .map_err(|e| migrate_failure(&service.name, &e))?;
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

pub fn new(ctx: &Context, args: &NewArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    let created = ops::new_migration(&ctx.manifest, service, &args.description)
        .map_err(|e| migrate_failure(&service.name, &e))?;
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
    let fail = |e: FileError| migrate_failure(&service.name, &e.into());
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

pub async fn verify(ctx: &Context, args: &ServiceArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    interrupt::install();
    let lock = LockArgs { lock_timeout: 300 };
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} verifying {msg}").expect("template"));
    let report = silo_migrate::verify::verify(
        &ctx.manifest,
        &ctx.stores,
        service,
        policy(&service.name, &lock),
        |v| bar.set_message(format!("version {v}")),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, &e))?;
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

pub async fn diff(ctx: &Context, args: &ServiceArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    interrupt::install();
    let lock = LockArgs { lock_timeout: 300 };
    let differences = silo_migrate::verify::drift(
        &ctx.manifest,
        &ctx.stores,
        service,
        policy(&service.name, &lock),
    )
    .await
    .map_err(|e| migrate_failure(&service.name, &e))?;
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

pub async fn schema(ctx: &Context, command: &SchemaCommand) -> CmdResult {
    let SchemaCommand::Dump(args) = command;
    let service = ctx.service(&args.service)?;
    let lock = LockArgs { lock_timeout: 30 };
    let schema = silo_migrate::verify::dump(&ctx.stores, service, policy(&service.name, &lock))
        .await
        .map_err(|e| migrate_failure(&service.name, &e))?;
    if args.json {
        print_json(&json!({"service": service.name, "schema": schema}));
    } else {
        out!("{schema}");
    }
    Ok(ExitCode::SUCCESS)
}
