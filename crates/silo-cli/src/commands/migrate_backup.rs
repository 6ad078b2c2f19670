//! `silo migrate --backup-first` (and `[defaults] backup_before_migrate =
//! true`): each service with migrations pending is backed up just before
//! it is migrated, the backup's reason naming the version it is taken
//! before, and a service whose backup fails is not migrated.
//!
//! A service with nothing pending is not backed up: its store does not
//! change, so there is nothing to protect.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use indicatif::ProgressBar;
use serde_json::{Value, json};
use silo_backup::backup::{self, Request};
use silo_backup::{BackupMeta, Destination};
use silo_manifest::Service;
use silo_migrate::service as ops;
use silo_migrate::{MigrateError, MigrateOptions, Step, Version};

use super::migrations_common::policy;
use crate::cli::MigrateArgs;
use crate::context::{Context, describe};

/// The backups of one `silo migrate` run.
pub(crate) struct BackupFirst {
    /// `<data_dir>/backups/.staging`, as `silo backup` stages.
    staging: PathBuf,
    /// The backup taken of each service, by name.
    taken: Mutex<BTreeMap<String, BackupMeta>>,
}

impl BackupFirst {
    /// The run's backups when it takes them: with `--backup-first`, or when
    /// silo.toml asks for them and `--no-backup-first` does not say
    /// otherwise. Never in a dry run, which changes nothing.
    pub(crate) fn of(ctx: &Context, args: &MigrateArgs) -> Option<Self> {
        let wanted = args.backup_first
            || (ctx.manifest.backup.backup_before_migrate && !args.no_backup_first);
        (wanted && !args.dry_run).then(|| BackupFirst {
            staging: ctx.manifest.data_dir.join("backups").join(".staging"),
            taken: Mutex::new(BTreeMap::new()),
        })
    }

    /// Backs `service` up if `options` would apply anything to it. An
    /// error means the service must not be migrated: its plan could not be
    /// read, or its backup failed.
    pub(crate) async fn before(
        &self,
        ctx: &Context,
        service: &Service,
        options: &MigrateOptions,
        args: &MigrateArgs,
        bar: &ProgressBar,
    ) -> Result<(), MigrateError> {
        // The plan of a dry run is what the run itself applies (same
        // target, out-of-order and resume options).
        let plan = MigrateOptions {
            dry_run: true,
            ..options.clone()
        };
        let steps = ops::migrate(
            &ctx.manifest,
            &ctx.stores,
            service,
            &plan,
            policy(&service.name, args.lock.lock_timeout),
            |_: &Step| {},
        )
        .await?;
        let Some(reason) = reason(&steps) else {
            return Ok(());
        };
        bar.set_message(format!("backing up {reason}"));
        let failed = |cause: String| MigrateError::BackupFirst {
            reason: reason.clone(),
            cause,
        };
        // A pgBackRest service is restored to a time, not from a dump: a
        // dump taken here could not be restored the way it is offered.
        if crate::commands::restore_pitr::is_pitr(service) {
            return Err(failed(format!(
                "`{}` is backed up with pgBackRest (method = \"pgbackrest\"): run `silo backup {}` first, then `silo migrate --no-backup-first {}`, and note the time to restore to",
                service.name, service.name, service.name
            )));
        }
        let destination =
            Destination::of(&ctx.manifest, &service.name).map_err(|e| failed(describe(&e)))?;
        let request = Request {
            project: &ctx.manifest.project,
            reason: &reason,
            staging_root: &self.staging,
        };
        let meta = backup::take(&ctx.stores, service, &destination, &request)
            .await
            .map_err(|e| failed(describe(&e)))?;
        self.taken
            .lock()
            .expect("no panic holds the lock")
            .insert(service.name.clone(), meta);
        Ok(())
    }

    /// The backup taken of `service` in this run, as `--json` shows it.
    pub(crate) fn json(&self, service: &str) -> Value {
        let taken = self.taken.lock().expect("no panic holds the lock");
        taken.get(service).map_or(Value::Null, |meta| json!(meta))
    }

    /// One line per backup taken, saying how to go back to it.
    pub(crate) fn print(&self) {
        let taken = self.taken.lock().expect("no panic holds the lock");
        for (service, meta) in taken.iter() {
            outln!(
                "{service}: backed up as {} ({}); `silo restore {service} --backup {} --replace --yes` goes back to it",
                meta.id,
                meta.reason,
                meta.id
            );
        }
    }
}

/// Why a backup is taken before `steps` run: `before migrating to <the
/// highest version they apply>`; `None` when nothing is pending.
fn reason(steps: &[Step]) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let newest = steps
        .iter()
        .filter_map(|s| s.version.as_deref())
        .filter_map(|v| Version::parse(v).ok())
        .max();
    Some(match newest {
        Some(version) => format!("before migrating to {version}"),
        // Repeatable files only: the version stays as it is.
        None => "before running repeatable migrations".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_migrate::HistoryKind;

    fn step(version: Option<&str>) -> Step {
        Step {
            script: "x.sql".into(),
            version: version.map(str::to_string),
            kind: if version.is_some() {
                HistoryKind::Versioned
            } else {
                HistoryKind::Repeatable
            },
            transactional: true,
            no_transaction: None,
            execution_time_ms: 0,
            sql: None,
            resumed_from: None,
        }
    }

    #[test]
    fn the_reason_names_the_highest_version_numerically() {
        assert_eq!(reason(&[]), None);
        assert_eq!(
            reason(&[step(Some("9")), step(Some("10")), step(None)]).as_deref(),
            Some("before migrating to 10")
        );
        assert_eq!(
            reason(&[step(None)]).as_deref(),
            Some("before running repeatable migrations")
        );
    }
}
