//! Which of a service's backups a prune deletes: a pure decision over the
//! list of backups, the policy and the time, so that `silo backup prune`,
//! its `--dry-run` and the daemon all decide the same way and the rules are
//! tested without a destination.
//!
//! The rules:
//! - `keep = N` keeps the N newest good backups; `retention = "30d"`
//!   keeps every backup that finished less than 30 days before `now`.
//! - With both, a backup is kept when either rule keeps it, as restic's
//!   `forget` and borg's `prune` combine their `--keep-*` options (and as
//!   pg_probackup combines redundancy and window). A prune then deletes a
//!   backup only when it is both beyond the N newest and older than the
//!   period: neither setting can be undercut by the other.
//! - With neither, nothing is deleted: no policy, no pruning.
//! - The newest good backup is never deleted, whatever the rules say:
//!   after a month of failed backups, a 30-day retention would otherwise
//!   leave nothing to restore.
//! - A damaged backup (a file that does not match its checksum) restores
//!   nothing, so it does not count toward `keep`: N good ones are kept
//!   beside it. It goes when no rule keeps it.
//! - A killed backup's leftovers (files without `meta.json`) go once they
//!   are older than a grace period: a backup being taken right now has no
//!   `meta.json` yet either, and must not be swept away from under it.

use time::{Duration, OffsetDateTime};

use crate::meta::BackupId;

/// How long a folder without `meta.json` is left alone: longer than any
/// backup takes, so that only a killed backup's files are deleted.
pub const LEFTOVER_GRACE: Duration = Duration::hours(24);

/// One backup of a service, as a prune sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub id: BackupId,
    /// When it finished (`meta.json`'s `finished_at`).
    pub finished: OffsetDateTime,
    /// Whether every file matches its recorded size and SHA-256.
    pub good: bool,
    pub size_bytes: u64,
}

impl Backup {
    /// The backup a `meta.json` describes; `good` is whether its files
    /// checked out.
    pub fn of(meta: &crate::meta::BackupMeta, good: bool) -> Self {
        Backup {
            id: meta.id.clone(),
            finished: meta.finished_at,
            good,
            size_bytes: meta.size_bytes,
        }
    }
}

/// Files at the destination that belong to no backup: a backup killed
/// before it wrote `meta.json`, or one being written now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The folder (or key prefix) name under the destination.
    pub name: String,
    /// The newest modification time of its files.
    pub modified: OffsetDateTime,
}

/// The rules of a policy that a prune applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Keep the newest this many good backups.
    pub keep: Option<u32>,
    /// Keep backups younger than this.
    pub retention: Option<Duration>,
}

impl Rules {
    /// The rules of a manifest policy; none without a policy.
    pub fn of(policy: Option<&silo_manifest::BackupPolicy>) -> Self {
        let Some(policy) = policy else {
            return Rules::default();
        };
        Rules {
            keep: policy.keep,
            // The manifest refuses periods past a thousand years, well
            // inside `Duration`.
            retention: policy
                .retention
                .map(|r| Duration::try_from(r).unwrap_or(Duration::MAX)),
        }
    }
}

/// Why a backup stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The newest good backup, which is never deleted.
    NewestGood,
    /// Among the `keep` newest good backups.
    AmongNewest,
    /// Younger than `retention`.
    WithinRetention,
    /// The policy sets neither `keep` nor `retention`.
    NoRule,
}

/// Why a backup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Beyond the `keep` newest and older than `retention` (or whichever
    /// of the two is set).
    Expired,
    /// Damaged, and younger than no `retention`.
    Damaged,
}

/// The decision on one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub backup: Backup,
    pub verdict: Result<Kept, Deleted>,
}

/// What a prune does, newest backup first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    /// The leftovers to delete (older than the grace period), oldest first.
    pub leftovers: Vec<String>,
}

impl Plan {
    /// The backups to delete.
    pub fn deleted(&self) -> impl Iterator<Item = &Backup> {
        self.decisions
            .iter()
            .filter(|d| d.verdict.is_err())
            .map(|d| &d.backup)
    }

