//! `silo backup prune`: each service's backups that its policy no longer
//! keeps, deleted (or, with --dry-run, listed), with the reason for every
//! backup and the bytes freed.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use silo_backup::prune::{self, Options, Pruned};
use silo_backup::retention::{Deleted, Kept, Rules};
use silo_backup::{BackupError, Destination};
use silo_manifest::Service;
use time::OffsetDateTime;

use crate::context::{
    CmdResult, Context, describe, exit_code_all, human_size, print_json, store_report, table,
};

#[derive(Debug, Args)]
pub struct BackupPruneArgs {
    /// Services whose backups to prune [default: all]
    pub services: Vec<String>,
    /// Say what would be deleted and why; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: &BackupPruneArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let staging = ctx.manifest.data_dir.join("backups").join(".staging");
    let now = OffsetDateTime::now_utc();
    let mut results: Vec<(&Service, String, Result<Pruned, BackupError>)> = Vec::new();
    for service in services {
        let options = Options {
            rules: Rules::of(service.backup.as_ref()),
            now,
            dry_run: args.dry_run,
            staging_root: &staging,
        };
        let (shown, result) = match Destination::of(&ctx.manifest, &service.name) {
            Ok(d) => (d.shown().to_string(), prune::prune(&d, &options).await),
            Err(e) => ("-".to_string(), Err(e)),
        };
        results.push((service, shown, result));
    }

    if args.json {
        report_json(&results, args.dry_run);
    } else {
        report_table(&results, args.dry_run);
    }
    let errors = exit_code_all(results.iter().filter_map(|(_, _, r)| r.as_ref().err()));
    // Damaged or unreadable backups are findings: someone should look.
    let findings = results.iter().any(|(_, _, r)| {
        r.as_ref()
            .is_ok_and(|p| !p.damaged.is_empty() || !p.broken.is_empty())
    });
    Ok(if errors == ExitCode::SUCCESS && findings {
        ExitCode::from(1)
    } else {
        errors
    })
}

fn kept_reason(kept: Kept, service: &Service) -> String {
    match kept {
        Kept::NewestGood => "the newest good backup, never deleted".into(),
        Kept::AmongNewest => format!(
            "among the newest {} (keep)",
            service.backup.as_ref().and_then(|p| p.keep).unwrap_or(0)
        ),
        Kept::WithinRetention => "within retention".into(),
        Kept::NoRule => "no keep or retention set".into(),
    }
}

/// Why a backup goes, naming only the rules the policy sets.
fn deleted_reason(deleted: Deleted, service: &Service) -> String {
    let policy = service.backup.as_ref();
    let keep = policy.and_then(|p| p.keep);
    let retention = policy.and_then(|p| p.retention.as_ref());
    match (deleted, keep, retention) {
        (Deleted::Damaged, ..) => "damaged (its checksums do not match)".into(),
        (Deleted::Expired, Some(keep), Some(_)) => {
            format!("beyond the newest {keep} (keep) and older than retention")
        }
        (Deleted::Expired, Some(keep), None) => format!("beyond the newest {keep} (keep)"),
        (Deleted::Expired, None, _) => "older than retention".into(),
    }
}

fn reason(verdict: Result<Kept, Deleted>, service: &Service) -> String {
    match verdict {
        Ok(kept) => kept_reason(kept, service),
        Err(deleted) => deleted_reason(deleted, service),
    }
}

fn report_json(results: &[(&Service, String, Result<Pruned, BackupError>)], dry_run: bool) {
    let rows: Vec<_> = results
        .iter()
        .map(|(s, destination, r)| match r {
            Ok(p) => {
                let backups: Vec<_> = p
                    .plan
                    .decisions
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.backup.id,
                            "finished_at": d.backup.finished
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                            "size_bytes": d.backup.size_bytes,
                            "good": d.backup.good,
                            "deleted": d.verdict.is_err(),
                            "reason": reason(d.verdict, s),
                        })
                    })
                    .collect();
                let leftovers: Vec<_> = p
                    .plan
                    .leftovers
                    .iter()
                    .zip(&p.leftover_bytes)
                    .map(|(name, bytes)| json!({ "name": name, "size_bytes": bytes }))
                    .collect();
                json!({
                    "service": s.name,
                    "ok": true,
                    "destination": destination,
                    "backups": backups,
                    "leftovers": leftovers,
                    "damaged": p.damaged.iter().map(|(id, why)| json!({"id": id, "problem": why})).collect::<Vec<_>>(),
                    "broken": p.broken.iter().map(|(id, why)| json!({"id": id, "problem": why})).collect::<Vec<_>>(),
                    "freed_bytes": p.freed_bytes(),
                })
            }
            Err(e) => json!({
                "service": s.name,
                "ok": false,
                "destination": destination,
                "error": describe(e),
            }),
        })
        .collect();
    print_json(&json!({ "dry_run": dry_run, "services": rows }));
}

fn report_table(results: &[(&Service, String, Result<Pruned, BackupError>)], dry_run: bool) {
    let mut t = table(&["service", "backup", "size", "action", "why"]);
    let delete = if dry_run { "would delete" } else { "deleted" };
    for (s, _, r) in results {
        let Ok(p) = r else { continue };
        for d in &p.plan.decisions {
            t.add_row(vec![
                s.name.clone(),
                d.backup.id.to_string(),
                human_size(d.backup.size_bytes),
                if d.verdict.is_ok() { "kept" } else { delete }.into(),
                reason(d.verdict, s),
            ]);
        }
        for (name, bytes) in p.plan.leftovers.iter().zip(&p.leftover_bytes) {
            t.add_row(vec![
                s.name.clone(),
                name.clone(),
                human_size(*bytes),
                delete.into(),
                "a killed backup's leftovers (no meta.json, over a day old)".into(),
            ]);
        }
    }
    outln!("{t}");
    for (s, destination, r) in results {
        match r {
            Ok(p) => {
                let backups = p.plan.deleted().count();
                outln!(
                    "{}: {} {} backup{} and {} leftover{} at {}, {} {}",
                    s.name,
                    delete,
                    backups,
                    if backups == 1 { "" } else { "s" },
                    p.plan.leftovers.len(),
                    if p.plan.leftovers.len() == 1 { "" } else { "s" },
                    destination,
                    human_size(p.freed_bytes()),
                    if dry_run { "would be freed" } else { "freed" },
                );
                for (id, why) in &p.damaged {
                    errln!("{}: backup {id} is damaged: {why}", s.name);
                }
                for (id, why) in &p.broken {
                    errln!(
                        "{}: backup {id} has an unreadable meta.json and is left alone: {why}",
                        s.name
                    );
                }
            }
            Err(e) => errln!("{:?}", store_report(&format!("{}: ", s.name), e)),
        }
    }
}
