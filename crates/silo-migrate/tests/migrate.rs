//! The migration engine on real stores: every story runs on SQLite and on
//! the real PostgreSQL server, as the service's own role.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use silo_manifest::{Manifest, Overrides, Service};
use silo_migrate::{
    LockPolicy, MigrateError, MigrateOptions, State, Target, Version, connect, discover, entries,
    migrate, prepare, undo,
};
use silo_store::{ProvisionOptions, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};

/// A provisioned single-service project with a migrations folder.
struct Project {
    _dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    engine: &'static str,
}

impl Project {
    async fn new(engine: &'static str, placeholders: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let text = format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n\
             [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\n{placeholders}",
            prefix.name("orders"),
            prefix.name("orders_svc")
        );
        let manifest =
            Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default())
                .unwrap();
        let stores = Stores::new(StoresConfig {
            project: None,
            data_dir: manifest.data_dir.clone(),
            admin_url: Some(admin_url()),
            concurrency: 2,
        });
        let svc = &manifest.services[0];
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        std::fs::create_dir_all(manifest.migrations_dir(svc)).unwrap();
        Project {
            _dir: dir,
            _prefix: prefix,
            manifest,
            stores,
            engine,
        }
    }

    fn service(&self) -> &Service {
        &self.manifest.services[0]
    }

    fn dir(&self) -> PathBuf {
        self.manifest.migrations_dir(self.service())
    }

    fn write(&self, name: &str, sql: &str) {
        std::fs::write(self.dir().join(name), sql).unwrap();
    }

    async fn target(&self) -> Box<dyn Target> {
        connect::open(&self.stores, self.service(), policy())
            .await
            .unwrap()
    }

    async fn migrate(&self, options: MigrateOptions) -> Result<Vec<String>, MigrateError> {
        let migrations = discover(&self.dir(), self.service().engine)?;
        let mut target = self.target().await;
        let prepared = prepare(&migrations, self.service())?;
        let steps = migrate(target.as_mut(), &prepared, &options, |_| {}).await?;
        Ok(steps.into_iter().map(|s| s.script).collect())
    }

    async fn states(&self) -> Vec<(String, State)> {
        let migrations = discover(&self.dir(), self.service().engine).unwrap();
        let mut target = self.target().await;
        let history = target.history().await.unwrap();
        entries(&migrations, &history)
            .into_iter()
            .map(|e| (e.script, e.state))
            .collect()
    }

    async fn history_len(&self) -> usize {
        self.target().await.history().await.unwrap().len()
    }

    /// Names of the user's tables, sorted.
    async fn tables(&self) -> Vec<String> {
        let sql = match self.engine {
            "postgres" => {
                "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
                 WHERE schemaname = 'public' AND tablename NOT LIKE 'silo\\_%'"
            }
            _ => {
                "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master \
                 WHERE type = 'table' AND name NOT LIKE 'silo\\_%' ESCAPE '\\' ORDER BY name)"
            }
        };
        match self.engine {
            "postgres" => {
                let creds = self
                    .stores
                    .engine(self.service())
                    .unwrap()
                    .credentials(self.service())
                    .unwrap();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&creds.url())
                    .await
                    .unwrap();
                let s: Option<String> = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                split(s)
            }
            _ => {
                let path = self.service().sqlite_path(&self.manifest.data_dir);
                let mut conn = silo_store::sqlite::open(&path).await.unwrap();
                let s: Option<String> = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                split(s)
            }
        }
    }
}