    /// The backups that stay.
    pub fn kept(&self) -> impl Iterator<Item = &Backup> {
        self.decisions
            .iter()
            .filter(|d| d.verdict.is_ok())
            .map(|d| &d.backup)
    }

    /// The bytes the deleted backups take.
    pub fn freed_bytes(&self) -> u64 {
        self.deleted().map(|b| b.size_bytes).sum()
    }
}

/// Decides which backups and leftovers a prune at `now` deletes.
pub fn plan(
    backups: &[Backup],
    leftovers: &[Leftover],
    rules: Rules,
    now: OffsetDateTime,
    grace: Duration,
) -> Plan {
    let mut sorted: Vec<&Backup> = backups.iter().collect();
    // Newest first; the id (start time, then random) breaks ties so that
    // the order, and so the decision, never depends on the input's.
    sorted.sort_by(|a, b| b.finished.cmp(&a.finished).then_with(|| b.id.cmp(&a.id)));

    let mut good_seen: u32 = 0;
    let decisions = sorted
        .into_iter()
        .map(|backup| {
            let rank = backup.good.then(|| {
                good_seen += 1;
                good_seen
            });
            Decision {
                backup: backup.clone(),
                verdict: verdict(backup, rank, rules, now),
            }
        })
        .collect();

    let mut old: Vec<&Leftover> = leftovers
        .iter()
        .filter(|l| now - l.modified > grace)
        .collect();
    old.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Plan {
        decisions,
        leftovers: old.into_iter().map(|l| l.name.clone()).collect(),
    }
}

