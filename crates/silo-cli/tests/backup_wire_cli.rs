//! `silo backup` and `silo restore` on PostgreSQL through the real binary:
//! the round trip into a new store with new credentials, `--replace` with
//! and without `--terminate`, a backup of another service, a damaged
//! backup, encrypted backups, and a destination on S3 set in the manifest.
//!
//! Tests that need `silo audit` to come out clean, or passwords to be
//! checked, run on a throwaway server of their own (the shared test server
//! trusts local connections, which the audit rightly reports).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use silo_testkit::{Prefix, S3Server, TempServer, admin_url};
use sqlx::{Connection, PgConnection};

mod common;
use common::json;

/// The migration every test's `orders` store starts from: a table with a
/// primary key, a unique and a check constraint, an index, a foreign key,
/// comments and a sequence of its own.
const SCHEMA: &str = "
CREATE TABLE items (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    qty integer NOT NULL CHECK (qty > 0)
);
CREATE INDEX items_qty ON items (qty);
CREATE TABLE lines (
    id serial PRIMARY KEY,
    item_id bigint NOT NULL REFERENCES items (id)
);
COMMENT ON TABLE items IS 'things we sell';
COMMENT ON COLUMN items.qty IS 'in stock';
CREATE SEQUENCE invoice_no START 100;
";

const DATA: &str = "
INSERT INTO items (name, qty) VALUES ('bolt', 5), ('nut', 7), ('gear', 1);
INSERT INTO lines (item_id) VALUES (1), (3);
SELECT setval('invoice_no', 4242);
";

/// `silo` in `dir` against the server at `admin`, with none of the
/// caller's backup or AWS settings.
fn silo(admin: &str, dir: &Path) -> Command {
    let mut c = common::silo(dir);
    c.env("SILO_PG_ADMIN_URL", admin)
        .env_remove("SILO_BACKUP_IDENTITY_FILE");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        c.env_remove(key);
    }
    c
}

/// A project of PostgreSQL services (`orders` and the `others`), named with
/// `prefix`, `extra` appended to silo.toml; `orders` migrated and filled.
async fn project(admin: &str, prefix: &Prefix, others: &[&str], extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = "[project]\nname = \"shop\"\n[defaults]\nengine = \"postgres\"\n".to_string();
    for s in std::iter::once(&"orders").chain(others) {
        text.push_str(&format!(
            "[services.{s}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(s),
            prefix.name(&format!("{s}_svc"))
        ));
    }
    text.push_str(extra);
    std::fs::write(dir.path().join("silo.toml"), text).unwrap();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("V1__shop.sql"), SCHEMA).unwrap();
    silo(admin, dir.path()).arg("up").assert().success();
    silo(admin, dir.path()).arg("migrate").assert().success();
    exec(&url_of(dir.path(), "orders"), DATA).await;
    dir
}

