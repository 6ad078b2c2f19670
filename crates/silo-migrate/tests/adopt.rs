//! `silo migrations adopt` on real stores: each tool's history table made
//! with the tool's own DDL (sqlx's by sqlx's own migrator), checksums
//! computed apart from the code under test, adopted as the service, then
//! `migrate` runs only what is new.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use silo_manifest::{Manifest, Overrides, Service};
use silo_migrate::adopt::{self, Adoption, Outcome, Tool};
use silo_migrate::service as ops;
use silo_migrate::{
    LockPolicy, MigrateError, MigrateOptions, State, Target, connect, discover, entries, migrate,
    prepare,
};
use silo_store::{ProvisionOptions, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};

/// A provisioned single-service project with a migrations folder.
struct Project {
    _dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    async fn new(engine: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let text = format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n\
             [services.auth]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name("auth"),
            prefix.name("auth_svc")
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
        }
    }

    fn service(&self) -> &Service {
        &self.manifest.services[0]
    }

    fn engine(&self) -> silo_manifest::Engine {
        self.service().engine
    }

    fn dir(&self) -> PathBuf {
        self.manifest.migrations_dir(self.service())
    }

    fn write(&self, name: &str, sql: &str) {
        std::fs::write(self.dir().join(name), sql).unwrap();
    }

    /// A connection to the store as the service.
    async fn target(&self) -> Box<dyn Target> {
        connect::open(&self.stores, self.service(), policy())
            .await
            .unwrap()
    }

    /// Runs SQL as the service, as the other tool would have.
    async fn run(&self, sql: &str) {
        if let Err(e) = self.target().await.execute(sql).await {
            panic!("{sql}: {}", e.message);
        }
    }

    async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.target()
            .await
            .query_text(sql, &[], "test query")
            .await
            .unwrap()
    }

    async fn adopt(&self, tool: Tool, dry_run: bool) -> Result<Adoption, MigrateError> {
        self.adopt_table(tool, None, dry_run).await
    }

    async fn adopt_table(
        &self,
        tool: Tool,
        table: Option<&str>,
        dry_run: bool,
    ) -> Result<Adoption, MigrateError> {
        let options = adopt::Options {
            tool,
            table: table.map(str::to_string),
            dry_run,
        };
        ops::adopt(
            &self.manifest,
            &self.stores,
            self.service(),
            &options,
            policy(),
        )
        .await
    }

    async fn migrate(&self) -> Result<Vec<String>, MigrateError> {
        let files = discover(&self.dir(), self.engine())?;
        let prepared = prepare(&files, self.service())?;
        let mut target = self.target().await;
        let steps = migrate(
            target.as_mut(),
            &prepared,
            &MigrateOptions::default(),
            |_| {},
        )
        .await?;
        Ok(steps.into_iter().map(|s| s.script).collect())
    }

    /// `(script, state, installed_on)` of every migration.
    async fn states(&self) -> Vec<(String, State, Option<String>)> {
        let files = discover(&self.dir(), self.engine()).unwrap();
        let history = self.target().await.history().await.unwrap();
        entries(&files, &history)
            .into_iter()
            .map(|e| (e.script, e.state, e.installed_on))
            .collect()
    }

    /// `(script, installed_by, installed_on, success)` of silo's history.
    async fn history(&self) -> Vec<(String, String, String, bool)> {
        self.target()
            .await
            .history()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.script, r.installed_by, r.installed_on, r.success))
            .collect()
    }
}

fn policy() -> LockPolicy {
    LockPolicy {
        timeout: Duration::from_secs(60),
        on_wait: Arc::new(|_| {}),
        cancel: silo_migrate::Cancel::new(),
    }
}

fn outcomes(a: &Adoption) -> Vec<Outcome> {
    a.rows.iter().map(|r| r.outcome).collect()
}

fn capsule_auth(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/capsule/infrastructure/migrations/auth-service")
        .join(file);
    std::fs::read_to_string(path).unwrap()
}

