//! `silo backup`, `silo backup list` and `silo backup verify`.

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use silo_backup::backup::{self, Request};
use silo_backup::restore::{self, Restored};
use silo_backup::{BackupError, BackupId, BackupMeta, Destination};
use silo_manifest::Service;

use crate::cli::{BackupArgs, BackupCommand, BackupListArgs, BackupVerifyArgs};
use crate::commands::restore_pitr;
use crate::context::{
    CmdResult, Context, Failure, describe, exit_code_all, human_size, print_json, progress,
    store_report, table,
};

pub async fn run(ctx: &Context, args: &BackupArgs) -> CmdResult {
    match &args.command {
        Some(BackupCommand::List(list_args)) => list(ctx, list_args).await,
        Some(BackupCommand::Verify(verify_args)) => verify(ctx, verify_args).await,
        Some(BackupCommand::Setup(setup_args)) => restore_pitr::setup(ctx, setup_args).await,
        Some(BackupCommand::Prune(prune_args)) => super::backup_prune::run(ctx, prune_args).await,
        Some(BackupCommand::Daemon(daemon_args)) => {
            super::backup_daemon::run(ctx, daemon_args).await
        }
        None => take(ctx, args).await,
    }
}

/// The staging folder of every backup and restore of the project.
fn staging_root(ctx: &Context) -> std::path::PathBuf {
    ctx.manifest.data_dir.join("backups").join(".staging")
}

/// Reads `--backup ID`.
pub fn parse_id(id: Option<&str>) -> Result<Option<BackupId>, Failure> {
    id.map(|id| {
        BackupId::parse(id).ok_or_else(|| {
            Failure::usage(miette::miette!(
                help = "ids look like 20261128T010203Z-9f3a; `silo backup list` shows them",
                "`{id}` is not a backup id"
            ))
        })
    })
    .transpose()
}

/// The total rows of a backup.
fn rows(meta: &BackupMeta) -> u64 {
    meta.tables.values().sum()
}

async fn take(ctx: &Context, args: &BackupArgs) -> CmdResult {
    let (pitr, services) = restore_pitr::split(ctx.select(&args.services)?);
    let pitr = restore_pitr::take(ctx, &pitr, args.json).await;
    if services.is_empty() {
        if args.json {
            print_json(&json!({ "backups": pitr.json_rows }));
        }
        return Ok(pitr.worse(ExitCode::SUCCESS));
    }
    let staging = staging_root(ctx);
    let project = ctx.manifest.project.clone();
    let bar = progress(services.len(), "backing up");
    let results = ctx
        .stores
        .for_each(
            &services,
            |_, service: &Service| {
                let (staging, project) = (&staging, &project);
                async move {
                    let started = Instant::now();
                    let destination = Destination::of(&ctx.manifest, &service.name)?;
                    let request = Request {
                        project,
                        reason: "manual",
                        staging_root: staging,
                    };
                    let meta = backup::take(&ctx.stores, service, &destination, &request).await?;
                    Ok::<_, BackupError>((meta, destination, started.elapsed()))
                }
            },
            |service, result| {
                if result.is_ok() {
                    bar.println(format!("backed up {}", service.name));
                }
                bar.inc(1);
            },
        )
        .await;
    bar.finish_and_clear();

    if args.json {
        let mut rows: Vec<_> = results
            .iter()
            .map(|(s, r)| match r {
                Ok((meta, destination, took)) => json!({
                    "service": s.name,
                    "ok": true,
                    "destination": destination.shown(),
                    "seconds": took.as_secs_f64(),
                    "backup": meta,
                }),
                Err(e) => json!({
                    "service": s.name,
                    "ok": false,
                    "error": describe(e),
                }),
            })
            .collect();
        rows.extend(pitr.json_rows.iter().cloned());
        print_json(&json!({ "backups": rows }));
    } else {
        let mut t = table(&[
            "service",
            "backup",
            "size",
            "tables",
            "rows",
            "took",
            "destination",
        ]);
        for (s, r) in &results {
            match r {
                Ok((meta, destination, took)) => t.add_row(vec![
                    s.name.clone(),
                    meta.id.to_string(),
                    human_size(meta.size_bytes),
                    meta.tables.len().to_string(),
                    rows(meta).to_string(),
                    format!("{:.1}s", took.as_secs_f64()),
                    destination.shown().to_string(),
                ]),
                Err(_) => t.add_row(vec![s.name.clone(), "failed".into()]),
            };
        }
        outln!("{t}");
        for (s, r) in &results {
            if let Err(e) = r {
                errln!("{:?}", store_report(&format!("{}: ", s.name), e));
            }
        }
    }
    Ok(pitr.worse(exit_code_all(
        results.iter().filter_map(|(_, r)| r.as_ref().err()),
    )))
}