/// One backup's fate; `rank` is its place among the good backups, newest
/// first from 1 (`None` for a damaged one).
fn verdict(
    backup: &Backup,
    rank: Option<u32>,
    rules: Rules,
    now: OffsetDateTime,
) -> Result<Kept, Deleted> {
    if rank == Some(1) {
        return Ok(Kept::NewestGood);
    }
    if rules.keep.is_none() && rules.retention.is_none() {
        return Ok(Kept::NoRule);
    }
    if let (Some(keep), Some(rank)) = (rules.keep, rank)
        && rank <= keep
    {
        return Ok(Kept::AmongNewest);
    }
    // A backup that finished after `now` (a clock set back) is young.
    if let Some(retention) = rules.retention
        && now - backup.finished < retention
    {
        return Ok(Kept::WithinRetention);
    }
    Err(if backup.good {
        Deleted::Expired
    } else {
        Deleted::Damaged
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    /// A backup that finished `days_ago` days before [`NOW`], with a
    /// distinct id.
    fn backup(days_ago: i64, good: bool) -> Backup {
        let finished = NOW - Duration::days(days_ago);
        Backup {
            id: BackupId::parse(&format!(
                "{:04}{:02}{:02}T{:02}0000Z-{:04x}",
                finished.year(),
                u8::from(finished.month()),
                finished.day(),
                finished.hour(),
                days_ago
            ))
            .unwrap(),
            finished,
            good,
            size_bytes: 100,
        }
    }

    /// The days-ago of the deleted backups, oldest first.
    fn deleted_days(plan: &Plan) -> Vec<i64> {
        let mut days: Vec<i64> = plan
            .deleted()
            .map(|b| (NOW - b.finished).whole_days())
            .collect();
        days.sort_unstable_by(|a, b| b.cmp(a));
        days
    }

    fn daily(days: i64) -> Vec<Backup> {
        (0..days).map(|d| backup(d, true)).collect()
    }

    fn rules(keep: Option<u32>, retention_days: Option<i64>) -> Rules {
        Rules {
            keep,
            retention: retention_days.map(Duration::days),
        }
    }

    #[test]
    fn keep_keeps_the_newest_n() {
        let plan = plan(&daily(10), &[], rules(Some(3), None), NOW, LEFTOVER_GRACE);
        assert_eq!(deleted_days(&plan), [9, 8, 7, 6, 5, 4, 3]);
        assert_eq!(plan.freed_bytes(), 700);
        let verdicts: Vec<_> = plan.decisions.iter().take(4).map(|d| d.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Ok(Kept::NewestGood),
                Ok(Kept::AmongNewest),
                Ok(Kept::AmongNewest),
                Err(Deleted::Expired)
            ]
        );
    }

    #[test]
    fn retention_keeps_the_young_ones() {
        let plan = plan(&daily(10), &[], rules(None, Some(7)), NOW, LEFTOVER_GRACE);
        // 7 days old exactly is not younger than 7 days.
        assert_eq!(deleted_days(&plan), [9, 8, 7]);
        assert!(
            plan.decisions[1..7]
                .iter()
                .all(|d| d.verdict == Ok(Kept::WithinRetention))
        );
    }

    #[test]
    fn with_both_a_backup_stays_when_either_rule_keeps_it() {
        // keep 5 protects more than 2 days of retention...
        let p = plan(
            &daily(10),
            &[],
            rules(Some(5), Some(2)),
            NOW,
            LEFTOVER_GRACE,
        );
        assert_eq!(deleted_days(&p), [9, 8, 7, 6, 5]);
        // ...and 7 days of retention protect more than keep 2.
        let p = plan(
            &daily(10),
            &[],
            rules(Some(2), Some(7)),
            NOW,
            LEFTOVER_GRACE,
        );
        assert_eq!(deleted_days(&p), [9, 8, 7]);
    }

    #[test]
    fn the_newest_good_backup_survives_any_policy() {
        // Backups stopped 60 days ago; a 30-day retention would leave
        // nothing.
        let old = vec![backup(60, true), backup(61, true), backup(70, true)];
        let p = plan(&old, &[], rules(None, Some(30)), NOW, LEFTOVER_GRACE);
        assert_eq!(deleted_days(&p), [70, 61]);
        assert_eq!(p.decisions[0].verdict, Ok(Kept::NewestGood));
        assert_eq!(p.decisions[0].backup.id, old[0].id);
    }

    #[test]
    fn the_newest_good_one_survives_even_behind_newer_damaged_ones() {
        let list = vec![
            backup(0, false),
            backup(1, false),
            backup(40, true),
            backup(41, true),
        ];
        let p = plan(&list, &[], rules(Some(1), Some(30)), NOW, LEFTOVER_GRACE);
        // The damaged ones are young: retention keeps them (the newest
        // good is 40 days old and stays).
        assert_eq!(deleted_days(&p), [41]);
        let kept: Vec<_> = p.kept().map(|b| b.id.clone()).collect();
        assert_eq!(
            kept,
            [list[0].id.clone(), list[1].id.clone(), list[2].id.clone()]
        );
    }

    #[test]
    fn damaged_backups_do_not_count_toward_keep() {
        let list = vec![
            backup(0, false),
            backup(1, true),
            backup(2, false),
            backup(3, true),
            backup(4, true),
        ];
        let p = plan(&list, &[], rules(Some(2), None), NOW, LEFTOVER_GRACE);
        // Two good ones stay (1 and 3); both damaged ones and the third
        // good one go.
        let verdicts: Vec<_> = p.decisions.iter().map(|d| d.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Err(Deleted::Damaged),
                Ok(Kept::NewestGood),
                Err(Deleted::Damaged),
                Ok(Kept::AmongNewest),
                Err(Deleted::Expired),
            ]
        );
    }

    #[test]
    fn without_rules_nothing_is_deleted() {
        let mut list = daily(5);
        list.push(backup(400, false));
        let p = plan(&list, &[], Rules::default(), NOW, LEFTOVER_GRACE);
        assert_eq!(p.deleted().count(), 0);
        assert!(
            p.decisions[1..]
                .iter()
                .all(|d| d.verdict == Ok(Kept::NoRule))
        );
    }

    #[test]
    fn only_damaged_backups_are_all_fair_game() {
        let list = vec![backup(0, false), backup(10, false)];
        let p = plan(&list, &[], rules(Some(5), None), NOW, LEFTOVER_GRACE);
        assert_eq!(deleted_days(&p), [10, 0]);
        let p = plan(&list, &[], rules(None, Some(5)), NOW, LEFTOVER_GRACE);
        assert_eq!(deleted_days(&p), [10]);
    }

    #[test]
    fn the_input_order_does_not_matter() {
        let mut list = daily(8);
        let forward = plan(&list, &[], rules(Some(3), Some(4)), NOW, LEFTOVER_GRACE);
        list.reverse();
        list.swap(1, 5);
        let shuffled = plan(&list, &[], rules(Some(3), Some(4)), NOW, LEFTOVER_GRACE);
        assert_eq!(forward, shuffled);
        assert_eq!(deleted_days(&forward), [7, 6, 5, 4]);
    }

    #[test]
    fn two_backups_finished_at_the_same_time_are_ordered_by_id() {
        let mut a = backup(1, true);
        let mut b = backup(1, true);
        a.id = BackupId::parse("20261127T120000Z-0001").unwrap();
        b.id = BackupId::parse("20261127T120000Z-0002").unwrap();
        let p = plan(
            &[a.clone(), b.clone()],
            &[],
            rules(Some(1), None),
            NOW,
            LEFTOVER_GRACE,
        );
        assert_eq!(p.deleted().collect::<Vec<_>>(), [&a]);
        let p = plan(
            &[b, a.clone()],
            &[],
            rules(Some(1), None),
            NOW,
            LEFTOVER_GRACE,
        );
        assert_eq!(p.deleted().collect::<Vec<_>>(), [&a]);
    }

    #[test]
    fn a_backup_from_the_future_is_young() {
        let mut future = backup(0, true);
        future.finished = NOW + Duration::days(3);
        let list = vec![future, backup(1, true), backup(2, true)];
        let p = plan(&list, &[], rules(None, Some(1)), NOW, LEFTOVER_GRACE);
        assert_eq!(deleted_days(&p), [2, 1]);
    }

    #[test]
    fn leftovers_go_only_after_the_grace_period() {
        let leftovers = [
            Leftover {
                name: "20261128T110000Z-aaaa".into(),
                modified: NOW - Duration::minutes(5),
            },
            Leftover {
                name: "20261125T000000Z-bbbb".into(),
                modified: NOW - Duration::days(3),
            },
            Leftover {
                name: "20261127T115900Z-cccc".into(),
                modified: NOW - Duration::hours(24),
            },
            Leftover {
                name: "20261120T000000Z-dddd".into(),
                modified: NOW - Duration::days(8),
            },
        ];
        // Leftovers are cleaned even without rules: they are no backups.
        let p = plan(&daily(2), &leftovers, Rules::default(), NOW, LEFTOVER_GRACE);
        assert_eq!(
            p.leftovers,
            ["20261120T000000Z-dddd", "20261125T000000Z-bbbb"],
            "a backup in progress (5 minutes) and one exactly at the grace period stay"
        );
        assert_eq!(p.deleted().count(), 0);
        let p = plan(&[], &leftovers, Rules::default(), NOW, Duration::minutes(1));
        assert_eq!(p.leftovers.len(), 4);
    }

    #[test]
    fn an_empty_destination_plans_nothing() {
        let p = plan(&[], &[], rules(Some(1), Some(1)), NOW, LEFTOVER_GRACE);
        assert!(p.decisions.is_empty() && p.leftovers.is_empty());
        assert_eq!(p.freed_bytes(), 0);
    }

    #[test]
    fn rules_come_from_the_manifest_policy() {
        let m = silo_manifest::Manifest::from_str(
            "[project]\nname = \"p\"\n[services.a.backup]\nkeep = 4\nretention = \"2w\"\n[services.b]\n",
            "silo.toml".as_ref(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            Rules::of(m.service("a").unwrap().backup.as_ref()),
            rules(Some(4), Some(14))
        );
        assert_eq!(
            Rules::of(m.service("b").unwrap().backup.as_ref()),
            Rules::default()
        );
    }
}