fn split(s: Option<String>) -> Vec<String> {
    s.map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

fn policy() -> LockPolicy {
    LockPolicy {
        timeout: Duration::from_secs(60),
        on_wait: Arc::new(|_| {}),
        cancel: silo_migrate::Cancel::new(),
    }
}

fn scripts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn orders_versions_and_repeatables(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1_10__tenth.sql", "CREATE TABLE t10 (id INTEGER);");
    p.write("V1_9__ninth.sql", "CREATE TABLE t9 (id INTEGER);");
    p.write("V001__first.sql", "CREATE TABLE t1 (id INTEGER);");
    p.write("R__view.sql", "CREATE VIEW v AS SELECT id FROM t10;");
    p.write("U1_10__tenth.sql", "DROP TABLE t10;");
    let applied = p.migrate(MigrateOptions::default()).await.unwrap();
    assert_eq!(
        applied,
        scripts(&[
            "V001__first.sql",
            "V1_9__ninth.sql",
            "V1_10__tenth.sql",
            "R__view.sql"
        ])
    );
    assert!(p.states().await.iter().all(|(_, s)| *s == State::Applied));
    // Nothing left: a second run applies nothing.
    assert!(
        p.migrate(MigrateOptions::default())
            .await
            .unwrap()
            .is_empty()
    );

    // A changed repeatable runs again, after any new versioned file.
    p.write(
        "R__view.sql",
        "DROP VIEW v; CREATE VIEW v AS SELECT id, 1 AS one FROM t10;",
    );
    p.write("V2__second.sql", "CREATE TABLE t2 (id INTEGER);");
    let applied = p.migrate(MigrateOptions::default()).await.unwrap();
    assert_eq!(applied, scripts(&["V2__second.sql", "R__view.sql"]));
}

#[tokio::test]
async fn ordering_sqlite() {
    orders_versions_and_repeatables("sqlite").await;
}

#[tokio::test]
async fn ordering_postgres() {
    orders_versions_and_repeatables("postgres").await;
}

async fn target_version_stops_early(engine: &'static str) {
    let p = Project::new(engine, "").await;
    for v in 1..=3 {
        p.write(
            &format!("V{v}__t{v}.sql"),
            &format!("CREATE TABLE t{v} (id INTEGER);"),
        );
    }
    let options = MigrateOptions {
        target: Some(Version::parse("2").unwrap()),
        ..Default::default()
    };
    assert_eq!(p.migrate(options).await.unwrap().len(), 2);
    assert_eq!(p.tables().await, ["t1", "t2"]);
    let dry = MigrateOptions {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(p.migrate(dry).await.unwrap(), scripts(&["V3__t3.sql"]));
    assert_eq!(p.tables().await, ["t1", "t2"], "a dry run changes nothing");
}

#[tokio::test]
async fn target_sqlite() {
    target_version_stops_early("sqlite").await;
}

#[tokio::test]
async fn target_postgres() {
    target_version_stops_early("postgres").await;
}

async fn placeholders(engine: &'static str) {
    let p = Project::new(
        engine,
        "[services.orders.placeholders]\ntable = \"widgets\"\n",
    )
    .await;
    p.write(
        "V1__placeholders.sql",
        "CREATE TABLE ${table} (id INTEGER, owner TEXT DEFAULT '${service}');",
    );
    p.migrate(MigrateOptions::default()).await.unwrap();
    assert_eq!(p.tables().await, ["widgets"]);

    p.write("V2__unknown.sql", "SELECT 1;\nSELECT '${nope}';");
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    match err {
        MigrateError::UnknownPlaceholder { location, name } => {
            assert_eq!(name, "nope");
            assert_eq!((location.line, location.column), (2, 9));
            assert!(location.path.ends_with("V2__unknown.sql"));
        }
        other => panic!("expected an unknown placeholder, got {other}"),
    }
}

#[tokio::test]
async fn placeholders_sqlite() {
    placeholders("sqlite").await;
}

#[tokio::test]
async fn placeholders_postgres() {
    placeholders("postgres").await;
}

async fn failure_on_third_statement(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__ok.sql", "CREATE TABLE keep (id INTEGER);");
    p.migrate(MigrateOptions::default()).await.unwrap();
    let before = p.history_len().await;
    p.write(
        "V2__broken.sql",
        "-- three statements, the third fails\n\
         CREATE TABLE a (id INTEGER);\n\
         INSERT INTO a VALUES (1);\n\
         \n\
         INSERT INTO missing_table VALUES (2);\n",
    );
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    let MigrateError::Failed(f) = err else {
        panic!("expected a failed migration, got {err}");
    };
    let location = f.location.clone().expect("located");
    assert_eq!(location.line, 5, "{f}");
    assert!(location.path.ends_with("V2__broken.sql"));
    assert_eq!(
        f.statement.as_deref(),
        Some("INSERT INTO missing_table VALUES (2)")
    );
    assert!(f.message.contains("missing_table"), "{}", f.message);
    assert!(f.rolled_back);
    // Nothing half-applied: no table `a`, no new history row.
    assert_eq!(p.tables().await, ["keep"]);
    assert_eq!(p.history_len().await, before);
}

#[tokio::test]
async fn failure_sqlite() {
    failure_on_third_statement("sqlite").await;
}

#[tokio::test]
async fn failure_postgres() {
    failure_on_third_statement("postgres").await;
}

/// PostgreSQL reports a position: the column is exact.
#[tokio::test]
async fn failure_position_postgres() {
    let p = Project::new("postgres", "").await;
    p.write(
        "V1__typo.sql",
        "CREATE TABLE a (id int);\nSELECT idd FROM a;\n",
    );
    let MigrateError::Failed(f) = p.migrate(MigrateOptions::default()).await.unwrap_err() else {
        panic!("expected a failure");
    };
    let l = f.location.unwrap();
    assert_eq!((l.line, l.column), (2, 8));
    assert_eq!(f.code.as_deref(), Some("42703"));
}

async fn tamper(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__a.sql", "CREATE TABLE a (id INTEGER);");
    p.migrate(MigrateOptions::default()).await.unwrap();
    // A CRLF checkout is the same file.
    p.write(
        "V1__a.sql",
        "CREATE TABLE a (id INTEGER);\r\n".trim_end_matches("\r\n"),
    );
    assert!(p.states().await.iter().all(|(_, s)| *s == State::Applied));
    p.write("V1__a.sql", "CREATE TABLE a (id BIGINT);");
    assert_eq!(
        p.states().await,
        [("V1__a.sql".to_string(), State::ChecksumMismatch)]
    );
    p.write("V2__b.sql", "CREATE TABLE b (id INTEGER);");
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Validation(ref m) if m.contains("V1__a.sql")),
        "{err}"
    );
    assert_eq!(p.tables().await, ["a"]);
    let forced = MigrateOptions {
        ignore_mismatch: true,
        ..Default::default()
    };
    assert_eq!(p.migrate(forced).await.unwrap(), scripts(&["V2__b.sql"]));
}

#[tokio::test]
async fn tamper_sqlite() {
    tamper("sqlite").await;
}

#[tokio::test]
async fn tamper_postgres() {
    tamper("postgres").await;
}

/// `--ignore-mismatch` lets changed files through, and nothing else: an
/// applied file that is gone still stops the run, even when its name reads
/// like the wording of a checksum mismatch.
async fn ignore_mismatch_passes_only_changed_files(engine: &'static str) {
    let p = Project::new(engine, "").await;
    let odd = "V1__changed after it was applied.sql";
    p.write(odd, "CREATE TABLE a (id INTEGER);");
    p.migrate(MigrateOptions::default()).await.unwrap();
    std::fs::remove_file(p.dir().join(odd)).unwrap();
    p.write("V2__b.sql", "CREATE TABLE b (id INTEGER);");
    let forced = MigrateOptions {
        ignore_mismatch: true,
        ..Default::default()
    };
    let err = p.migrate(forced).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Validation(ref m) if m.contains("its file is gone")),
        "{err}"
    );
    assert_eq!(p.tables().await, ["a"]);
}

#[tokio::test]
async fn ignore_mismatch_passes_only_changed_files_sqlite() {
    ignore_mismatch_passes_only_changed_files("sqlite").await;
}

#[tokio::test]
async fn ignore_mismatch_passes_only_changed_files_postgres() {
    ignore_mismatch_passes_only_changed_files("postgres").await;
}

/// A history row of a type silo never writes is refused by name, not
/// skipped: replaying without it could run a migration again.
async fn unknown_history_type_is_refused(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__a.sql", "CREATE TABLE a (id INTEGER);");
    p.migrate(MigrateOptions::default()).await.unwrap();
    p.target()
        .await
        .execute("UPDATE silo_schema_history SET type = 'SQL' WHERE installed_rank = 1")
        .await
        .unwrap();
    let err = p.target().await.history().await.unwrap_err();
    assert!(
        matches!(err, MigrateError::UnknownHistoryKind { rank: 1, ref kind } if kind == "SQL"),
        "{err}"
    );
    assert!(p.migrate(MigrateOptions::default()).await.is_err());
    assert_eq!(p.tables().await, ["a"]);
}