/// CRC-32 (IEEE, reflected, as zlib and java.util.zip compute it) bit by
/// bit: written apart from the code under test, which uses the `crc` crate.
fn crc32_bitwise(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Flyway's checksum as its documentation and ChecksumCalculator define it:
/// the CRC-32 of the lines without their line endings, as a signed int.
fn flyway_checksum(text: &str) -> i32 {
    let joined: Vec<u8> = text
        .trim_start_matches('\u{feff}')
        .bytes()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    crc32_bitwise(&joined) as i32
}

/// Flyway's history table, with Flyway's own DDL for the engine
/// (createMetaDataTable.sql).
fn flyway_ddl(engine: silo_manifest::Engine, table: &str) -> String {
    match engine {
        silo_manifest::Engine::Postgres => format!(
            "CREATE TABLE \"public\".\"{table}\" (
                \"installed_rank\" INT NOT NULL,
                \"version\" VARCHAR(50),
                \"description\" VARCHAR(200) NOT NULL,
                \"type\" VARCHAR(20) NOT NULL,
                \"script\" VARCHAR(1000) NOT NULL,
                \"checksum\" INTEGER,
                \"installed_by\" VARCHAR(100) NOT NULL,
                \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
                \"execution_time\" INTEGER NOT NULL,
                \"success\" BOOLEAN NOT NULL
            );
            ALTER TABLE \"public\".\"{table}\" ADD CONSTRAINT \"{table}_pk\" PRIMARY KEY (\"installed_rank\");
            CREATE INDEX \"{table}_s_idx\" ON \"public\".\"{table}\" (\"success\");"
        ),
        silo_manifest::Engine::Sqlite => format!(
            "CREATE TABLE \"main\".\"{table}\" (
                \"installed_rank\" INT NOT NULL PRIMARY KEY,
                \"version\" VARCHAR(50),
                \"description\" VARCHAR(200) NOT NULL,
                \"type\" VARCHAR(20) NOT NULL,
                \"script\" VARCHAR(1000) NOT NULL,
                \"checksum\" INT,
                \"installed_by\" VARCHAR(100) NOT NULL,
                \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
                \"execution_time\" INT NOT NULL,
                \"success\" BOOLEAN NOT NULL
            );
            CREATE INDEX \"main\".\"{table}_s_idx\" ON \"{table}\" (\"success\");"
        ),
    }
}

/// One Flyway history row, as Flyway inserts it.
#[allow(clippy::too_many_arguments)]
fn flyway_row(
    table: &str,
    rank: i32,
    version: &str,
    script: &str,
    checksum: Option<i32>,
    by: &str,
    on: &str,
    success: bool,
) -> String {
    format!(
        "INSERT INTO {table} (installed_rank, version, description, type, script, checksum, \
         installed_by, installed_on, execution_time, success) VALUES \
         ({rank}, '{version}', '{}', 'SQL', '{script}', {}, '{by}', '{on}', 42, {});",
        script
            .split_once("__")
            .map(|(_, d)| d.trim_end_matches(".sql").replace('_', " "))
            .unwrap_or_default(),
        checksum.map_or("NULL".to_string(), |c| c.to_string()),
        if success { "true" } else { "false" }
    )
}

