//! Pruning one service's destination: the backups [`crate::retention`]
//! says go, and the leftovers of killed backups, deleted; or, for a dry
//! run, only said.
//!
//! Whether a backup is *good* decides what `keep` counts and which backup
//! is never deleted. Proving it means reading every byte, so a prune reads
//! as little as the guarantee needs:
//! - Backups are checked newest first, each file's size and SHA-256
//!   against `meta.json` (the check a restore makes), until one passes:
//!   that one is the newest good backup, proven, and the one a prune never
//!   deletes. Usually it is the newest backup, so a prune reads one
//!   backup.
//! - Older backups count as good unless their files hold fewer bytes than
//!   `meta.json` records (a file missing or cut short, seen from the
//!   listing alone). A bit flipped in an old backup is what `silo backup
//!   verify --backup ID` finds.
//! - With neither `keep` nor `retention`, no backup can be deleted and
//!   none is read: only leftovers go.
//!
//! A backup whose `meta.json` cannot be read is never deleted: whether it
//! is a backup at all is for a person to decide. It is reported.

use std::path::Path;

use time::OffsetDateTime;

use crate::BackupError;
use crate::destination::Destination;
use crate::meta::BackupMeta;
use crate::retention::{self, Backup, Leftover, Plan, Rules};

/// How to prune.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The policy's `keep` and `retention`.
    pub rules: Rules,
    /// The time ages are measured at.
    pub now: OffsetDateTime,
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    /// Where the newest backup is downloaded to be checked (the project's
    /// staging folder: private, on the stores' disk).
    pub staging_root: &'a Path,
}

/// What a prune did (or, dry, would do) at one destination.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// Every backup with its verdict and the reason, newest first, and
    /// the leftovers that go.
    pub plan: Plan,
    /// The bytes each leftover in `plan.leftovers` holds, in that order.
    pub leftover_bytes: Vec<u64>,
    /// Backups found damaged by this prune: id and what is wrong.
    pub damaged: Vec<(String, String)>,
    /// Backups whose `meta.json` cannot be read (never deleted): id and
    /// why.
    pub broken: Vec<(String, String)>,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
}

impl Pruned {
    /// The bytes deleted (or that a real run would delete): expired and
    /// damaged backups and leftovers.
    pub fn freed_bytes(&self) -> u64 {
        self.plan.freed_bytes() + self.leftover_bytes.iter().sum::<u64>()
    }
}

/// Prunes `destination` by `options`.
pub async fn prune(
    destination: &Destination,
    options: &Options<'_>,
) -> Result<Pruned, BackupError> {
    let listing = destination.list().await?;
    let contents = destination.contents().await?;
    let leftovers: Vec<Leftover> = contents
        .iter()
        .filter(|c| !c.has_meta)
        .map(|c| Leftover {
            name: c.id.to_string(),
            modified: c.last_modified,
        })
        .collect();

    let mut newest_first: Vec<&BackupMeta> = listing.backups.iter().collect();
    newest_first.sort_by(|a, b| {
        b.finished_at
            .cmp(&a.finished_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    let mut damaged = Vec::new();
    let mut backups = Vec::with_capacity(newest_first.len());
    let can_delete = options.rules != Rules::default();
    let mut proven = !can_delete;
    for meta in newest_first {
        let stored = contents
            .iter()
            .find(|c| c.id == meta.id)
            .map_or(0, |c| c.size_bytes);
        let mut good = stored >= meta.size_bytes;
        if !good {
            damaged.push((
                meta.id.to_string(),
                format!(
                    "its files hold {stored} bytes; meta.json records {}",
                    meta.size_bytes
                ),
            ));
        } else if !proven {
            match check(destination, meta, options.staging_root).await {
                Ok(()) => proven = true,
                Err(e @ BackupError::Damaged { .. }) => {
                    good = false;
                    damaged.push((meta.id.to_string(), e.to_string()));
                }
                // The destination failing to answer proves nothing either
                // way: no prune on a guess.
                Err(e) => return Err(e),
            }
        }
        backups.push(Backup::of(meta, good));
    }

    let plan = retention::plan(
        &backups,
        &leftovers,
        options.rules,
        options.now,
        retention::LEFTOVER_GRACE,
    );
    let leftover_bytes = plan
        .leftovers
        .iter()
        .map(|name| {
            contents
                .iter()
                .find(|c| c.id.as_str() == name)
                .map_or(0, |c| c.size_bytes)
        })
        .collect();

    if !options.dry_run {
        for backup in plan.deleted() {
            destination.delete(&backup.id).await?;
            tracing::info!(
                destination = destination.shown(),
                backup = %backup.id,
                size_bytes = backup.size_bytes,
                "pruned a backup"
            );
        }
        for name in &plan.leftovers {
            // Only names that parse as ids are listed as leftovers.
            if let Some(id) = crate::BackupId::parse(name) {
                destination.delete(&id).await?;
                tracing::info!(
                    destination = destination.shown(),
                    leftover = name,
                    "pruned a killed backup's leftovers"
                );
            }
        }
    }
    Ok(Pruned {
        plan,
        leftover_bytes,
        damaged,
        broken: listing.broken,
        dry_run: options.dry_run,
    })
}

/// Downloads `meta`'s files into a private staging folder, checking each
/// one's size and SHA-256 as it streams; the folder is removed after.
async fn check(
    destination: &Destination,
    meta: &BackupMeta,
    staging_root: &Path,
) -> Result<(), BackupError> {
    let staging = crate::backup::staging_folder(staging_root)?;
    destination.fetch(meta, staging.path()).await
}