#[tokio::test]
async fn unknown_history_type_is_refused_sqlite() {
    unknown_history_type_is_refused("sqlite").await;
}

#[tokio::test]
async fn unknown_history_type_is_refused_postgres() {
    unknown_history_type_is_refused("postgres").await;
}

async fn undo_to_zero_and_forward(engine: &'static str) {
    let p = Project::new(engine, "").await;
    for v in 1..=3 {
        p.write(
            &format!("V{v}__t{v}.sql"),
            &format!("CREATE TABLE t{v} (id INTEGER);"),
        );
        p.write(&format!("U{v}__t{v}.sql"), &format!("DROP TABLE t{v};"));
    }
    p.migrate(MigrateOptions::default()).await.unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let mut target = p.target().await;
    let prepared = prepare(&migrations, p.service()).unwrap();
    let steps = undo(
        target.as_mut(),
        &prepared,
        Some(&Version::parse("0").unwrap()),
        |_| {},
    )
    .await
    .unwrap();
    let undone: Vec<_> = steps.into_iter().map(|s| s.script).collect();
    assert_eq!(undone, scripts(&["U3__t3.sql", "U2__t2.sql", "U1__t1.sql"]));
    assert!(p.tables().await.is_empty());
    assert!(p.states().await.iter().all(|(_, s)| *s == State::Pending));
    assert_eq!(p.migrate(MigrateOptions::default()).await.unwrap().len(), 3);
    assert_eq!(p.tables().await, ["t1", "t2", "t3"]);

    // A missing undo file refuses before anything runs.
    std::fs::remove_file(p.dir().join("U2__t2.sql")).unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let err = undo(
        target.as_mut(),
        &prepared,
        Some(&Version::parse("1").unwrap()),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, MigrateError::Undo { ref version, .. } if version == "2"),
        "{err}"
    );
    assert_eq!(p.tables().await, ["t1", "t2", "t3"]);
}

#[tokio::test]
async fn undo_sqlite() {
    undo_to_zero_and_forward("sqlite").await;
}

#[tokio::test]
async fn undo_postgres() {
    undo_to_zero_and_forward("postgres").await;
}

async fn baseline_then_migrate(engine: &'static str) {
    let p = Project::new(engine, "").await;
    // A store made by hand before silo: V1 and V2 are already in it.
    {
        let mut target = p.target().await;
        target
            .execute("CREATE TABLE t1 (id INTEGER); CREATE TABLE t2 (id INTEGER);")
            .await
            .unwrap();
    }
    for v in 1..=3 {
        p.write(
            &format!("V{v}__t{v}.sql"),
            &format!("CREATE TABLE t{v} (id INTEGER);"),
        );
    }
    let mut target = p.target().await;
    silo_migrate::baseline(target.as_mut(), &Version::parse("2").unwrap())
        .await
        .unwrap();
    assert_eq!(
        p.migrate(MigrateOptions::default()).await.unwrap(),
        scripts(&["V3__t3.sql"])
    );
    let states: Vec<State> = p.states().await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(states, [State::Baselined, State::Baselined, State::Applied]);
    let err = silo_migrate::baseline(target.as_mut(), &Version::parse("5").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Refused(_)));
}

#[tokio::test]
async fn baseline_sqlite() {
    baseline_then_migrate("sqlite").await;
}

#[tokio::test]
async fn baseline_postgres() {
    baseline_then_migrate("postgres").await;
}

#[tokio::test]
async fn no_transaction_file_postgres() {
    let p = Project::new("postgres", "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id int, x int);");
    p.write(
        "V2__index.sql",
        "CREATE INDEX CONCURRENTLY idx_t_x ON t (x);",
    );
    p.write(
        "V3__marked.sql",
        "-- silo:no-transaction\nCREATE TABLE m (id int);\nINSERT INTO m VALUES (1);",
    );
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let target = p.target().await;
    let prepared = prepare(&migrations, p.service()).unwrap();
    let flags: Vec<Option<String>> = prepared
        .iter()
        .map(|p| p.analysis(target.as_ref()).no_transaction.clone())
        .collect();
    assert_eq!(
        flags,
        [
            None,
            Some("contains CREATE INDEX CONCURRENTLY".to_string()),
            Some("marked `-- silo:no-transaction`".to_string())
        ]
    );
    let applied = p.migrate(MigrateOptions::default()).await.unwrap();
    assert_eq!(applied.len(), 3);
    assert_eq!(p.tables().await, ["m", "t"]);
}

#[tokio::test]
async fn no_transaction_file_sqlite() {
    let p = Project::new("sqlite", "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id INTEGER);");
    p.write("V2__vacuum.sql", "VACUUM;");
    assert_eq!(p.migrate(MigrateOptions::default()).await.unwrap().len(), 2);
}

/// U files follow the V files' transaction rule: `DROP INDEX CONCURRENTLY`
/// runs outside a transaction under `undo` and under `verify`, and the
/// plan shows it before anything runs.
#[tokio::test]
async fn no_transaction_undo_postgres() {
    use silo_migrate::verify::verify;
    let p = Project::new("postgres", "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id int, x int);");
    p.write("U1__t.sql", "DROP TABLE t;");
    p.write(
        "V2__index.sql",
        "CREATE INDEX CONCURRENTLY idx_t_x ON t (x);",
    );
    p.write("U2__index.sql", "DROP INDEX CONCURRENTLY idx_t_x;");
    p.migrate(MigrateOptions::default()).await.unwrap();
    let report = verify(&p.manifest, &p.stores, p.service(), policy(), |_| {})
        .await
        .unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(report.proven, ["1", "2"]);

    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = p.target().await;
    let zero = Version::parse("0").unwrap();
    let rows = p.history_len().await;
    let plan = silo_migrate::undo_plan(target.as_mut(), &prepared, Some(&zero))
        .await
        .unwrap();
    let shown: Vec<_> = plan
        .iter()
        .map(|s| (s.script.as_str(), s.transactional, s.sql.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "U2__index.sql",
                false,
                Some("DROP INDEX CONCURRENTLY idx_t_x;")
            ),
            ("U1__t.sql", true, Some("DROP TABLE t;")),
        ]
    );
    assert_eq!(p.history_len().await, rows, "the plan changes nothing");
    assert_eq!(p.tables().await, ["t"]);

    let steps = undo(target.as_mut(), &prepared, Some(&zero), |_| {})
        .await
        .unwrap();
    let undone: Vec<_> = steps.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(undone, ["U2__index.sql", "U1__t.sql"]);
    assert!(p.tables().await.is_empty());
    assert!(p.states().await.iter().all(|(_, s)| *s == State::Pending));
}