/// Seed 004's Capsule, migrated by Flyway 9 with V001 and V002: adopt
/// records both with Flyway's times and user, and then `migrate` applies
/// only V003. Before the adoption `migrate` refuses and touches nothing.
#[tokio::test]
async fn flyway_capsule_is_adopted_then_only_new_files_run() {
    let p = Project::new("postgres").await;
    let v1 = capsule_auth("V001__create_users_table.sql");
    let v2 = capsule_auth("V002__add_user_preferences.sql");
    p.write("V001__create_users_table.sql", &v1);
    p.write("V002__add_user_preferences.sql", &v2);

    // The checksums Flyway stored for seed 004's two files. Derived outside
    // Rust from the example files:
    //   python3 -c 'import zlib; b=open(F,"rb").read();
    //     v=zlib.crc32(b.replace(b"\r",b"").replace(b"\n",b"")); print(v-2**32 if v>=2**31 else v)'
    // and the same from Java, reading the file with BufferedReader.readLine
    // into java.util.zip.CRC32 as Flyway's ChecksumCalculator does.
    let (c1, c2) = (-1_356_567_979, 357_995_333);
    assert_eq!(
        (flyway_checksum(&v1), flyway_checksum(&v2)),
        (c1, c2),
        "seed 004's files are as Flyway applied them, byte for byte"
    );

    // What Flyway did: run the files as the service's role, record them.
    p.run(&v1).await;
    p.run(&v2).await;
    let table = "flyway_schema_history";
    p.run(&flyway_ddl(p.engine(), table)).await;
    p.run(&flyway_row(
        table,
        1,
        "001",
        "V001__create_users_table.sql",
        Some(c1),
        "flyway_deployer",
        "2024-03-01 09:15:27.123456",
        true,
    ))
    .await;
    p.run(&flyway_row(
        table,
        2,
        "002",
        "V002__add_user_preferences.sql",
        Some(c2),
        "flyway_deployer",
        "2024-03-08 17:02:03.5",
        true,
    ))
    .await;

    // Before adopting: migrate refuses, info says why.
    let err = p.migrate().await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::ForeignHistory {
                tool: Tool::Flyway,
                rows: Some(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("silo migrations adopt"));
    assert!(p.history().await.is_empty(), "nothing was recorded");
    let info = ops::info(&p.manifest, &p.stores, p.service(), policy())
        .await
        .unwrap();
    assert_eq!(info.foreign.len(), 1);
    assert_eq!(info.foreign[0].table, table);

    // A dry run reports and writes nothing.
    let dry = p.adopt(Tool::Flyway, true).await.unwrap();
    assert_eq!(outcomes(&dry), [Outcome::Matched, Outcome::Matched]);
    assert_eq!(dry.recorded(), 2);
    assert!(p.history().await.is_empty(), "--dry-run changes nothing");

    let done = p.adopt(Tool::Flyway, false).await.unwrap();
    assert_eq!(outcomes(&done), [Outcome::Matched, Outcome::Matched]);
    assert!(done.rows[0].detail.contains(&c1.to_string()));
    assert_eq!(
        p.history().await,
        [
            (
                "V001__create_users_table.sql".to_string(),
                "flyway_deployer".to_string(),
                "2024-03-01T09:15:27.123Z".to_string(),
                true
            ),
            (
                "V002__add_user_preferences.sql".to_string(),
                "flyway_deployer".to_string(),
                "2024-03-08T17:02:03.500Z".to_string(),
                true
            ),
        ]
    );

    // Twice: nothing more.
    let again = p.adopt(Tool::Flyway, false).await.unwrap();
    assert_eq!(again.recorded(), 0);
    assert_eq!(
        outcomes(&again),
        [Outcome::AlreadyRecorded, Outcome::AlreadyRecorded]
    );
    assert_eq!(p.history().await.len(), 2);

    // A new file: only it runs.
    p.write(
        "V003__add_user_profiles.sql",
        &capsule_auth("V003__add_user_profiles.sql"),
    );
    assert_eq!(p.migrate().await.unwrap(), ["V003__add_user_profiles.sql"]);
    let states: Vec<(String, State, Option<String>)> = p
        .states()
        .await
        .into_iter()
        .map(|(s, st, on)| (s, st, on.map(|o| o[..10].to_string())))
        .collect();
    assert_eq!(
        states[..2],
        [
            (
                "V001__create_users_table.sql".to_string(),
                State::Applied,
                Some("2024-03-01".to_string())
            ),
            (
                "V002__add_user_preferences.sql".to_string(),
                State::Applied,
                Some("2024-03-08".to_string())
            ),
        ]
    );
    assert_eq!(states[2].1, State::Applied);
    // Flyway's table is left as it was.
    assert_eq!(
        p.query("SELECT count(*)::text FROM flyway_schema_history")
            .await,
        [[Some("2".to_string())]]
    );
    // The development admin row of V001 ran once.
    assert_eq!(
        p.query("SELECT count(*)::text FROM users").await,
        [[Some("1".to_string())]]
    );
}

/// A file changed after Flyway applied it, a failed row and a row whose
/// file is gone: each is reported, recorded so silo sees it (the failed one
/// as failed, never as applied), and `migrate` refuses.
async fn flyway_problems(engine: &str) {
    let p = Project::new(engine).await;
    let v1 = "CREATE TABLE a (id INTEGER);\n";
    let v2_applied = "CREATE TABLE b (id INTEGER);\n";
    let v2_now = "CREATE TABLE b (id INTEGER, note TEXT);\n";
    let v3 = "CREATE TABLE c (id INTEGER);\n";
    p.write("V1__a.sql", v1);
    p.write("V2__b.sql", v2_now);
    p.write("V3__c.sql", v3);
    p.write("V5__e.sql", "CREATE TABLE e (id INTEGER);\n");
    p.run(v1).await;
    p.run(v2_applied).await;
    let table = "flyway_schema_history";
    p.run(&flyway_ddl(p.engine(), table)).await;
    let on = "2024-01-02 03:04:05.678";
    for row in [
        flyway_row(
            table,
            1,
            "1",
            "V1__a.sql",
            Some(flyway_checksum(v1)),
            "ci",
            on,
            true,
        ),
        flyway_row(
            table,
            2,
            "2",
            "V2__b.sql",
            Some(flyway_checksum(v2_applied)),
            "ci",
            on,
            true,
        ),
        flyway_row(
            table,
            3,
            "3",
            "V3__c.sql",
            Some(flyway_checksum(v3)),
            "ci",
            on,
            false,
        ),
        flyway_row(table, 4, "4", "V4__d.sql", Some(77), "ci", on, true),
    ] {
        p.run(&row).await;
    }
    assert!(matches!(
        p.migrate().await.unwrap_err(),
        MigrateError::ForeignHistory { .. }
    ));

    let a = p.adopt(Tool::Flyway, false).await.unwrap();
    assert_eq!(
        outcomes(&a),
        [
            Outcome::Matched,
            Outcome::ChecksumMismatch,
            Outcome::Failed,
            Outcome::MissingFile
        ]
    );
    assert_eq!(a.problems().count(), 3);
    assert!(
        a.rows[1]
            .detail
            .contains(&flyway_checksum(v2_applied).to_string()),
        "{}",
        a.rows[1].detail
    );
    let history = p.history().await;
    assert_eq!(history.len(), 4);
    assert!(!history[2].3, "the failed row is recorded as failed");
    let states: Vec<(String, State)> = p
        .states()
        .await
        .into_iter()
        .map(|(s, st, _)| (s, st))
        .collect();
    assert_eq!(
        states,
        [
            ("V1__a.sql".to_string(), State::Applied),
            ("V2__b.sql".to_string(), State::ChecksumMismatch),
            ("V3__c.sql".to_string(), State::Failed),
            ("V5__e.sql".to_string(), State::Pending),
            ("V4__d.sql".to_string(), State::Missing),
        ]
    );
    // silo's own rules now hold: nothing runs until they are dealt with.
    assert!(matches!(
        p.migrate().await.unwrap_err(),
        MigrateError::Validation(_)
    ));
    // And a second adoption has nothing to add.
    let again = p.adopt(Tool::Flyway, false).await.unwrap();
    assert_eq!(again.recorded(), 0);
    assert_eq!(again.problems().count(), 0);
}

#[tokio::test]
async fn flyway_problems_postgres() {
    flyway_problems("postgres").await;
}

#[tokio::test]
async fn flyway_problems_sqlite() {
    flyway_problems("sqlite").await;
}

/// Flyway's `flyway.table` names another table: `--table` reads it; without
/// it, adopt says there is nothing to adopt.
async fn flyway_custom_table(engine: &str) {
    let p = Project::new(engine).await;
    let v1 = "CREATE TABLE a (id INTEGER);\n";
    p.write("V1__a.sql", v1);
    p.run(v1).await;
    p.run(&flyway_ddl(p.engine(), "schema_version")).await;
    p.run(&flyway_row(
        "schema_version",
        1,
        "1",
        "V1__a.sql",
        Some(flyway_checksum(v1)),
        "ci",
        "2024-01-02 03:04:05",
        true,
    ))
    .await;
    let err = p.adopt(Tool::Flyway, false).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::NoForeignHistory { tool: Tool::Flyway, ref table } if table == "flyway_schema_history"),
        "{err}"
    );
    // A table only a custom name finds does not block migrate's check,
    // which knows the default names; adopting it is what the user asks.
    let a = p
        .adopt_table(Tool::Flyway, Some("schema_version"), false)
        .await
        .unwrap();
    assert_eq!(outcomes(&a), [Outcome::Matched]);
    assert!(matches!(
        p.adopt_table(Tool::Flyway, Some("x; DROP TABLE a"), false)
            .await
            .unwrap_err(),
        MigrateError::Refused(_)
    ));
}

