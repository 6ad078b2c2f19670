//! Ctrl-C, SIGTERM and SIGKILL during `silo migrate`, through the real
//! binary on real stores: the running statement is cancelled on the
//! server, the lock is freed, nothing of a transactional file stays, a file
//! run outside a transaction shows how far it got and goes on with
//! `--resume`, and a kill at any point never leaves such a file `pending`
//! with statements applied, nor `applied` with statements missing.
//!
//! Every wait is a poll with a bound; nothing sleeps to let a race settle.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, PgConnection, SqliteConnection};

mod common;
use common::{json, orders_project as project, silo};
use silo_testkit::{Prefix, admin_url};

/// Upper bound of every wait: far above what each step takes, far below
/// the 600 s a statement that was not cancelled would run.
const BOUND: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// A `silo` process whose output is collected while it runs.
struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

fn spawn(dir: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .env_remove("RUST_LOG")
        .env("SILO_PG_ADMIN_URL", admin_url())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    /// Sends `signal` (`INT`, `TERM`, `KILL`) to this process only, unless
    /// it has exited (and been reaped) already. A process that exits but is
    /// not reaped yet still takes the signal.
    fn signal(&mut self, signal: &str) {
        if self.exited() {
            return;
        }
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {}", self.child.id());
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits (bounded) for the exit; returns the exit code (`None` when
    /// killed by a signal), stdout and stderr.
    async fn finish(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("silo did not exit; stderr: {}", self.stderr());
            }
            tokio::time::sleep(POLL).await;
        };
        // The readers end with the pipes.
        let deadline = Instant::now() + BOUND;
        while Arc::strong_count(&self.stdout) > 1 || Arc::strong_count(&self.stderr) > 1 {
            assert!(Instant::now() < deadline, "output pipes stayed open");
            tokio::time::sleep(POLL).await;
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (status.code(), out, err)
    }
}

/// Evaluates `check` (an expression that may `.await`) until it is
/// `Some`, polling up to [`BOUND`]; the value inside.
macro_rules! until {
    ($what:expr, $check:expr) => {{
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {}", $what);
            tokio::time::sleep(POLL).await;
        }
    }};
}

/// An admin connection to database `db` of the shared server.
async fn admin_in(db: &str) -> PgConnection {
    let mut url = url::Url::parse(&admin_url()).unwrap();
    url.set_path(&format!("/{db}"));
    PgConnection::connect(url.as_str()).await.unwrap()
}