/// A U file marked `-- silo:no-transaction` runs statement by statement:
/// when its second statement fails, the first stays done, the failure says
/// it was not rolled back, and the history records the failed undo.
async fn marked_undo_runs_statement_by_statement(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write(
        "V1__t.sql",
        "CREATE TABLE t (id INTEGER);\nCREATE TABLE u (id INTEGER);",
    );
    p.write(
        "U1__t.sql",
        "-- silo:no-transaction\nDROP TABLE t;\nDROP TABLE no_such_table;\nDROP TABLE u;",
    );
    p.migrate(MigrateOptions::default()).await.unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = p.target().await;
    let err = undo(target.as_mut(), &prepared, None, |_| {})
        .await
        .unwrap_err();
    match &err {
        MigrateError::Failed(f) => {
            assert!(!f.rolled_back, "{f}");
            assert_eq!(f.statement.as_deref(), Some("DROP TABLE no_such_table"));
            assert_eq!(f.location.as_ref().map(|l| l.line), Some(3), "{f}");
        }
        other => panic!("expected a failed undo, got {other}"),
    }
    assert_eq!(p.tables().await, ["u"]);
    let history = target.history().await.unwrap();
    let last = history.last().unwrap();
    assert_eq!((last.kind.as_str(), last.success), ("undo", false));
}

#[tokio::test]
async fn marked_undo_sqlite() {
    marked_undo_runs_statement_by_statement("sqlite").await;
}

#[tokio::test]
async fn marked_undo_postgres() {
    marked_undo_runs_statement_by_statement("postgres").await;
}

/// A COMMIT in a U file is refused before anything runs, as in a V file.
#[tokio::test]
async fn commit_in_an_undo_file_is_refused() {
    let p = Project::new("sqlite", "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id INTEGER);");
    p.write("U1__t.sql", "DROP TABLE t;\nCOMMIT;");
    p.migrate(MigrateOptions::default()).await.unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = p.target().await;
    let err = undo(target.as_mut(), &prepared, None, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("COMMIT in a migration"), "{err}");
    assert_eq!(p.tables().await, ["t"]);
}

#[test]
fn engine_folders_are_picked_by_engine() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("postgres")).unwrap();
    std::fs::create_dir_all(root.join("sqlite")).unwrap();
    std::fs::write(root.join("postgres/V1__pg.sql"), "SELECT 1;").unwrap();
    std::fs::write(root.join("sqlite/V1__lite.sql"), "SELECT 1;").unwrap();
    let pick = |e| -> Vec<String> {
        discover(root, e)
            .unwrap()
            .into_iter()
            .map(|m| m.script)
            .collect()
    };
    assert_eq!(pick(silo_manifest::Engine::Postgres), ["V1__pg.sql"]);
    assert_eq!(pick(silo_manifest::Engine::Sqlite), ["V1__lite.sql"]);
    std::fs::remove_dir_all(root.join("sqlite")).unwrap();
    assert!(matches!(
        discover(root, silo_manifest::Engine::Sqlite),
        Err(silo_migrate::FileError::NoEngineFolder { .. })
    ));
}

async fn verify_names_the_broken_undo(engine: &'static str) {
    use silo_migrate::verify::{VerifyFailure, verify};
    let p = Project::new(engine, "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id INTEGER, x INTEGER);");
    p.write("U1__t.sql", "DROP TABLE t;");
    p.write("V2__index.sql", "CREATE INDEX idx_t_x ON t (x);");
    p.write("U2__index.sql", "DROP INDEX idx_t_x;");
    p.write("V3__u.sql", "CREATE TABLE u (id INTEGER);");
    p.write("U3__u.sql", "DROP TABLE u;");
    let report = verify(&p.manifest, &p.stores, p.service(), policy(), |_| {})
        .await
        .unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(report.proven, ["1", "2", "3"]);
    assert!(p.tables().await.is_empty(), "the real store is not touched");

    // An undo that forgets the index it should drop.
    p.write(
        "V4__more.sql",
        "ALTER TABLE u ADD COLUMN y INTEGER; CREATE INDEX idx_u_id ON u (id);",
    );
    p.write(
        "U4__more.sql",
        "-- drops the column, forgets the index\nALTER TABLE u DROP COLUMN y;",
    );
    let report = verify(&p.manifest, &p.stores, p.service(), policy(), |_| {})
        .await
        .unwrap();
    match report.failure {
        Some(VerifyFailure::NotRestored {
            version,
            differences,
        }) => {
            assert_eq!(version, "4");
            let text: Vec<String> = differences.iter().map(ToString::to_string).collect();
            assert!(
                text.iter().any(|d| d.starts_with("+ index idx_u_id")),
                "{text:?}"
            );
        }
        other => panic!("expected version 4 not restored, got {other:?}"),
    }

    // An undo that errors.
    p.write("U4__more.sql", "DROP TABLE no_such_table;");
    let report = verify(&p.manifest, &p.stores, p.service(), policy(), |_| {})
        .await
        .unwrap();
    match report.failure {
        Some(VerifyFailure::Undo { version, error }) => {
            assert_eq!(version, "4");
            assert!(error.contains("no_such_table"), "{error}");
        }
        other => panic!("expected the undo of version 4 to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn verify_sqlite() {
    verify_names_the_broken_undo("sqlite").await;
}

#[tokio::test]
async fn verify_postgres() {
    verify_names_the_broken_undo("postgres").await;
}

async fn drift_is_found(engine: &'static str) {
    use silo_migrate::verify::drift;
    let p = Project::new(engine, "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id INTEGER, x INTEGER);");
    p.migrate(MigrateOptions::default()).await.unwrap();
    assert!(
        drift(&p.manifest, &p.stores, p.service(), policy())
            .await
            .unwrap()
            .is_empty()
    );
    p.target()
        .await
        .execute("CREATE INDEX idx_t_x ON t (x)")
        .await
        .unwrap();
    let differences = drift(&p.manifest, &p.stores, p.service(), policy())
        .await
        .unwrap();
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert_eq!(differences[0].name, "idx_t_x");
    assert!(differences[0].before.is_none());
}

#[tokio::test]
async fn drift_sqlite() {
    drift_is_found("sqlite").await;
}

#[tokio::test]
async fn drift_postgres() {
    drift_is_found("postgres").await;
}

async fn newer_history_is_refused(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__t.sql", "CREATE TABLE t (id INTEGER);");
    p.migrate(MigrateOptions::default()).await.unwrap();
    let bump = match engine {
        "postgres" => "COMMENT ON TABLE silo_schema_history IS 'silo schema history, format 99'",
        _ => "UPDATE silo_store SET value = '99' WHERE key = 'history_format'",
    };
    p.target().await.execute(bump).await.unwrap();
    p.write("V2__u.sql", "CREATE TABLE u (id INTEGER);");
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::NewerHistory { found: 99, .. }),
        "{err}"
    );
    assert_eq!(p.tables().await, ["t"]);
}

