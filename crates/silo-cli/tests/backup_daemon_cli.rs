//! `silo backup prune` and `silo backup daemon` through the real binary on
//! real SQLite stores. The daemon's scheduling is tested in silo-backup
//! with a fake clock; here it runs for real: it starts, backs up a service
//! never backed up at once, serves its metrics and exits 0 on SIGTERM.
//!
//! Every wait is a poll with a bound; nothing sleeps to let a race settle.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{json, silo};

const BOUND: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// A provisioned SQLite project: `services` after `[project]` and
/// `[defaults]`.
fn project(services: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!("[project]\nname = \"t\"\n[defaults]\nengine = \"sqlite\"\n{services}"),
    )
    .unwrap();
    silo(dir.path()).arg("up").assert().success();
    dir
}

/// The ids of `service`'s backups, as `silo backup list --json` gives them.
fn listed(dir: &Path, service: &str) -> Vec<String> {
    let out = json(silo(dir).args(["backup", "list", service, "--json"]));
    out["services"][0]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn prune_deletes_what_the_policy_no_longer_keeps_and_a_dry_run_nothing() {
    let dir = project("[services.orders.backup]\nkeep = 1\n[services.billing]\n");
    let mut taken = Vec::new();
    for _ in 0..3 {
        let out = json(silo(dir.path()).args(["backup", "orders", "--json"]));
        taken.push(
            out["backups"][0]["backup"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    silo(dir.path())
        .args(["backup", "billing"])
        .assert()
        .success();

    let dry = json(silo(dir.path()).args(["backup", "prune", "--dry-run", "--json"]));
    assert_eq!(dry["dry_run"], true);
    let orders = &dry["services"][0];
    assert_eq!(orders["service"], "orders");
    let would: Vec<&str> = orders["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["deleted"] == true)
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    let mut oldest_two = vec![taken[0].as_str(), taken[1].as_str()];
    let mut would_sorted = would.clone();
    oldest_two.sort();
    would_sorted.sort();
    assert_eq!(would_sorted, oldest_two, "{dry:#}");
    assert!(orders["freed_bytes"].as_u64().unwrap() > 0);
    let newest = orders["backups"][0].clone();
    assert_eq!(newest["id"], taken[2].as_str());
    assert_eq!(newest["reason"], "the newest good backup, never deleted");
    let billing = &dry["services"][1];
    assert_eq!(
        billing["backups"][0]["reason"],
        "the newest good backup, never deleted"
    );
    assert_eq!(
        listed(dir.path(), "orders").len(),
        3,
        "a dry run deletes nothing"
    );

    let out = silo(dir.path())
        .args(["backup", "prune", "orders"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("orders: deleted 2 backups and 0 leftovers"),
        "{stdout}"
    );
    assert!(stdout.contains("beyond the newest 1 (keep)"), "{stdout}");
    assert_eq!(listed(dir.path(), "orders"), [taken[2].clone()]);
    assert_eq!(
        listed(dir.path(), "billing").len(),
        1,
        "billing was not named"
    );

    // Again: the last good backup stays, whatever the runs.
    let again = json(silo(dir.path()).args(["backup", "prune", "--json"]));
    assert_eq!(again["services"][0]["freed_bytes"], 0);
    assert_eq!(listed(dir.path(), "orders"), [taken[2].clone()]);
}

#[test]
fn the_daemon_refuses_to_run_without_a_schedule() {
    let dir = project("[services.orders]\n[services.billing.backup]\nschedule = \"@daily\"\n");
    let out = silo(dir.path())
        .args(["backup", "daemon", "--service", "orders"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backup schedule for orders"));

    let dir = project("[services.orders]\n");
    let out = silo(dir.path())
        .args(["backup", "daemon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service has a backup schedule"));
}

/// The running daemon, its stderr gathered by a thread.
struct Daemon {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(dir: &Path) -> Self {
        let mut child = silo_std(dir)
            .args(["backup", "daemon", "--metrics-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Daemon { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address the metrics are served at, once printed.
    fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            let err = self.stderr();
            if let Some(addr) = err
                .lines()
                .find_map(|l| l.split("metrics at http://").nth(1))
                .and_then(|rest| rest.strip_suffix("/metrics"))
            {
                return addr.to_string();
            }
            assert!(Instant::now() < deadline, "no metrics address: {err}");
            std::thread::sleep(POLL);
        }
    }

    fn exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the daemon did not exit: {}", self.stderr());
            }
            std::thread::sleep(POLL);
        };
        let mut out = String::new();
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
        // The reader thread ends with the pipe.
        let deadline = Instant::now() + BOUND;
        while Arc::strong_count(&self.stderr) > 1 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        (status.code(), self.stderr())
    }
}

/// The `silo` binary as a std Command (spawned, not run to the end).
fn silo_std(dir: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("silo"));
    c.current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .env_remove("RUST_LOG");
    c
}

/// GET /metrics; `None` while it does not answer.
fn scrape(addr: &str) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    conn.set_read_timeout(Some(BOUND)).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    Some(body.to_string())
}

/// The value of `name{service="orders"}` in a scrape.
fn sample(body: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{service=\"orders\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_daemon_backs_up_serves_metrics_and_stops_on_sigterm() {
    let dir = project(
        "[services.orders.backup]\nschedule = \"*/5 * * * *\"\nkeep = 3\n[services.billing]\n",
    );
    let daemon = Daemon::start(dir.path());
    let addr = daemon.metrics_addr();

    // Never backed up: the first backup runs at once. The daemon sets the
    // next run only once that backup is done, so a scrape between the two
    // updates sees the catch-up's due time: wait for both.
    let deadline = Instant::now() + BOUND;
    let rescheduled = |body: &str| match (
        sample(body, "silo_backup_next_run_timestamp_seconds"),
        sample(body, "silo_backup_last_success_timestamp_seconds"),
    ) {
        (Some(next), Some(last)) => next > last,
        _ => false,
    };
    let body = loop {
        if let Some(body) = scrape(&addr)
            && sample(&body, "silo_backup_successes_total") == Some(1.0)
            && rescheduled(&body)
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no backup, then its next run, in the metrics: {}",
            daemon.stderr()
        );
        std::thread::sleep(POLL);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = sample(&body, "silo_backup_last_success_timestamp_seconds").unwrap();
    assert!((now - last).abs() < 600.0, "{body}");
    assert!(
        sample(&body, "silo_backup_size_bytes").unwrap() > 0.0,
        "{body}"
    );
    assert!(
        sample(&body, "silo_backup_duration_seconds").is_some(),
        "{body}"
    );
    assert_eq!(
        sample(&body, "silo_backup_failures_total"),
        Some(0.0),
        "{body}"
    );
    assert!(
        body.contains("# TYPE silo_backup_failures_total counter"),
        "{body}"
    );
    // The next run is on the schedule, in the future.
    let next = sample(&body, "silo_backup_next_run_timestamp_seconds").unwrap();
    assert!(next > last, "{body}");
    assert!(
        !body.contains("service=\"billing\""),
        "billing has no schedule: {body}"
    );

    let ok = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (code, err) = daemon.exit();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("backup taken"),
        "logs at info by default: {err}"
    );
    assert!(
        err.contains("not scheduled (no `schedule`): billing"),
        "{err}"
    );
    assert!(err.contains("silo backup daemon: stopped"), "{err}");

    let list: Value = json(silo(dir.path()).args(["backup", "list", "orders", "--json"]));
    let backups = list["services"][0]["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{list:#}");
    assert_eq!(backups[0]["reason"], "scheduled");
}