#[tokio::test]
async fn flyway_custom_table_postgres() {
    flyway_custom_table("postgres").await;
}

#[tokio::test]
async fn flyway_custom_table_sqlite() {
    flyway_custom_table("sqlite").await;
}

/// sqlx's own migrator applies a folder as the service; `silo migrations
/// import` converts it; adopt checks sqlx's SHA-384 and records sqlx's
/// times. A changed file and a dirty (failed) row are reported.
async fn sqlx_history(engine: &str) {
    let p = Project::new(engine).await;
    let source = tempfile::tempdir().unwrap();
    let users = "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT);\n";
    let orders = "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT);\n";
    std::fs::write(source.path().join("20240101000000_users.sql"), users).unwrap();
    std::fs::write(source.path().join("20240102000000_orders.sql"), orders).unwrap();
    let migrator = sqlx::migrate::Migrator::new(source.path()).await.unwrap();
    let creds = p
        .stores
        .engine(p.service())
        .unwrap()
        .credentials(p.service())
        .unwrap();
    match p.engine() {
        silo_manifest::Engine::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&creds.url())
                .await
                .unwrap();
            migrator.run(&mut conn).await.unwrap();
        }
        silo_manifest::Engine::Sqlite => {
            let mut conn = silo_store::sqlite::open(Path::new(&creds.database))
                .await
                .unwrap();
            migrator.run(&mut conn).await.unwrap();
        }
    }
    let plan = silo_migrate::import::plan(silo_migrate::import::Tool::Sqlx, source.path()).unwrap();
    silo_migrate::import::write(&plan, &p.dir()).unwrap();
    let sqlx_times: Vec<String> = p
        .query(match engine {
            "postgres" => "SELECT to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM _sqlx_migrations ORDER BY version",
            _ => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', installed_on) FROM _sqlx_migrations ORDER BY version",
        })
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();

    // A file edited since sqlx applied it.
    let v2 = p.dir().join("V20240102000000__orders.sql");
    std::fs::write(&v2, orders.replace("BIGINT)", "BIGINT NOT NULL)")).unwrap();
    let dry = p.adopt(Tool::Sqlx, true).await.unwrap();
    assert_eq!(
        outcomes(&dry),
        [Outcome::Matched, Outcome::ChecksumMismatch]
    );
    std::fs::write(&v2, orders).unwrap();
    // A dirty row, as an interrupted sqlx leaves it.
    p.run("UPDATE _sqlx_migrations SET success = false WHERE version = 20240102000000")
        .await;
    let dry = p.adopt(Tool::Sqlx, true).await.unwrap();
    assert_eq!(outcomes(&dry), [Outcome::Matched, Outcome::Failed]);
    p.run("UPDATE _sqlx_migrations SET success = true WHERE version = 20240102000000")
        .await;
    assert!(p.history().await.is_empty(), "dry runs change nothing");

    let a = p.adopt(Tool::Sqlx, false).await.unwrap();
    assert_eq!(outcomes(&a), [Outcome::Matched, Outcome::Matched]);
    assert!(a.rows[0].detail.contains("SHA-384"));
    let history = p.history().await;
    let times: Vec<&str> = history.iter().map(|h| h.2.as_str()).collect();
    assert_eq!(times, sqlx_times, "sqlx's installed_on is kept");
    assert!(history.iter().all(|h| h.1 == "sqlx"));
    assert_eq!(p.adopt(Tool::Sqlx, false).await.unwrap().recorded(), 0);

    p.write(
        "V20240103000000__items.sql",
        "CREATE TABLE items (id BIGINT PRIMARY KEY);\n",
    );
    assert_eq!(p.migrate().await.unwrap(), ["V20240103000000__items.sql"]);
}