#[tokio::test]
async fn newer_history_sqlite() {
    newer_history_is_refused("sqlite").await;
}

#[tokio::test]
async fn newer_history_postgres() {
    newer_history_is_refused("postgres").await;
}

/// A COMMIT inside a file would end silo's transaction early and record a
/// half-run file as applied: the file is refused before it runs.
async fn transaction_control_is_refused(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__a.sql", "CREATE TABLE t1 (id INTEGER);");
    p.write(
        "V2__b.sql",
        "CREATE TABLE t2 (id INTEGER);\nCOMMIT;\nCREATE TABLE t3 (id INTEGER);",
    );
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    match err {
        MigrateError::Failed(f) => {
            let l = f.location.expect("located");
            assert_eq!((l.line, l.column), (2, 1));
            assert!(
                f.message.starts_with("COMMIT in a migration"),
                "{}",
                f.message
            );
        }
        other => panic!("expected a refused file, got {other}"),
    }
    assert_eq!(p.tables().await, ["t1"], "nothing of V2 ran");
    // Savepoints stay inside the transaction and are fine.
    p.write(
        "V2__b.sql",
        "SAVEPOINT s;\nCREATE TABLE t2 (id INTEGER);\nRELEASE SAVEPOINT s;",
    );
    p.migrate(MigrateOptions::default()).await.unwrap();
    assert_eq!(p.tables().await, ["t1", "t2"]);
}

#[tokio::test]
async fn transaction_control_sqlite() {
    transaction_control_is_refused("sqlite").await;
}

#[tokio::test]
async fn transaction_control_postgres() {
    transaction_control_is_refused("postgres").await;
}

/// A file that ends inside a comment, a string or a quoted identifier would
/// have the rest of it silently skipped (SQLite reads an unterminated `/*`
/// as a comment to the end) or, outside a transaction, half run: it is
/// refused before any of it runs, located at what it leaves open, and not
/// recorded. Undo files too.
async fn incomplete_file_is_refused(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__a.sql", "CREATE TABLE t1 (id INTEGER);");
    let mut cases = vec![
        (
            "CREATE TABLE t2 (id INTEGER);\n/* CREATE TABLE t3 (id INTEGER);\n",
            (2, 1),
            "unterminated `/*` comment",
        ),
        (
            "-- silo:no-transaction\nCREATE TABLE t2 (id INTEGER);\n  /* CREATE TABLE t3 (id INTEGER);",
            (3, 3),
            "unterminated `/*` comment",
        ),
        (
            "CREATE TABLE t2 (id INTEGER);\nINSERT INTO t1 VALUES (1);\nCREATE TABLE \"t3 (id INTEGER);",
            (3, 14),
            "unterminated quoted identifier",
        ),
        (
            "CREATE TABLE t2 (id INTEGER);\nINSERT INTO t2 VALUES ('x);\n",
            (2, 24),
            "unterminated string",
        ),
    ];
    if engine == "sqlite" {
        cases.push((
            "CREATE TABLE t2 (id INTEGER);\nCREATE TRIGGER tr AFTER INSERT ON t2 BEGIN\n  DELETE FROM t1;\n",
            (2, 1),
            "CREATE TRIGGER without `END;`",
        ));
    } else {
        cases.push((
            "CREATE TABLE t2 (id INTEGER);\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $$ LANGUAGE sql;",
            (2, 36),
            "unterminated dollar-quoted string `$body$`",
        ));
    }
    for (sql, at, message) in cases {
        p.write("V2__b.sql", sql);
        let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
        match err {
            MigrateError::Failed(f) => {
                let l = f.location.expect("located");
                assert_eq!((l.line, l.column), at, "{sql}");
                assert!(l.path.ends_with("V2__b.sql"));
                assert!(f.message.starts_with(message), "{sql}: {}", f.message);
            }
            other => panic!("expected a refused file, got {other}"),
        }
        assert_eq!(p.tables().await, ["t1"], "nothing of V2 ran: {sql}");
        assert_eq!(p.history_len().await, 1, "V2 is not recorded: {sql}");
    }
    // Outside a transaction, a last statement without its end would
    // leave what comes before it applied (PostgreSQL's scanner even
    // dropped it, and recorded the file as applied): refused before
    // anything runs.
    p.write(
        "V2__b.sql",
        "-- silo:no-transaction\nCREATE TABLE t2 (id INTEGER);\nCREATE TABLE t3 (id INTEGER",
    );
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    match err {
        MigrateError::Failed(f) => {
            assert_eq!(f.location.expect("located").line, 3, "{}", f.message);
            assert!(
                f.message
                    .ends_with("the file runs outside a transaction, so nothing of it was run"),
                "{}",
                f.message
            );
        }
        other => panic!("expected a refused file, got {other}"),
    }
    assert_eq!(p.tables().await, ["t1"], "nothing of V2 ran");
    assert_eq!(p.history_len().await, 1, "V2 is not recorded");

    p.write("V2__b.sql", "CREATE TABLE t2 (id INTEGER); /* closed */");
    p.write("U2__b.sql", "DROP TABLE t2;\n/* unterminated");
    p.migrate(MigrateOptions::default()).await.unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = p.target().await;
    let err = undo(target.as_mut(), &prepared, None, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::Failed(f) if f.location.as_ref().is_some_and(|l| l.line == 2)),
        "{err}"
    );
    assert_eq!(p.tables().await, ["t1", "t2"], "the undo did not run");
}

