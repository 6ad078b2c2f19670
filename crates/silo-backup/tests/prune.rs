//! Pruning real SQLite backups: the right ones go, the newest good one
//! never does (even behind a newer damaged one), a dry run deletes
//! nothing, and killed backups' leftovers go after a day.

mod daemon_support;

use std::time::SystemTime;

use daemon_support::Project;
use silo_backup::prune::{self, Options, Pruned};
use silo_backup::retention::{Deleted, Kept, Rules};
use time::{Duration, OffsetDateTime};

const POLICY: &str = "[services.orders.backup]\nkeep = 2\nretention = \"1d\"\n";

async fn run(p: &Project, now: OffsetDateTime, dry_run: bool) -> Pruned {
    let staging = p.staging();
    let options = Options {
        rules: Rules::of(p.service("orders").backup.as_ref()),
        now,
        dry_run,
        staging_root: &staging,
    };
    prune::prune(&p.destination("orders"), &options)
        .await
        .unwrap()
}

#[tokio::test]
async fn keep_and_retention_delete_the_right_ones() {
    let p = Project::new(POLICY).await;
    let mut taken = Vec::new();
    for _ in 0..4 {
        taken.push(p.backup("orders").await.unwrap());
    }
    // Today every backup is within the day of retention.
    let pruned = run(&p, OffsetDateTime::now_utc(), false).await;
    assert_eq!(pruned.plan.deleted().count(), 0);
    assert_eq!(pruned.freed_bytes(), 0);
    assert_eq!(p.listed("orders").await.len(), 4);

    // Two days on, only `keep = 2` holds: the two oldest go.
    let later = OffsetDateTime::now_utc() + Duration::days(2);
    let pruned = run(&p, later, false).await;
    let verdicts: Vec<_> = pruned.plan.decisions.iter().map(|d| d.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Ok(Kept::NewestGood),
            Ok(Kept::AmongNewest),
            Err(Deleted::Expired),
            Err(Deleted::Expired)
        ]
    );
    assert_eq!(
        pruned.freed_bytes(),
        taken[0].size_bytes + taken[1].size_bytes
    );
    assert!(pruned.freed_bytes() > 0);
    assert_eq!(
        p.listed("orders").await,
        [taken[2].id.to_string(), taken[3].id.to_string()]
    );
    assert!(
        !p.destination_dir("orders")
            .join(taken[0].id.as_str())
            .exists()
    );
}

#[tokio::test]
async fn the_newest_good_backup_is_never_deleted_even_behind_a_damaged_one() {
    let p = Project::new("[services.orders.backup]\nretention = \"1d\"\n").await;
    let a = p.backup("orders").await.unwrap();
    let b = p.backup("orders").await.unwrap();
    let c = p.backup("orders").await.unwrap();
    // The newest backup is damaged: one byte of its store copy flipped.
    let file = p
        .destination_dir("orders")
        .join(c.id.as_str())
        .join(&c.files[0].name);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    // A month on, retention expires every backup; the newest good one is
    // `b`, proven by its checksums, and it stays.
    let pruned = run(&p, OffsetDateTime::now_utc() + Duration::days(30), false).await;
    let verdicts: Vec<_> = pruned
        .plan
        .decisions
        .iter()
        .map(|d| (d.backup.id.clone(), d.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            (c.id.clone(), Err(Deleted::Damaged)),
            (b.id.clone(), Ok(Kept::NewestGood)),
            (a.id.clone(), Err(Deleted::Expired)),
        ]
    );
    assert_eq!(pruned.damaged.len(), 1);
    assert_eq!(pruned.damaged[0].0, c.id.to_string());
    assert!(
        pruned.damaged[0].1.contains(&c.files[0].name),
        "{:?}",
        pruned.damaged
    );
    assert_eq!(p.listed("orders").await, [b.id.to_string()]);

    // Pruned again and again, the last good backup stays.
    for _ in 0..2 {
        let pruned = run(&p, OffsetDateTime::now_utc() + Duration::days(365), false).await;
        assert_eq!(pruned.plan.deleted().count(), 0);
        assert_eq!(p.listed("orders").await, [b.id.to_string()]);
    }
}

#[tokio::test]
async fn a_dry_run_deletes_nothing() {
    let p = Project::new(POLICY).await;
    for _ in 0..4 {
        p.backup("orders").await.unwrap();
    }
    let leftover = old_leftover(&p, "20260101T000000Z-0bad", 2);
    let before = p.listed("orders").await;
    let pruned = run(&p, OffsetDateTime::now_utc() + Duration::days(2), true).await;
    assert!(pruned.dry_run);
    assert_eq!(
        pruned.plan.deleted().count(),
        2,
        "it says what it would delete"
    );
    assert_eq!(pruned.plan.leftovers, ["20260101T000000Z-0bad"]);
    assert!(pruned.freed_bytes() > 0);
    assert_eq!(p.listed("orders").await, before);
    assert!(leftover.exists());
}

#[tokio::test]
async fn leftovers_go_after_a_day_and_without_rules_no_backup_does() {
    let p = Project::new("[services.orders]\n").await;
    let kept = p.backup("orders").await.unwrap();
    let old = p.backup("orders").await.unwrap();
    let stale = old_leftover(&p, "20260101T000000Z-0bad", 2);
    let fresh = old_leftover(&p, "20260102T000000Z-0bee", 0);
    let stray = p.destination_dir("orders").join("notes");
    std::fs::create_dir_all(&stray).unwrap();

    let pruned = run(&p, OffsetDateTime::now_utc(), false).await;
    assert_eq!(pruned.plan.leftovers, ["20260101T000000Z-0bad"]);
    assert_eq!(pruned.leftover_bytes, [5]);
    assert_eq!(pruned.freed_bytes(), 5);
    assert!(!stale.exists());
    assert!(fresh.exists(), "a backup being written now is left alone");

    // A year on: the other leftover goes too, and still no backup.
    let pruned = run(&p, OffsetDateTime::now_utc() + Duration::days(400), false).await;
    assert_eq!(
        pruned.plan.deleted().count(),
        0,
        "no rule, no backup deleted"
    );
    assert_eq!(pruned.plan.leftovers, ["20260102T000000Z-0bee"]);
    assert!(!fresh.exists());
    assert!(
        stray.exists(),
        "a folder that is no backup is never touched"
    );
    assert_eq!(
        p.listed("orders").await,
        [kept.id.to_string(), old.id.to_string()]
    );
}

/// A folder of files without `meta.json` (a killed backup), last written
/// `days` days ago.
fn old_leftover(p: &Project, name: &str, days: u64) -> std::path::PathBuf {
    let dir = p.destination_dir("orders").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("store.sqlite3");
    std::fs::write(&file, b"half-").unwrap();
    let when = SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(when)
        .unwrap();
    dir
}