async fn list(ctx: &Context, args: &BackupListArgs) -> CmdResult {
    let names: Vec<String> = args.service.iter().cloned().collect();
    let (pitr, services) = restore_pitr::split(ctx.select(&names)?);
    let pitr = restore_pitr::list(&pitr, args.json).await;
    if services.is_empty() {
        if args.json {
            print_json(&json!({ "services": pitr.json_rows }));
        }
        return Ok(pitr.worse(ExitCode::SUCCESS));
    }
    let mut found = Vec::new();
    for service in services {
        let destination = Destination::of(&ctx.manifest, &service.name)
            .map_err(|e| Failure::usage(store_report(&format!("{}: ", service.name), &e)))?;
        let listing = destination.list().await;
        found.push((service, destination, listing));
    }
    let broken = found
        .iter()
        .any(|(_, _, l)| l.as_ref().map_or(true, |l| !l.broken.is_empty()));

    if args.json {
        let rows: Vec<_> = found
            .iter()
            .map(|(s, d, l)| match l {
                Ok(l) => json!({
                    "service": s.name,
                    "destination": d.shown(),
                    "backups": l.backups,
                    "broken": l.broken.iter().map(|(id, why)| json!({"id": id, "problem": why})).collect::<Vec<_>>(),
                }),
                Err(e) => json!({
                    "service": s.name,
                    "destination": d.shown(),
                    "error": describe(e),
                }),
            })
            .collect();
        let rows: Vec<_> = rows
            .into_iter()
            .chain(pitr.json_rows.iter().cloned())
            .collect();
        print_json(&json!({ "services": rows }));
    } else {
        let mut t = table(&[
            "service", "backup", "finished", "size", "version", "rows", "reason",
        ]);
        for (s, _, l) in &found {
            for meta in l.iter().flat_map(|l| &l.backups) {
                let finished = meta
                    .finished_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                t.add_row(vec![
                    s.name.clone(),
                    meta.id.to_string(),
                    finished,
                    human_size(meta.size_bytes),
                    meta.migration_version.clone().unwrap_or_else(|| "-".into()),
                    rows(meta).to_string(),
                    meta.reason.clone(),
                ]);
            }
        }
        if !t.is_empty() {
            outln!("{t}");
        }
        for (s, d, l) in &found {
            match l {
                Ok(l) => {
                    if l.backups.is_empty() {
                        outln!("{}: no backups at {}", s.name, d.shown());
                    }
                    for (id, why) in &l.broken {
                        errln!("{}: backup {id} at {} is broken: {why}", s.name, d.shown());
                    }
                }
                Err(e) => errln!("{:?}", store_report(&format!("{}: ", s.name), e)),
            }
        }
    }
    let errors = exit_code_all(found.iter().filter_map(|(_, _, l)| l.as_ref().err()));
    Ok(pitr.worse(if errors == ExitCode::SUCCESS && broken {
        ExitCode::from(1)
    } else {
        errors
    }))
}

async fn verify(ctx: &Context, args: &BackupVerifyArgs) -> CmdResult {
    let (pitr, services) = restore_pitr::split(ctx.select(&args.services)?);
    restore_pitr::not_verified(!args.services.is_empty(), &pitr)?;
    let id = parse_id(args.backup.as_deref())?;
    let bar = progress(services.len(), "verifying");
    let results = ctx
        .stores
        .for_each(
            &services,
            |_, service: &Service| {
                let id = id.clone();
                async move {
                    let destination = Destination::of(&ctx.manifest, &service.name)?;
                    restore::verify(
                        &ctx.stores,
                        service,
                        &destination,
                        id,
                        &ctx.manifest.data_dir,
                    )
                    .await
                }
            },
            |_, _| bar.inc(1),
        )
        .await;
    bar.finish_and_clear();
    report_verified(&results, args.json);
    Ok(exit_code_all(
        results.iter().filter_map(|(_, r)| r.as_ref().err()),
    ))
}

fn report_verified(results: &[(&Service, Result<Restored, BackupError>)], as_json: bool) {
    if as_json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| match r {
                Ok(r) => json!({
                    "service": s.name,
                    "ok": true,
                    "backup": r.backup,
                    "migration_version": r.migration_version,
                    "tables": r.tables,
                }),
                Err(e) => json!({
                    "service": s.name,
                    "ok": false,
                    "error": describe(e),
                    "code": miette::Diagnostic::code(e).map(|c| c.to_string()),
                }),
            })
            .collect();
        print_json(&json!({ "verified": rows }));
        return;
    }
    let mut t = table(&["service", "backup", "tables", "rows", "result"]);
    for (s, r) in results {
        match r {
            Ok(r) => t.add_row(vec![
                s.name.clone(),
                r.backup.to_string(),
                r.tables.len().to_string(),
                r.tables.values().sum::<u64>().to_string(),
                "restores, rows and schema match".into(),
            ]),
            Err(_) => t.add_row(vec![
                s.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "FAILED".into(),
            ]),
        };
    }
    outln!("{t}");
    for (s, r) in results {
        if let Err(e) = r {
            errln!("{:?}", store_report(&format!("{}: ", s.name), e));
        }
    }
}