#[tokio::test]
async fn sqlx_history_postgres() {
    sqlx_history("postgres").await;
}

#[tokio::test]
async fn sqlx_history_sqlite() {
    sqlx_history("sqlite").await;
}

/// diesel keeps versions and times only: rows match the files `silo
/// migrations import` made from diesel's folders, and a version without a
/// file is reported.
async fn diesel_history(engine: &str) {
    let p = Project::new(engine).await;
    let source = tempfile::tempdir().unwrap();
    let users = "CREATE TABLE users (id BIGINT PRIMARY KEY);\n";
    let posts = "CREATE TABLE posts (id BIGINT PRIMARY KEY, user_id BIGINT);\n";
    for (folder, up) in [
        ("2019-02-26-002946_create_users", users),
        ("2020-01-01-000000_add_posts", posts),
    ] {
        std::fs::create_dir_all(source.path().join(folder)).unwrap();
        std::fs::write(source.path().join(folder).join("up.sql"), up).unwrap();
        std::fs::write(source.path().join(folder).join("down.sql"), "SELECT 1;\n").unwrap();
        p.run(up).await;
    }
    let plan =
        silo_migrate::import::plan(silo_migrate::import::Tool::Diesel, source.path()).unwrap();
    silo_migrate::import::write(&plan, &p.dir()).unwrap();
    // diesel_migrations' setup_migration_table.sql, and the versions it
    // records: the folder name up to `_`, dashes removed.
    p.run(
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
               version VARCHAR(50) PRIMARY KEY NOT NULL,
               run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        INSERT INTO __diesel_schema_migrations (version, run_on) VALUES
            ('20190226002946', '2019-02-26 00:31:02'),
            ('20200101000000', '2020-01-01 12:00:00'),
            ('20200615000000', '2020-06-15 08:00:00');",
    )
    .await;
    let a = p.adopt(Tool::Diesel, false).await.unwrap();
    assert_eq!(
        outcomes(&a),
        [Outcome::Matched, Outcome::Matched, Outcome::MissingFile]
    );
    assert!(a.rows[0].detail.contains("no checksum"));
    let history = p.history().await;
    assert_eq!(
        history
            .iter()
            .map(|h| (h.0.as_str(), h.2.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                "V2019_02_26_002946__create_users.sql",
                "2019-02-26T00:31:02.000Z"
            ),
            (
                "V2020_01_01_000000__add_posts.sql",
                "2020-01-01T12:00:00.000Z"
            ),
            ("V20200615000000__diesel.sql", "2020-06-15T08:00:00.000Z"),
        ]
    );
    assert_eq!(p.adopt(Tool::Diesel, true).await.unwrap().recorded(), 0);
}