/// Server processes of `silo migrate` in `db` that run a statement
/// containing `text`: (pid, wait event type).
async fn running(conn: &mut PgConnection, db: &str, text: &str) -> Vec<(i32, Option<String>)> {
    sqlx::query_as(
        "SELECT pid, wait_event_type::text FROM pg_stat_activity
         WHERE datname = $1 AND state = 'active' AND application_name LIKE 'silo migrate %'
           AND strpos(query, $2) > 0",
    )
    .bind(db)
    .bind(text)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// The server process of the statement that reads `gate` and waits for
/// its lock, once there is one.
async fn waiting_on_gate(conn: &mut PgConnection, db: &str) -> Option<i32> {
    running(conn, db, "FROM gate")
        .await
        .into_iter()
        .find(|(_, wait)| wait.as_deref() == Some("Lock"))
        .map(|(pid, _)| pid)
}

/// Whether any session of `silo migrate` is still connected to `db`.
async fn migrate_sessions(conn: &mut PgConnection, db: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = $1 AND application_name LIKE 'silo migrate %'",
    )
    .bind(db)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Advisory locks held in `db`.
async fn advisory_locks(conn: &mut PgConnection, db: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND d.datname = $1",
    )
    .bind(db)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Text on one line: whitespace runs made one space, and the frame miette
/// draws around a wrapped message taken out.
fn flat(text: &str) -> String {
    text.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn info_json(dir: &Path) -> Value {
    json(silo(dir).args(["info", "--json"]))
}

/// The info entry of `script`.
fn entry(info: &Value, script: &str) -> Value {
    info["services"][0]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["script"] == script)
        .unwrap_or_else(|| panic!("no {script} in {info:#}"))
        .clone()
}

/// Ctrl-C while a transactional file's statement runs on PostgreSQL: the
/// statement is cancelled on the server, the file rolled back and not
/// recorded, the lock freed at once, the output says so, exit 130.
#[tokio::test]
async fn ctrl_c_cancels_a_running_statement_postgres() {
    let prefix = Prefix::new();
    let db = prefix.name("orders");
    let (dir, migrations) = project("postgres", &prefix);
    std::fs::write(migrations.join("V1__a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(
        migrations.join("V2__slow.sql"),
        "CREATE TABLE b (id int);\nSELECT pg_sleep(600);\n",
    )
    .unwrap();
    let mut admin = admin_in(&db).await;
    let mut run = spawn(dir.path(), &["migrate"]);
    until!(
        "pg_sleep running",
        (!running(&mut admin, &db, "pg_sleep").await.is_empty()).then_some(())
    );
    run.signal("INT");
    let (code, stdout, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("press Ctrl-C again to exit at once"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "orders: V2__slow.sql was cancelled and rolled back; nothing of it is applied; V1 applied"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("CANCELLED"), "{stdout}");
    // The statement is gone from the server (it would sleep 600 s), and
    // with it the session and its lock.
    until!(
        "the cancelled session gone",
        (migrate_sessions(&mut admin, &db).await == 0).then_some(())
    );
    assert!(running(&mut admin, &db, "pg_sleep").await.is_empty());
    assert_eq!(advisory_locks(&mut admin, &db).await, 0);
    let b: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.b')::text")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(b, None, "nothing of V2 stayed");
    let info = info_json(dir.path());
    assert_eq!(entry(&info, "V1__a.sql")["state"], "applied");
    assert_eq!(entry(&info, "V2__slow.sql")["state"], "pending", "{info:#}");
    // Another run takes the lock without waiting (a zero timeout fails on
    // a held lock).
    std::fs::write(
        migrations.join("V2__slow.sql"),
        "CREATE TABLE b (id int);\n",
    )
    .unwrap();
    silo(dir.path())
        .args(["migrate", "--lock-timeout", "0"])
        .assert()
        .success();
}

/// SIGTERM is handled the same way, with exit 143.
#[tokio::test]
async fn sigterm_cancels_too_postgres() {
    let prefix = Prefix::new();
    let db = prefix.name("orders");
    let (dir, migrations) = project("postgres", &prefix);
    std::fs::write(migrations.join("V1__slow.sql"), "SELECT pg_sleep(600);\n").unwrap();
    let mut admin = admin_in(&db).await;
    let mut run = spawn(dir.path(), &["migrate", "--json"]);
    until!(
        "pg_sleep running",
        (!running(&mut admin, &db, "pg_sleep").await.is_empty()).then_some(())
    );
    run.signal("TERM");
    let (code, stdout, stderr) = run.finish().await;
    assert_eq!(code, Some(143), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let service = &doc["services"][0];
    assert_eq!(service["cancelled"], true, "{doc:#}");
    assert_eq!(
        service["error"],
        "V1__slow.sql was cancelled and rolled back; nothing of it is applied; no version is applied"
    );
    until!(
        "the cancelled session gone",
        (migrate_sessions(&mut admin, &db).await == 0).then_some(())
    );
    assert_eq!(advisory_locks(&mut admin, &db).await, 0);
}

/// The five statements of a file run outside a transaction; statement
/// `blocking` reads `gate`, which the test keeps locked.
fn five_statements(blocking: usize) -> String {
    let mut sql = String::from("-- silo:no-transaction\n");
    for n in 1..=5 {
        if n == blocking {
            sql.push_str(&format!("INSERT INTO marks SELECT {n} FROM gate;\n"));
        } else {
            sql.push_str(&format!("INSERT INTO marks VALUES ({n});\n"));
        }
    }
    sql
}

async fn marks(conn: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar("SELECT n FROM marks ORDER BY n")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// A PostgreSQL project whose V1 makes `marks` and the one-row `gate`,
/// applied; V2 is [`five_statements`].
async fn gated_project(prefix: &Prefix) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, migrations) = project("postgres", prefix);
    std::fs::write(
        migrations.join("V1__tables.sql"),
        "CREATE TABLE marks (n int);\nCREATE TABLE gate (id int);\nINSERT INTO gate VALUES (1);\n",
    )
    .unwrap();
    silo(dir.path()).arg("migrate").assert().success();
    (dir, migrations)
}

/// Locks `gate` in a transaction of the test's: a statement that reads
/// it waits until [`PgConnection`] commits.
async fn close_gate(conn: &mut PgConnection) {
    sqlx::raw_sql("BEGIN; LOCK TABLE gate IN ACCESS EXCLUSIVE MODE;")
        .execute(conn)
        .await
        .unwrap();
}

async fn open_gate(conn: &mut PgConnection) {
    sqlx::raw_sql("COMMIT").execute(conn).await.unwrap();
}

/// Ctrl-C while statement 3 of 5 of a file outside a transaction waits:
/// the statement is cancelled, `info` shows the file partial, 2 of 5;
/// `validate` and `migrate` refuse and say what to do; `--resume` runs
/// statements 3 to 5 and the file is applied.
#[tokio::test]
async fn ctrl_c_leaves_a_no_transaction_file_partial_and_resume_finishes_it() {
    let prefix = Prefix::new();
    let db = prefix.name("orders");
    let (dir, migrations) = gated_project(&prefix).await;
    std::fs::write(migrations.join("V2__five.sql"), five_statements(3)).unwrap();
    let mut gate = admin_in(&db).await;
    let mut admin = admin_in(&db).await;
    close_gate(&mut gate).await;
    let mut run = spawn(dir.path(), &["migrate"]);
    until!(
        "statement 3 waiting for the gate",
        waiting_on_gate(&mut admin, &db).await
    );
    run.signal("INT");
    let (code, _, stderr) = run.finish().await;
    open_gate(&mut gate).await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "orders: V2__five.sql was cancelled after statement 2 of 5: it runs outside a transaction, so statements 1 and 2 are applied and the rest is not"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`silo migrate --resume` goes on from statement 3"),
        "{stderr}"
    );
    assert_eq!(marks(&mut admin).await, [1, 2]);

    let info = info_json(dir.path());
    let v2 = entry(&info, "V2__five.sql");
    assert_eq!(v2["state"], "partial", "{info:#}");
    assert_eq!(v2["partial"]["statements"], 5);
    assert_eq!(v2["partial"]["done"], 2);
    assert_eq!(v2["partial"]["running"], Value::Null);
    assert_eq!(v2["partial"]["stopped"]["reason"], "cancelled");
    let table = String::from_utf8(silo(dir.path()).arg("info").output().unwrap().stdout).unwrap();
    assert!(table.contains("partial (2 of 5 statements)"), "{table}");

    let out = silo(dir.path()).arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));

    let out = silo(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let flat = flat(&stderr);
    for expected in [
        "V2__five.sql stopped after statement 2 of 5",
        "statements 1 and 2 are applied",
        "statement 3 (line 4) was cancelled, and nothing of it is applied",
        "`silo migrate --resume` runs V2__five.sql on from statement 3",
        "`silo repair orders --yes`",
    ] {
        assert!(flat.contains(expected), "{expected}\nin: {stderr}");
    }
    assert_eq!(marks(&mut admin).await, [1, 2], "nothing ran again");

    silo(dir.path())
        .args(["migrate", "--resume"])
        .assert()
        .success();
    assert_eq!(marks(&mut admin).await, [1, 2, 3, 4, 5]);
    let info = info_json(dir.path());
    assert_eq!(entry(&info, "V2__five.sql")["state"], "applied", "{info:#}");
    silo(dir.path()).arg("validate").assert().success();
}

/// The state `info` shows for V2 after a kill, checked against what ran:
/// never `pending` when a statement ran, never `applied` when one is
/// missing, and the progress brackets what ran (the statements done, plus
/// at most the one that was running).
fn check_after_kill(info: &Value, ran: &[i32]) -> Value {
    let v2 = entry(info, "V2__five.sql");
    let state = v2["state"].as_str().unwrap();
    match ran.len() {
        0 => assert!(state == "pending" || state == "partial", "{v2:#}"),
        5 => assert!(state == "applied" || state == "partial", "{v2:#}"),
        _ => assert_eq!(state, "partial", "ran {ran:?}: {v2:#}"),
    }
    if state == "partial" {
        let done = v2["partial"]["done"].as_u64().unwrap() as usize;
        let running = v2["partial"]["running"].as_u64().map(|n| n as usize);
        assert!(done <= ran.len(), "ran {ran:?}: {v2:#}");
        assert!(
            ran.len() <= done + usize::from(running.is_some()),
            "ran {ran:?}: {v2:#}"
        );
        if let Some(n) = running {
            assert_eq!(n, done + 1, "{v2:#}");
        }
    }
    v2
}

/// SIGKILL at many points of a file outside a transaction. First while
/// each statement in turn waits (killed mid-statement; the statement then
/// runs to its end, or its session is terminated): `info` shows exactly
/// the statements done and the one that may or may not have run, and
/// `migrate` says so. Then right after each progress record, with every
/// statement fast, wherever the kill lands. After each kill the record is
/// repaired and the marks cleared, and the next kill point is tried.
#[tokio::test]
async fn sigkill_at_any_point_never_shows_pending_or_applied_wrongly() {
    let prefix = Prefix::new();
    let db = prefix.name("orders");
    let (dir, migrations) = gated_project(&prefix).await;
    let mut gate = admin_in(&db).await;
    let mut admin = admin_in(&db).await;
    let reset = |dir: &Path| {
        silo(dir)
            .args(["repair", "orders", "--yes"])
            .assert()
            .success();
    };

    for blocking in 1..=5 {
        std::fs::write(migrations.join("V2__five.sql"), five_statements(blocking)).unwrap();
        close_gate(&mut gate).await;
        let mut run = spawn(dir.path(), &["migrate"]);
        let pid = until!(
            "the gated statement waiting",
            waiting_on_gate(&mut admin, &db).await
        );
        run.signal("KILL");
        let (code, _, _) = run.finish().await;
        assert_eq!(code, None, "killed by the signal");
        // The server still waits on the gate for a client that is gone:
        // let the statement run (it takes effect), or end the session (it
        // does not).
        let takes_effect = blocking % 2 == 0;
        if !takes_effect {
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&mut admin)
                .await
                .unwrap();
        }
        open_gate(&mut gate).await;
        until!(
            "the killed run's session gone",
            (migrate_sessions(&mut admin, &db).await == 0).then_some(())
        );
        let ran = marks(&mut admin).await;
        let expected: Vec<i32> = (1..blocking as i32)
            .chain(takes_effect.then_some(blocking as i32))
            .collect();
        assert_eq!(ran, expected, "statement {blocking} blocked");
        let v2 = check_after_kill(&info_json(dir.path()), &ran);
        assert_eq!(v2["state"], "partial");
        assert_eq!(v2["partial"]["done"], blocking - 1);
        assert_eq!(v2["partial"]["running"], blocking);
        let out = silo(dir.path()).arg("migrate").output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let flat = flat(&stderr);
        assert!(
            flat.contains("may or may not have taken effect"),
            "{stderr}"
        );
        reset(dir.path());
        sqlx::query("DELETE FROM marks")
            .execute(&mut admin)
            .await
            .unwrap();
    }

    // No statement waits: the kill lands wherever the run is once the
    // progress says `done` statements are recorded.
    std::fs::write(migrations.join("V2__five.sql"), five_statements(0)).unwrap();
    for done in 0..=5 {
        let mut run = spawn(dir.path(), &["migrate"]);
        until!("the progress to reach the kill point", {
            let exited = run.exited();
            let recorded: Option<i32> =
                sqlx::query_scalar("SELECT done FROM silo_migration_progress")
                    .fetch_optional(&mut admin)
                    .await
                    .unwrap_or(None);
            (exited || recorded.is_some_and(|d| d >= done)).then_some(())
        });
        run.signal("KILL");
        run.finish().await;
        until!(
            "the killed run's session gone",
            (migrate_sessions(&mut admin, &db).await == 0).then_some(())
        );
        let ran = marks(&mut admin).await;
        let v2 = check_after_kill(&info_json(dir.path()), &ran);
        if v2["state"] == "applied" {
            // Finished before the kill: undo it by hand for the next round.
            sqlx::query("DELETE FROM silo_schema_history WHERE script = 'V2__five.sql'")
                .execute(&mut admin)
                .await
                .unwrap();
        } else {
            reset(dir.path());
        }
        sqlx::query("DELETE FROM marks")
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// The SQLite store of the project in `dir`.
async fn sqlite_store(dir: &Path) -> SqliteConnection {
    let folder = dir.join(".silo/orders");
    let path = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite3"))
        .expect("the store file");
    silo_store::sqlite::open(&path).await.unwrap()
}

/// The statement a file outside a transaction has started and not
/// finished, per its progress row (none before the table exists).
async fn sqlite_running(store: &mut SqliteConnection) -> Option<i32> {
    sqlx::query_scalar::<_, Option<i32>>("SELECT running FROM silo_migration_progress")
        .fetch_optional(store)
        .await
        .ok()
        .flatten()
        .flatten()
}

/// A statement SQLite never finishes by itself.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/// SQLite: Ctrl-C interrupts a running statement. In a file outside a
/// transaction, statement 3 of 5 runs for ever: interrupted, the file is
/// partial 2 of 5, `migrate` refuses, and once statement 3 is fixed
/// `--resume` finishes the file. In a transactional file, the endless
/// statement is interrupted and the file rolled back.
#[tokio::test]
async fn ctrl_c_interrupts_a_running_statement_sqlite() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    std::fs::write(
        migrations.join("V1__marks.sql"),
        "CREATE TABLE marks (n INTEGER);\n",
    )
    .unwrap();
    let five = |third: &str| {
        format!(
            "-- silo:no-transaction\nINSERT INTO marks VALUES (1);\nINSERT INTO marks VALUES (2);\n{third};\nINSERT INTO marks VALUES (4);\nINSERT INTO marks VALUES (5);\n"
        )
    };
    std::fs::write(migrations.join("V2__five.sql"), five(ENDLESS)).unwrap();
    let mut run = spawn(dir.path(), &["migrate"]);
    let mut store = sqlite_store(dir.path()).await;
    until!(
        "statement 3 running",
        (sqlite_running(&mut store).await == Some(3)).then_some(())
    );
    // A second run meanwhile sees the file being run, not stopped.
    let out = silo(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let second = flat(&String::from_utf8_lossy(&out.stderr));
    assert!(
        second.contains(&format!(
            "V2__five.sql is being run right now by another silo (pid {} on",
            run.child.id()
        )),
        "{second}"
    );
    assert!(second.contains("wait for that run to finish"), "{second}");
    run.signal("INT");
    let (code, _, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("V2__five.sql was cancelled after statement 2 of 5"),
        "{stderr}"
    );
    let info = info_json(dir.path());
    let v2 = entry(&info, "V2__five.sql");
    assert_eq!(v2["state"], "partial", "{info:#}");
    assert_eq!(
        (
            v2["partial"]["done"].as_u64(),
            v2["partial"]["statements"].as_u64()
        ),
        (Some(2), Some(5))
    );
    let out = silo(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let flat = flat(&stderr);
    assert!(
        flat.contains("statement 3 (line 4) was cancelled"),
        "{stderr}"
    );
    // Statements 1 and 2 are as they ran; statement 3 may change.
    std::fs::write(
        migrations.join("V2__five.sql"),
        five("INSERT INTO marks VALUES (3)"),
    )
    .unwrap();
    silo(dir.path())
        .args(["migrate", "--resume"])
        .assert()
        .success();
    let marks: Vec<i64> = sqlx::query_scalar("SELECT n FROM marks ORDER BY n")
        .fetch_all(&mut store)
        .await
        .unwrap();
    assert_eq!(marks, [1, 2, 3, 4, 5]);
    assert_eq!(
        entry(&info_json(dir.path()), "V2__five.sql")["state"],
        "applied"
    );

    // A transactional file: interrupted and rolled back.
    std::fs::write(
        migrations.join("V3__endless.sql"),
        format!("CREATE TABLE t3 (id INTEGER);\n{ENDLESS};\n"),
    )
    .unwrap();
    let mut run = spawn(dir.path(), &["-v", "migrate"]);
    until!(
        "V3 running",
        run.stderr()
            .contains("running V3__endless.sql")
            .then_some(())
    );
    run.signal("INT");
    let (code, _, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "orders: V3__endless.sql was cancelled and rolled back; nothing of it is applied; V1, V2 applied"
        ),
        "{stderr}"
    );
    let t3: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 't3'")
        .fetch_one(&mut store)
        .await
        .unwrap();
    assert_eq!(t3, 0, "nothing of V3 stayed");
    assert_eq!(
        entry(&info_json(dir.path()), "V3__endless.sql")["state"],
        "pending"
    );
}

/// A second Ctrl-C exits at once, without waiting for the statement.
#[tokio::test]
async fn second_ctrl_c_exits_at_once_sqlite() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    // Cancelling this file has to wait for another writer's lock to
    // record its progress; the test holds that lock.
    std::fs::write(
        migrations.join("V1__endless.sql"),
        format!("-- silo:no-transaction\nCREATE TABLE a (id INTEGER);\n{ENDLESS};\n"),
    )
    .unwrap();
    let mut run = spawn(dir.path(), &["migrate", "--lock-timeout", "600"]);
    let mut store = sqlite_store(dir.path()).await;
    until!(
        "statement 2 running",
        (sqlite_running(&mut store).await == Some(2)).then_some(())
    );
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut store)
        .await
        .unwrap();
    run.signal("INT");
    until!(
        "the first Ctrl-C seen",
        run.stderr().contains("press Ctrl-C again").then_some(())
    );
    run.signal("INT");
    let (code, _, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("exiting at once"), "{stderr}");
    sqlx::raw_sql("ROLLBACK").execute(&mut store).await.unwrap();
}