#[tokio::test]
async fn incomplete_file_sqlite() {
    incomplete_file_is_refused("sqlite").await;
}

#[tokio::test]
async fn incomplete_file_postgres() {
    incomplete_file_is_refused("postgres").await;
}

/// A policy whose runs `cancel` calls off.
fn cancellable(cancel: &silo_migrate::Cancel) -> LockPolicy {
    LockPolicy {
        cancel: cancel.clone(),
        ..policy()
    }
}

/// Polls `check` (an expression that may `.await`) until it holds, for at
/// most a minute.
macro_rules! until {
    ($what:expr, $check:expr) => {{
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !$check {
            assert!(
                std::time::Instant::now() < deadline,
                "gave up waiting: {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }};
}

/// Cancelling the token of a run whose statement sleeps on PostgreSQL:
/// the statement is cancelled on the server, the file rolled back and not
/// recorded, the lock released, and the error says what the store holds.
#[tokio::test]
async fn cancel_rolls_back_the_running_file_postgres() {
    use silo_migrate::{Cancel, Stopped};
    let p = Project::new("postgres", "").await;
    p.write("V1__a.sql", "CREATE TABLE a (id int);");
    p.write(
        "V2__slow.sql",
        "CREATE TABLE b (id int);\nSELECT pg_sleep(600);",
    );
    let cancel = Cancel::new();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = connect::open(&p.stores, p.service(), cancellable(&cancel))
        .await
        .unwrap();
    let db = p.service().database.clone();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
        .await
        .unwrap();
    let sleeping = "SELECT count(*) FROM pg_stat_activity
                    WHERE datname = $1 AND state = 'active' AND strpos(query, 'pg_sleep') > 0";
    let watcher = async {
        until!("pg_sleep running", {
            let n: i64 = sqlx::query_scalar(sleeping)
                .bind(&db)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            n == 1
        });
        cancel.cancel();
    };
    let options = MigrateOptions::default();
    let run = migrate(target.as_mut(), &prepared, &options, |_| {});
    let (result, ()) = tokio::join!(run, watcher);
    match result {
        Err(MigrateError::Cancelled(c)) => {
            assert_eq!(
                c.stopped,
                Stopped::RolledBack {
                    script: "V2__slow.sql".into()
                }
            );
            assert_eq!(c.applied, Some(vec!["1".to_string()]));
            assert_eq!(
                c.to_string(),
                "V2__slow.sql was cancelled and rolled back; nothing of it is applied; V1 applied"
            );
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
    // Nothing sleeps any more and nothing holds the lock, though the
    // connection is still open.
    let n: i64 = sqlx::query_scalar(sleeping)
        .bind(&db)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND d.datname = $1",
    )
    .bind(&db)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(locks, 0);
    assert_eq!(p.tables().await, ["a"]);
    assert_eq!(
        p.states().await,
        [
            ("V1__a.sql".to_string(), State::Applied),
            ("V2__slow.sql".to_string(), State::Pending)
        ]
    );
}

/// A statement SQLite never finishes by itself.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/// SQLite: cancelling interrupts the running statement. A file outside a
/// transaction cancelled at statement 3 of 5 is partial, 2 of 5; migrate
/// refuses it until `resume`, which runs statements 3 to 5 of the fixed
/// file (statements 1 and 2 unchanged) and records it applied with the
/// file's checksum.
#[tokio::test]
async fn cancel_then_resume_sqlite() {
    use silo_migrate::{Cancel, Stopped};
    let p = Project::new("sqlite", "").await;
    p.write("V1__marks.sql", "CREATE TABLE marks (n INTEGER);");
    let five = |third: &str| {
        format!(
            "-- silo:no-transaction\nINSERT INTO marks VALUES (1);\nINSERT INTO marks VALUES (2);\n{third};\nINSERT INTO marks VALUES (4);\nINSERT INTO marks VALUES (5);\n"
        )
    };
    p.write("V2__five.sql", &five(ENDLESS));
    let cancel = Cancel::new();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = connect::open(&p.stores, p.service(), cancellable(&cancel))
        .await
        .unwrap();
    let path = p.service().sqlite_path(&p.manifest.data_dir);
    let mut watch = silo_store::sqlite::open(&path).await.unwrap();
    let watcher = async {
        until!(
            "statement 3 running",
            sqlx::query_scalar::<_, Option<i32>>("SELECT running FROM silo_migration_progress")
                .fetch_optional(&mut watch)
                .await
                .ok()
                .flatten()
                .flatten()
                == Some(3)
        );
        cancel.cancel();
    };
    let options = MigrateOptions::default();
    let run = migrate(target.as_mut(), &prepared, &options, |_| {});
    let (result, ()) = tokio::join!(run, watcher);
    match result {
        Err(MigrateError::Cancelled(c)) => assert_eq!(
            c.stopped,
            Stopped::Partial {
                script: "V2__five.sql".into(),
                undo: false,
                done: 2,
                total: 5
            }
        ),
        other => panic!("expected a cancellation, got {other:?}"),
    }
    let history = p.target().await.history().await.unwrap();
    let entries = entries(&migrations, &history);
    assert_eq!(entries[1].state, State::Partial);
    let partial = entries[1].partial.as_ref().unwrap();
    assert_eq!(
        (
            partial.progress.done,
            partial.progress.statements,
            partial.progress.running
        ),
        (2, 5, None)
    );
    assert_eq!(partial.summary(), "2 of 5 statements");

    match p.migrate(MigrateOptions::default()).await {
        Err(MigrateError::Partial(stop)) => {
            assert_eq!((stop.done, stop.total, stop.next_line), (2, 5, Some(4)));
            assert_eq!(
                stop.to_string(),
                "V2__five.sql stopped after statement 2 of 5; it runs outside a transaction, so statements 1 and 2 are applied; statement 3 (line 4) was cancelled, and nothing of it is applied"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A change to a statement that ran is refused on resume.
    p.write(
        "V2__five.sql",
        &five("INSERT INTO marks VALUES (3)").replace("VALUES (2)", "VALUES (20)"),
    );
    // A dry run refuses it the same way: it promises only what would run.
    for dry_run in [true, false] {
        let err = p
            .migrate(MigrateOptions {
                resume: true,
                dry_run,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("changed in its first 2 statement(s)"),
            "dry run {dry_run}: {err}"
        );
    }

    p.write("V2__five.sql", &five("INSERT INTO marks VALUES (3)"));
    let applied = p
        .migrate(MigrateOptions {
            resume: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(applied, ["V2__five.sql"]);
    let marks: Vec<i64> = sqlx::query_scalar("SELECT n FROM marks ORDER BY n")
        .fetch_all(&mut watch)
        .await
        .unwrap();
    assert_eq!(marks, [1, 2, 3, 4, 5]);
    assert!(p.states().await.iter().all(|(_, s)| *s == State::Applied));
    let leftover: i64 = sqlx::query_scalar("SELECT count(*) FROM silo_migration_progress")
        .fetch_one(&mut watch)
        .await
        .unwrap();
    assert_eq!(leftover, 0);
}

/// A file outside a transaction whose statement fails is partial: the
/// statements before it stay applied and recorded; `repair` removes the
/// record (the file is pending again), and so does a silo that knows
/// nothing of progress rows deleting the failed row (the foreign key takes
/// the progress row with it).
async fn failed_statement_is_partial_and_repair_resets_it(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write(
        "V1__nt.sql",
        "-- silo:no-transaction\nCREATE TABLE a (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\nCREATE TABLE b (id INTEGER);",
    );
    let err = p.migrate(MigrateOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::Failed(f) if !f.rolled_back),
        "{err}"
    );
    assert_eq!(p.tables().await, ["a"]);
    assert_eq!(
        p.states().await,
        [("V1__nt.sql".to_string(), State::Partial)]
    );
    let history = p.target().await.history().await.unwrap();
    let progress = history[0].progress.as_ref().expect("a progress row");
    assert_eq!((progress.done, progress.statements), (1, 3));
    assert!(
        matches!(&progress.stopped, Some(silo_migrate::history::StopReason::Failed(m)) if m.contains("no_such_table")),
        "{progress:?}"
    );
    let refused = p.migrate(MigrateOptions::default()).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("statement 2 (line 3) failed: "),
        "{refused}"
    );
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let mut target = p.target().await;
    let changes = silo_migrate::repair(target.as_mut(), &migrations)
        .await
        .unwrap();
    assert_eq!(
        changes,
        [
            "removed the record of V1__nt.sql, which had stopped after statement 1 of 3: it is pending again and runs from the start"
        ]
    );
    assert_eq!(
        p.states().await,
        [("V1__nt.sql".to_string(), State::Pending)]
    );
    assert_eq!(p.history_len().await, 0);

    // Again, and this time the failed row goes the way an older silo's
    // repair deletes it: the progress row goes with it.
    p.write(
        "V1__nt.sql",
        "-- silo:no-transaction\nCREATE TABLE IF NOT EXISTS a (id INTEGER);\nINSERT INTO no_such_table VALUES (1);",
    );
    p.migrate(MigrateOptions::default()).await.unwrap_err();
    target
        .query_text(
            "DELETE FROM silo_schema_history WHERE success = false",
            &[],
            "deleting",
        )
        .await
        .unwrap();
    let left = target
        .query_text(
            "SELECT CAST(count(*) AS TEXT) FROM silo_migration_progress",
            &[],
            "counting",
        )
        .await
        .unwrap();
    assert_eq!(left, [[Some("0".to_string())]]);
}

#[tokio::test]
async fn failed_statement_partial_sqlite() {
    failed_statement_is_partial_and_repair_resets_it("sqlite").await;
}

#[tokio::test]
async fn failed_statement_partial_postgres() {
    failed_statement_is_partial_and_repair_resets_it("postgres").await;
}

/// A U file outside a transaction that stops part way: the version shows
/// partial (its undo), `migrate` and `undo` refuse it and name `undo
/// --resume`, which goes on from the statement that failed once the file
/// is fixed, and the version is then undone.
async fn undo_resume(engine: &'static str) {
    use silo_migrate::{UndoOptions, undo_with};
    let p = Project::new(engine, "").await;
    p.write(
        "V1__t.sql",
        "CREATE TABLE t (id INTEGER);\nCREATE TABLE u (id INTEGER);",
    );
    p.write(
        "U1__t.sql",
        "-- silo:no-transaction\nDROP TABLE t;\nDROP TABLE no_such_table;\nDROP TABLE u;",
    );
    p.migrate(MigrateOptions::default()).await.unwrap();
    let prepared = |p: &Project| {
        let migrations = discover(&p.dir(), p.service().engine).unwrap();
        prepare(&migrations, p.service()).unwrap()
    };
    let mut target = p.target().await;
    undo(target.as_mut(), &prepared(&p), None, |_| {})
        .await
        .unwrap_err();
    assert_eq!(p.tables().await, ["u"]);
    assert_eq!(
        p.states().await,
        [("V1__t.sql".to_string(), State::Partial)]
    );

    for err in [
        p.migrate(MigrateOptions::default()).await.unwrap_err(),
        undo(target.as_mut(), &prepared(&p), None, |_| {})
            .await
            .unwrap_err(),
    ] {
        match &err {
            MigrateError::Partial(stop) => {
                assert_eq!((stop.kind.as_str(), stop.done), ("undo", 1));
                assert!(
                    stop.help().contains("silo undo <service> --resume"),
                    "{}",
                    stop.help()
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(p.tables().await, ["u"], "nothing ran again");

    p.write(
        "U1__t.sql",
        "-- silo:no-transaction\nDROP TABLE t;\nDROP TABLE IF EXISTS no_such_table;\nDROP TABLE u;",
    );
    // Two resumes at once: only the one that claims the stopped file (by
    // the run its progress row names) may go on.
    let history = target.history().await.unwrap();
    let files = discover(&p.dir(), p.service().engine).unwrap();
    let entries = silo_migrate::entries(&files, &history);
    let partial = entries.iter().find_map(|e| e.partial.clone()).unwrap();
    target.begin().await.unwrap();
    // The stopped run was another process, long gone.
    let stopped_by = "pid 4294967295 on a gone host".to_string();
    assert_ne!(partial.progress.started_by, stopped_by);
    target
        .execute(&format!(
            "UPDATE silo_migration_progress SET started_by = '{stopped_by}'"
        ))
        .await
        .unwrap();
    assert!(
        target
            .claim_progress(partial.installed_rank, &stopped_by)
            .await
            .unwrap()
    );
    assert!(
        !target
            .claim_progress(partial.installed_rank, &stopped_by)
            .await
            .unwrap(),
        "a second resume finds it claimed"
    );
    target.rollback().await.unwrap();

    let options = UndoOptions {
        to: None,
        resume: true,
        expect: None,
    };
    let steps = undo_with(target.as_mut(), &prepared(&p), &options, |_| {})
        .await
        .unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].resumed_from, Some(2));
    assert!(p.tables().await.is_empty());
    assert_eq!(
        p.states().await,
        [("V1__t.sql".to_string(), State::Pending)]
    );

    // With nothing stopped, `--resume` undoes nothing more.
    p.migrate(MigrateOptions::default()).await.unwrap();
    let err = undo_with(target.as_mut(), &prepared(&p), &options, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing to resume"), "{err}");
    assert_eq!(
        p.states().await,
        [("V1__t.sql".to_string(), State::Applied)]
    );
}

#[tokio::test]
async fn undo_resume_sqlite() {
    undo_resume("sqlite").await;
}

#[tokio::test]
async fn undo_resume_postgres() {
    undo_resume("postgres").await;
}

/// An undo the user agreed to runs exactly the U files shown: when the
/// store changed in between (another run migrated), nothing is undone.
async fn undo_runs_only_the_plan_shown(engine: &'static str) {
    use silo_migrate::{UndoOptions, undo_with};
    let p = Project::new(engine, "").await;
    p.write("V1__a.sql", "CREATE TABLE a (id INTEGER);");
    p.write("U1__a.sql", "DROP TABLE a;");
    p.migrate(MigrateOptions::default()).await.unwrap();
    // Shown: U1. Meanwhile V2 is applied.
    p.write("V2__b.sql", "CREATE TABLE b (id INTEGER);");
    p.write("U2__b.sql", "DROP TABLE b;");
    p.migrate(MigrateOptions::default()).await.unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = p.target().await;
    let options = UndoOptions {
        to: None,
        resume: false,
        expect: Some(vec!["U1__a.sql".to_string()]),
    };
    let err = undo_with(target.as_mut(), &prepared, &options, |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("changed since the plan was shown"),
        "{err}"
    );
    assert_eq!(p.tables().await, ["a", "b"], "nothing undone");
    let options = UndoOptions {
        expect: Some(vec!["U2__b.sql".to_string()]),
        ..options
    };
    undo_with(target.as_mut(), &prepared, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(p.tables().await, ["a"]);
}

#[tokio::test]
async fn undo_runs_only_the_plan_shown_sqlite() {
    undo_runs_only_the_plan_shown("sqlite").await;
}

#[tokio::test]
async fn undo_runs_only_the_plan_shown_postgres() {
    undo_runs_only_the_plan_shown("postgres").await;
}

/// After an out-of-order migration, undo takes back the most recently
/// applied version first (it may depend on the higher one), and `--to`
/// refuses to keep a version applied after one it would undo.
async fn undo_follows_the_order_of_application(engine: &'static str) {
    let p = Project::new(engine, "").await;
    p.write("V1__a.sql", "CREATE TABLE a (id INTEGER);");
    p.write("U1__a.sql", "DROP TABLE a;");
    p.write("V5__e.sql", "CREATE TABLE e (id INTEGER);");
    p.write("U5__e.sql", "DROP TABLE e;");
    p.migrate(MigrateOptions::default()).await.unwrap();
    p.write("V3__ve.sql", "CREATE VIEW ve AS SELECT id FROM e;");
    p.write("U3__ve.sql", "DROP VIEW ve;");
    p.migrate(MigrateOptions {
        out_of_order: true,
        ..MigrateOptions::default()
    })
    .await
    .unwrap();
    let migrations = discover(&p.dir(), p.service().engine).unwrap();
    let prepared = prepare(&migrations, p.service()).unwrap();
    let mut target = p.target().await;
    let to = silo_migrate::Version::parse("4").unwrap();
    let err = undo(target.as_mut(), &prepared, Some(&to), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("applied after"), "{err}");
    assert_eq!(p.tables().await, ["a", "e"], "nothing undone");
    let steps = undo(target.as_mut(), &prepared, None, |_| {})
        .await
        .unwrap();
    assert_eq!(steps[0].script, "U3__ve.sql", "the most recent first");
    let steps = undo(target.as_mut(), &prepared, None, |_| {})
        .await
        .unwrap();
    assert_eq!(steps[0].script, "U5__e.sql");
    assert_eq!(p.tables().await, ["a"]);
}

#[tokio::test]
async fn undo_follows_the_order_of_application_sqlite() {
    undo_follows_the_order_of_application("sqlite").await;
}

#[tokio::test]
async fn undo_follows_the_order_of_application_postgres() {
    undo_follows_the_order_of_application("postgres").await;
}