#[tokio::test]
async fn diesel_history_postgres() {
    diesel_history("postgres").await;
}

#[tokio::test]
async fn diesel_history_sqlite() {
    diesel_history("sqlite").await;
}

/// refinery's SipHash checksums of name, version and SQL, and its RFC 3339
/// times.
async fn refinery_history(engine: &str) {
    let p = Project::new(engine).await;
    let v1 = "CREATE TABLE persons (id integer PRIMARY KEY, name text);\n";
    let v2 = "ALTER TABLE persons ADD COLUMN city text;\n";
    p.write("V1__create_persons.sql", v1);
    p.write("V2__add_city.sql", v2);
    p.run(v1).await;
    p.run(v2).await;
    // refinery's ASSERT_MIGRATIONS_TABLE_QUERY and INSERT. The checksums
    // were derived outside Rust: Python 3.11 hashes bytes with SipHash-1-3
    // and zero keys under PYTHONHASHSEED=0, over what refinery's Hash calls
    // feed the hasher (str bytes + 0xff, the i32 version little-endian):
    //   PYTHONHASHSEED=0 python3 -c 'print(hash(b"create_persons\xff" +
    //     (1).to_bytes(4, "little") + SQL + b"\xff") % 2**64)'
    // V2's row is the checksum of an earlier text of the file
    // (`city varchar(80)`): the file changed after refinery applied it.
    p.run(
        "CREATE TABLE IF NOT EXISTS refinery_schema_history(
             version INT4 PRIMARY KEY,
             name VARCHAR(255),
             applied_on VARCHAR(255),
             checksum VARCHAR(255));
         INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES
             (1, 'create_persons', '2023-11-05T08:09:10.123456789Z', '14945075368739473863');
         INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES
             (2, 'add_city', '2023-11-06T10:00:00Z', '2720583123174275810');",
    )
    .await;
    let a = p.adopt(Tool::Refinery, true).await.unwrap();
    assert_eq!(outcomes(&a), [Outcome::Matched, Outcome::ChecksumMismatch]);
    // The file as refinery applied it matches.
    p.write(
        "V2__add_city.sql",
        "ALTER TABLE persons ADD COLUMN city varchar(80);\n",
    );
    let a = p.adopt(Tool::Refinery, false).await.unwrap();
    assert_eq!(outcomes(&a), [Outcome::Matched, Outcome::Matched]);
    assert_eq!(
        p.history()
            .await
            .iter()
            .map(|h| h.2.as_str())
            .collect::<Vec<_>>(),
        ["2023-11-05T08:09:10.123Z", "2023-11-06T10:00:00.000Z"]
    );
}

#[tokio::test]
async fn refinery_history_postgres() {
    refinery_history("postgres").await;
}

#[tokio::test]
async fn refinery_history_sqlite() {
    refinery_history("sqlite").await;
}

/// The refinery checksum of V2's current text is the one refinery would
/// store now: derived as above, it is 8283110882048349616.
#[test]
fn refinery_checksum_of_the_current_file() {
    assert!(
        adopt::checksum::refinery("add_city", 2, "ALTER TABLE persons ADD COLUMN city text;\n")
            .contains(&8_283_110_882_048_349_616)
    );
}