/// The `DATABASE_URL` of a credentials file `.silo/secrets/<name>.env`.
fn url_of(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(secrets(dir, name)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL="))
        .unwrap()
        .to_string()
}

fn secrets(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".silo/secrets/{name}.env"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn exec(url: &str, text: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(text.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn scalar(url: &str, query: &str) -> Option<String> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    value
}

/// Runs `cmd`, returning its exit code, stdout and stderr (its words on
/// one line: miette wraps long lines).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// Takes a backup of `service` and returns its metadata.
fn backup(admin: &str, dir: &Path, service: &str) -> Value {
    let doc = json(silo(admin, dir).args(["backup", service, "--json"]));
    let row = &doc["backups"][0];
    assert_eq!(row["ok"], true, "{doc:#}");
    row["backup"].clone()
}

/// Proves the store `url` reaches holds exactly what [`SCHEMA`] and
/// [`DATA`] made, `silo_schema_history` included.
async fn assert_restored(url: &str) {
    let q = |query: &'static str| scalar(url, query);
    assert_eq!(q("SELECT count(*)::text FROM items").await.unwrap(), "3");
    assert_eq!(q("SELECT count(*)::text FROM lines").await.unwrap(), "2");
    assert_eq!(
        q("SELECT string_agg(name || ':' || qty, ',' ORDER BY id) FROM items")
            .await
            .unwrap(),
        "bolt:5,nut:7,gear:1"
    );
    assert_eq!(
        q("SELECT last_value::text FROM invoice_no").await.unwrap(),
        "4242"
    );
    assert_eq!(
        q("SELECT last_value::text FROM items_id_seq")
            .await
            .unwrap(),
        "3"
    );
    assert_eq!(
        q("SELECT obj_description('items'::regclass, 'pg_class')")
            .await
            .unwrap(),
        "things we sell"
    );
    assert_eq!(
        q("SELECT col_description('items'::regclass, 3)")
            .await
            .unwrap(),
        "in stock"
    );
    assert_eq!(
        q("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'items'")
            .await
            .unwrap(),
        "items_name_key,items_pkey,items_qty"
    );
    assert_eq!(
        q("SELECT string_agg(contype::text, ',' ORDER BY contype) FROM pg_constraint WHERE conrelid = 'lines'::regclass")
            .await
            .unwrap(),
        "f,p"
    );
    assert_eq!(
        q("SELECT string_agg(version, ',') FROM silo_schema_history")
            .await
            .unwrap(),
        "1"
    );
    // The constraints hold, not only exist.
    let mut conn = PgConnection::connect(url).await.unwrap();
    for bad in [
        "INSERT INTO items (name, qty) VALUES ('zero', 0)",
        "INSERT INTO items (name, qty) VALUES ('bolt', 2)",
        "INSERT INTO lines (item_id) VALUES (999)",
    ] {
        assert!(
            sqlx::query(sqlx::AssertSqlSafe(bad))
                .execute(&mut conn)
                .await
                .is_err(),
            "{bad} was accepted"
        );
    }
    conn.close().await.unwrap();
}

/// The audit of the project in `dir` finds nothing.
fn assert_audit_clean(admin: &str, dir: &Path) {
    let doc = json(silo(admin, dir).args(["audit", "--format", "json"]));
    assert_eq!(doc["findings"], serde_json::json!([]), "{doc:#}");
}

#[tokio::test]
async fn postgres_round_trip_into_a_new_store_with_new_credentials() {
    let server = TempServer::start();
    let admin = server.admin_url();
    let prefix = Prefix::new();
    let dir = project(&admin, &prefix, &[], "").await;
    let dir = dir.path();

    let meta = backup(&admin, dir, "orders");
    assert_eq!(meta["engine"], "postgres");
    assert_eq!(meta["encrypted"], false);
    assert_eq!(meta["tables"]["items"], 3, "{meta:#}");
    let id = meta["id"].as_str().unwrap();
    // Only the owner reads a backup: its folders 0700, its files 0600.
    let folder = dir.join(".silo/backups/orders").join(id);
    assert_eq!(mode(&dir.join(".silo/backups/orders")), 0o700);
    assert_eq!(mode(&folder), 0o700);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(
        names,
        ["dump.pgc", "globals.json", "meta.json", "schema.json"]
    );

    // Changes after the backup are not in the restore.
    exec(
        &url_of(dir, "orders"),
        "DELETE FROM lines; INSERT INTO items (name, qty) VALUES ('late', 9)",
    )
    .await;

    let copy = prefix.name("copy");
    let doc = json(silo(&admin, dir).args(["restore", "orders", "--into", &copy, "--json"]));
    let restored = &doc["restored"];
    assert_eq!(restored["store"], copy.as_str(), "{doc:#}");
    assert_eq!(restored["backup"], id);
    let file = secrets(dir, &copy);
    assert_eq!(restored["credentials"], file.display().to_string());
    assert_eq!(mode(&file), 0o600);
    // New credentials, of a role of its own, and they work (this server
    // checks passwords).
    let url = url_of(dir, &copy);
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.username(), format!("{copy}_svc"));
    assert_ne!(url, url_of(dir, "orders"));
    assert_eq!(
        scalar(&url, "SELECT current_user::text").await.unwrap(),
        format!("{copy}_svc")
    );
    assert_restored(&url).await;
    // The live store was not touched.
    assert_eq!(
        scalar(&url_of(dir, "orders"), "SELECT count(*)::text FROM items")
            .await
            .unwrap(),
        "4"
    );

    // The restored store is one silo audits clean among the others.
    let manifest = dir.join("silo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "[services.{copy}]\ndatabase = \"{copy}\"\nrole = \"{copy}_svc\"\n"
    ));
    std::fs::write(&manifest, text).unwrap();
    assert_audit_clean(&admin, dir);

    // The drill restores the same backup into a scratch store and drops it.
    let doc = json(silo(&admin, dir).args(["backup", "verify", "orders", "--json"]));
    assert_eq!(doc["verified"][0]["ok"], true, "{doc:#}");
    assert_eq!(doc["verified"][0]["backup"], id);
}

#[tokio::test]
async fn replace_refuses_a_store_in_use_then_swaps_with_terminate() {
    let server = TempServer::start();
    let admin = server.admin_url();
    let prefix = Prefix::new();
    let dir = project(&admin, &prefix, &[], "").await;
    let dir = dir.path();
    let live_url = url_of(dir, "orders");
    backup(&admin, dir, "orders");
    exec(
        &live_url,
        "INSERT INTO items (name, qty) VALUES ('late', 9)",
    )
    .await;

    // Without --yes nothing happens.
    let (code, _, err) = run(silo(&admin, dir).args(["restore", "orders", "--replace"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");

    // The service is still connected: refused, with what to do.
    let mut session = PgConnection::connect(&live_url).await.unwrap();
    let (code, _, err) = run(silo(&admin, dir).args(["restore", "orders", "--replace", "--yes"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is in use"), "{err}");
    assert!(err.contains("--terminate"), "{err}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut session)
        .await
        .unwrap();
    assert_eq!(n, 4, "the live store is untouched");
    // The checked copy that could not be swapped in is not left behind.
    let databases = scalar(
        &admin,
        &format!(
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE '{}%'",
            prefix.value
        ),
    )
    .await
    .unwrap();
    assert_eq!(databases, prefix.name("orders"));

    let (code, out, err) =
        run(silo(&admin, dir).args(["restore", "orders", "--replace", "--yes", "--terminate"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ended 1 session(s) of `orders`"), "{out}");
    let kept = out
        .lines()
        .find_map(|l| l.strip_prefix("the previous store is kept as "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_else(|| panic!("no kept store named: {out}"))
        .to_string();
    assert!(
        kept.starts_with(&format!("{}_replaced_", prefix.name("orders"))),
        "{kept}"
    );
    assert!(
        sqlx::query("SELECT 1").execute(&mut session).await.is_err(),
        "the old session was ended"
    );

    // The service's own credentials work, on the restored data.
    assert_eq!(url_of(dir, "orders"), live_url);
    assert_restored(&live_url).await;
    // The old store is kept, with what it had.
    let kept_url = {
        let mut u = url::Url::parse(&admin).unwrap();
        u.set_path(&kept);
        u.to_string()
    };
    assert_eq!(
        scalar(&kept_url, "SELECT count(*)::text FROM items")
            .await
            .unwrap(),
        "4"
    );
    assert_audit_clean(&admin, dir);
}

#[tokio::test]
async fn another_services_backup_is_refused_unless_from_service() {
    let admin = admin_url();
    let prefix = Prefix::new();
    let dir = project(&admin, &prefix, &["billing"], "").await;
    let dir = dir.path();
    let meta = backup(&admin, dir, "orders");
    let id = meta["id"].as_str().unwrap();

    // orders' backup lands among billing's (a shared or copied folder).
    let theirs = dir.join(".silo/backups/billing").join(id);
    std::fs::create_dir_all(&theirs).unwrap();
    for entry in std::fs::read_dir(dir.join(".silo/backups/orders").join(id)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, theirs.join(path.file_name().unwrap())).unwrap();
    }
    let into = prefix.name("billing_copy");
    let (code, _, err) =
        run(silo(&admin, dir).args(["restore", "billing", "--backup", id, "--into", &into]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is of service `orders`, not `billing`"),
        "{err}"
    );
    assert!(err.contains("--from-service orders"), "{err}");
    assert!(!secrets(dir, &into).exists());

    let doc = json(silo(&admin, dir).args([
        "restore",
        "billing",
        "--from-service",
        "orders",
        "--into",
        &into,
        "--json",
    ]));
    assert_eq!(doc["restored"]["from_service"], "orders", "{doc:#}");
    assert_restored(&url_of(dir, &into)).await;
}

#[tokio::test]
async fn a_flipped_byte_is_refused_naming_the_file() {
    let admin = admin_url();
    let prefix = Prefix::new();
    let dir = project(&admin, &prefix, &[], "").await;
    let dir = dir.path();
    let meta = backup(&admin, dir, "orders");
    let id = meta["id"].as_str().unwrap();
    let dump = dir.join(".silo/backups/orders").join(id).join("dump.pgc");
    let mut bytes = std::fs::read(&dump).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&dump, bytes).unwrap();

    let into = prefix.name("copy");
    let (code, _, err) = run(silo(&admin, dir).args(["restore", "orders", "--into", &into]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is damaged: dump.pgc has SHA-256"), "{err}");
    assert!(!secrets(dir, &into).exists(), "nothing was made");

    let doc = json(silo(&admin, dir).args(["backup", "verify", "orders", "--json"]));
    assert_eq!(doc["verified"][0]["ok"], false, "{doc:#}");
    assert!(
        doc["verified"][0]["error"]
            .as_str()
            .unwrap()
            .contains("dump.pgc"),
        "{doc:#}"
    );
}

#[tokio::test]
async fn encrypted_backups_round_trip_and_need_the_identity() {
    use age::secrecy::ExposeSecret;
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public().to_string();
    let admin = admin_url();
    let prefix = Prefix::new();
    let extra = format!(
        "[backup]\nrecipients = [\"{recipient}\"]\n[services.orders.backup]\nencrypt = true\n"
    );
    let dir = project(&admin, &prefix, &[], &extra).await;
    let dir = dir.path();
    let identity = dir.join("key.txt");
    std::fs::write(&identity, format!("{}\n", key.to_string().expose_secret())).unwrap();

    let meta = backup(&admin, dir, "orders");
    assert_eq!(meta["encrypted"], true, "{meta:#}");
    let names: Vec<&str> = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["dump.pgc.age", "globals.json.age", "schema.json.age"]
    );
    // What is stored is ciphertext, and the checksums are of it.
    let id = meta["id"].as_str().unwrap();
    let folder = dir.join(".silo/backups/orders").join(id);
    for file in meta["files"].as_array().unwrap() {
        let bytes = std::fs::read(folder.join(file["name"].as_str().unwrap())).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
        assert!(!String::from_utf8_lossy(&bytes).contains("things we sell"));
    }

    // Without the identity: exit 2, naming the variable, nothing made.
    let into = prefix.name("copy");
    let (code, _, err) = run(silo(&admin, dir).args(["restore", "orders", "--into", &into]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is encrypted and SILO_BACKUP_IDENTITY_FILE is not set"),
        "{err}"
    );
    assert!(!secrets(dir, &into).exists());
    let (code, _, err) = run(silo(&admin, dir).args(["backup", "verify", "orders"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SILO_BACKUP_IDENTITY_FILE"), "{err}");

    // With it: the drill and the restore.
    let doc = json(
        silo(&admin, dir)
            .env("SILO_BACKUP_IDENTITY_FILE", &identity)
            .args(["backup", "verify", "orders", "--json"]),
    );
    assert_eq!(doc["verified"][0]["ok"], true, "{doc:#}");
    silo(&admin, dir)
        .env("SILO_BACKUP_IDENTITY_FILE", &identity)
        .args(["restore", "orders", "--into", &into])
        .assert()
        .success();
    assert_restored(&url_of(dir, &into)).await;

    // Another identity does not open it.
    let other = dir.join("other.txt");
    std::fs::write(
        &other,
        format!(
            "{}\n",
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
        ),
    )
    .unwrap();
    let (code, _, err) = run(silo(&admin, dir)
        .env("SILO_BACKUP_IDENTITY_FILE", &other)
        .args(["backup", "verify", "orders"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no identity matches"), "{err}");
}

#[tokio::test]
async fn an_s3_destination_from_the_manifest() {
    let Some(s3) = S3Server::start_or_skip("an_s3_destination_from_the_manifest") else {
        return;
    };
    let admin = admin_url();
    let prefix = Prefix::new();
    let url = s3.url("shop/orders");
    let extra = format!("[services.orders.backup]\ndestination = \"{url}\"\n");
    let dir = project(&admin, &prefix, &[], &extra).await;
    let dir = dir.path();
    let with_s3 = |cmd: &mut Command| {
        for (k, v) in s3.env() {
            cmd.env(k, v);
        }
    };

    // Without credentials: exit 2, naming the URL and the variables.
    let (code, _, err) = run(silo(&admin, dir).args(["backup", "orders"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");

    let mut cmd = silo(&admin, dir);
    with_s3(&mut cmd);
    let doc = json(cmd.args(["backup", "orders", "--json"]));
    let row = &doc["backups"][0];
    assert_eq!(row["ok"], true, "{doc:#}");
    assert_eq!(row["destination"], url.as_str());
    let id = row["backup"]["id"].as_str().unwrap().to_string();
    assert!(
        !dir.join(".silo/backups/orders").exists(),
        "nothing went to the local default"
    );

    let mut cmd = silo(&admin, dir);
    with_s3(&mut cmd);
    let doc = json(cmd.args(["backup", "list", "orders", "--json"]));
    assert_eq!(
        doc["services"][0]["backups"][0]["id"],
        id.as_str(),
        "{doc:#}"
    );

    let mut cmd = silo(&admin, dir);
    with_s3(&mut cmd);
    let doc = json(cmd.args(["backup", "verify", "orders", "--json"]));
    assert_eq!(doc["verified"][0]["ok"], true, "{doc:#}");

    let into = prefix.name("copy");
    let mut cmd = silo(&admin, dir);
    with_s3(&mut cmd);
    cmd.args(["restore", "orders", "--into", &into])
        .assert()
        .success();
    assert_restored(&url_of(dir, &into)).await;
}
