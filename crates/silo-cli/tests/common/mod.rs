//! Helpers shared by the CLI test files.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use silo_testkit::{Prefix, admin_url};

/// The `silo` binary run in `dir`, with the shared test server as admin
/// and none of the caller's SILO_* settings.
pub fn silo(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("silo").unwrap();
    c.current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .env("SILO_PG_ADMIN_URL", admin_url());
    c
}

/// Runs `cmd` and parses its stdout as JSON.
#[allow(dead_code)] // not every test file reads JSON
pub fn json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A project with one service `orders` on `engine`, provisioned; returns
/// the project folder and the service's migrations folder.
#[allow(dead_code)] // not every test file provisions
pub fn orders_project(engine: &str, prefix: &Prefix) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n\
             [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name("orders"),
            prefix.name("orders_svc")
        ),
    )
    .unwrap();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    silo(dir.path()).arg("up").assert().success();
    (dir, migrations)
}

/// Gives every service of the manifest in `dir` a database and role named
/// with `prefix`, so the run owns its names on the shared server.
#[allow(dead_code)] // not every test file runs on PostgreSQL
pub fn prefix_names(dir: &Path, prefix: &Prefix) {
    let path = dir.join("silo.toml");
    let mut doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let services = doc["services"].as_table_mut().unwrap();
    for (name, service) in services.iter_mut() {
        let service = service.as_table_mut().unwrap();
        let database = service
            .get("database")
            .and_then(|v| v.as_str())
            .unwrap_or(name)
            .to_string();
        let role = service
            .get("role")
            .and_then(|v| v.as_str())
            .map_or_else(|| format!("{name}_svc"), str::to_string);
        service.insert("database".into(), prefix.name(&database).into());
        service.insert("role".into(), prefix.name(&role).into());
    }
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
}

/// `silo gateway --listen 127.0.0.1:0 ARGS...` started in `dir` with
/// `envs` set: the child, the address of its first line
/// (`... listening on http[s]://ADDR for ...`), and the rest of its
/// standard output. Its standard error is piped.
#[allow(dead_code)] // only the gateway's test files start one
pub fn start_gateway(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    std::io::BufReader<std::process::ChildStdout>,
) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("silo"));
    cmd.current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr, stdout)
}