/// Ctrl-C during `silo verify`, while a file runs on the scratch store:
/// the statement is cancelled, the scratch database dropped, the service's
/// own store untouched, and the message says so; exit 130.
#[tokio::test]
async fn ctrl_c_during_verify_drops_the_scratch_store_postgres() {
    let prefix = Prefix::new();
    let db = prefix.name("orders");
    let (dir, migrations) = project("postgres", &prefix);
    std::fs::write(migrations.join("V1__a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(migrations.join("U1__a.sql"), "DROP TABLE a;\n").unwrap();
    std::fs::write(
        migrations.join("V2__slow.sql"),
        "CREATE TABLE b (id int);\nSELECT pg_sleep(600);\n",
    )
    .unwrap();
    std::fs::write(migrations.join("U2__slow.sql"), "DROP TABLE b;\n").unwrap();
    let mut admin = admin_in("postgres").await;
    let scratch_pattern = format!("{}%scratch%", db.replace('_', "\\_"));
    let mut run = spawn(dir.path(), &["verify", "orders"]);
    let scratch: String = until!("pg_sleep running on the scratch store", {
        sqlx::query_scalar::<_, String>(
            "SELECT datname::text FROM pg_stat_activity
             WHERE datname LIKE $1 AND state = 'active' AND strpos(query, 'pg_sleep') > 0",
        )
        .bind(&scratch_pattern)
        .fetch_optional(&mut admin)
        .await
        .unwrap()
    });
    run.signal("INT");
    let (code, _, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        flat(&stderr).contains(
            "cancelled; the scratch store was dropped and the service's own store was not touched"
        ),
        "{stderr}"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&scratch)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "the scratch database {scratch} was dropped");
    let info = info_json(dir.path());
    assert_eq!(entry(&info, "V1__a.sql")["state"], "pending", "{info:#}");
}

/// Ctrl-C during `silo migrations adopt` cancels its statement on the
/// server, even one waiting for another tool's lock on that tool's history
/// table: silo exits 130 while the lock is still held.
#[tokio::test]
async fn ctrl_c_cancels_adopt_waiting_on_a_lock_postgres() {
    let prefix = Prefix::new();
    let db = prefix.name("orders");
    let (dir, migrations) = project("postgres", &prefix);
    std::fs::write(migrations.join("V1__a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    let mut admin = admin_in(&db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE flyway_schema_history (
             installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
             type varchar(20), script varchar(1000), checksum int, installed_by varchar(100),
             installed_on timestamp DEFAULT now(), execution_time int, success boolean);
         ALTER TABLE flyway_schema_history OWNER TO \"{}\";",
        prefix.name("orders_svc")
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    // A run of the other tool holds its table.
    let mut gate = admin_in(&db).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE flyway_schema_history IN ACCESS EXCLUSIVE MODE")
        .execute(&mut gate)
        .await
        .unwrap();
    let mut run = spawn(
        dir.path(),
        &[
            "migrations",
            "adopt",
            "orders",
            "--from",
            "flyway",
            "--dry-run",
        ],
    );
    until!(
        "adopt waiting for the lock",
        running(&mut admin, &db, "flyway_schema_history")
            .await
            .into_iter()
            .find(|(_, wait)| wait.as_deref() == Some("Lock"))
    );
    run.signal("INT");
    let (code, stdout, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "stdout: {stdout}\nstderr: {stderr}");
    // The lock is still held: the statement was cancelled, not let through.
    assert!(
        running(&mut admin, &db, "flyway_schema_history")
            .await
            .is_empty()
    );
    sqlx::raw_sql("ROLLBACK").execute(&mut gate).await.unwrap();
}
