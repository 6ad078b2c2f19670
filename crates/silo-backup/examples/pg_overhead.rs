//! Measures silo's PostgreSQL dump and restore against plain `pg_dump -Fc`
//! and `pg_restore` of the same database, side by side in one run:
//! `cargo run --release -p silo-backup --example pg_overhead -- ROWS`.

use std::time::Instant;

use silo_manifest::{Manifest, Overrides};
use silo_store::{ProvisionOptions, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_000_000);
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let text = format!(
        "[project]\nname = \"b\"\n[defaults]\nengine = \"postgres\"\n\
         [services.big]\ndatabase = \"{}\"\nrole = \"{}\"\n",
        prefix.name("big"),
        prefix.name("big_svc")
    );
    let m =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: m.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 2,
    });
    let svc = &m.services[0];
    let engine = stores.engine(svc).unwrap();
    engine
        .provision(svc, ProvisionOptions::default())
        .await
        .unwrap();
    let creds = stores.credentials(svc).unwrap();
    let mut c = PgConnection::connect(&creds.url()).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE big (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(),
                           n int NOT NULL, body text NOT NULL);
         INSERT INTO big (n, body) SELECT i, md5(i::text) || md5((i * 7)::text) || repeat('x', 20)
           FROM generate_series(1, {rows}) i;
         CREATE INDEX big_n ON big (n);
         CREATE TABLE small (id int PRIMARY KEY, big_id bigint REFERENCES big);
         INSERT INTO small SELECT i, i FROM generate_series(1, 1000) i;"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
    println!("database: {} MB, {rows} rows", size / 1_000_000);
    let bindir = String::from_utf8(
        std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bindir = std::path::PathBuf::from(bindir.trim());
    let password = creds.password.as_ref().unwrap().expose().to_string();

    for round in 1..=2 {
        let plain = dir.path().join("plain.pgc");
        let t = Instant::now();
        let ok = std::process::Command::new(bindir.join("pg_dump"))
            .args([
                "-Fc",
                "-h",
                "127.0.0.1",
                "-U",
                creds.user.as_deref().unwrap(),
                "-f",
            ])
            .arg(&plain)
            .arg(&creds.database)
            .env("PGPASSWORD", &password)
            .status()
            .unwrap();
        assert!(ok.success());
        let plain_dump = t.elapsed().as_secs_f64();

        let staging = tempfile::tempdir().unwrap();
        let t = Instant::now();
        silo_backup::postgres::dump(&creds, staging.path())
            .await
            .unwrap();
        let silo_dump = t.elapsed().as_secs_f64();

        let scratch = engine.scratch(svc).await.unwrap();
        let t = Instant::now();
        let ok = std::process::Command::new(bindir.join("pg_restore"))
            .args([
                "--no-owner",
                "--no-acl",
                "-h",
                "127.0.0.1",
                "-U",
                creds.user.as_deref().unwrap(),
                "-d",
            ])
            .arg(&scratch.database)
            .arg(&plain)
            .env("PGPASSWORD", &password)
            .status()
            .unwrap();
        assert!(ok.success());
        let plain_restore = t.elapsed().as_secs_f64();
        engine.drop_scratch(&scratch).await.unwrap();

        let scratch = engine.scratch(svc).await.unwrap();
        let t = Instant::now();
        let meta = dummy_meta();
        silo_backup::postgres::restore(staging.path(), &meta, &scratch)
            .await
            .unwrap();
        let silo_restore = t.elapsed().as_secs_f64();
        let t = Instant::now();
        silo_backup::postgres::row_counts(&scratch).await.unwrap();
        silo_backup::postgres::schema(&scratch).await.unwrap();
        let check = t.elapsed().as_secs_f64();
        engine.drop_scratch(&scratch).await.unwrap();

        println!(
            "round {round}: dump plain {plain_dump:.2}s silo {silo_dump:.2}s (x{:.3}); \
             restore plain {plain_restore:.2}s silo {silo_restore:.2}s (x{:.3}), check after restore {check:.2}s",
            silo_dump / plain_dump,
            silo_restore / plain_restore
        );
    }
}

fn dummy_meta() -> silo_backup::BackupMeta {
    let now = time::OffsetDateTime::now_utc();
    silo_backup::BackupMeta {
        format: silo_backup::meta::FORMAT,
        id: silo_backup::BackupId::new(now),
        project: "b".into(),
        service: "big".into(),
        engine: silo_manifest::Engine::Postgres,
        server_version: String::new(),
        migration_version: None,
        started_at: now,
        finished_at: now,
        size_bytes: 0,
        encrypted: false,
        reason: "bench".into(),
        files: Vec::new(),
        tables: Default::default(),
    }
}
