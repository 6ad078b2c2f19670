//! Every bundled example, on every engine its migrations are written for:
//! `init --example`, `up`, `migrate`, `undo` of every service to before its
//! first version (the schema must be the fresh store's again), `migrate`
//! again, and `verify` of every service. The examples are found in
//! `examples/`, so one added there is tested without editing this file.

use std::path::{Path, PathBuf};

use serde_json::Value;
use silo_manifest::{Engine, Manifest, Overrides};
use silo_testkit::Prefix;

mod common;
use common::{json, prefix_names, silo};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The bundled examples: the folders of `examples/` with a silo.toml.
fn examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("silo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The engines `example`'s migrations are written for: those every
/// service keeps a folder for (`postgres/`, `sqlite/`), or, for a flat
/// folder as Flyway keeps one, the engine the manifest gives the service.
fn engines(example: &str) -> Vec<Engine> {
    let manifest = Manifest::load(
        &examples_dir().join(example).join("silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    [Engine::Sqlite, Engine::Postgres]
        .into_iter()
        .filter(|engine| {
            manifest.services.iter().all(|s| {
                let dir = manifest.migrations_dir(s);
                let folders: Vec<Engine> = [Engine::Sqlite, Engine::Postgres]
                    .into_iter()
                    .filter(|e| dir.join(e.to_string()).is_dir())
                    .collect();
                if folders.is_empty() {
                    s.engine == *engine
                } else {
                    folders.contains(engine)
                }
            })
        })
        .collect()
}

/// `silo --engine ENGINE ARGS...` in `dir`, which must succeed; its stdout.
fn run(dir: &Path, engine: Engine, args: &[&str]) -> String {
    let out = silo(dir)
        .args(["--engine", &engine.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "silo --engine {engine} {}: exit {:?}\n{}\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_json(dir: &Path, engine: Engine, args: &[&str]) -> Value {
    let mut cmd = silo(dir);
    cmd.args(["--engine", &engine.to_string()]).args(args);
    json(&mut cmd)
}

/// Each versioned migration's state, by service.
fn states(dir: &Path, engine: Engine) -> Vec<(String, Vec<String>)> {
    let info = run_json(dir, engine, &["info", "--json"]);
    info["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let states = s["migrations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "versioned")
                .map(|e| e["state"].as_str().unwrap().to_string())
                .collect();
            (s["service"].as_str().unwrap().to_string(), states)
        })
        .collect()
}

fn all_in(states: &[(String, Vec<String>)], state: &str) -> bool {
    states
        .iter()
        .all(|(_, list)| !list.is_empty() && list.iter().all(|s| s == state))
}

fn schema(dir: &Path, engine: Engine, service: &str) -> Value {
    run_json(dir, engine, &["schema", "dump", service, "--json"])["schema"].clone()
}

fn round_trip(example: &str, engine: Engine) {
    let prefix = Prefix::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    silo(dir)
        .args(["init", "--example", example])
        .assert()
        .success();
    if engine == Engine::Postgres {
        prefix_names(dir, &prefix);
    }
    run(dir, engine, &["up"]);
    let manifest = Manifest::load(&dir.join("silo.toml"), &Overrides::default()).unwrap();
    let services: Vec<String> = manifest.services.iter().map(|s| s.name.clone()).collect();
    let fresh: Vec<Value> = services.iter().map(|s| schema(dir, engine, s)).collect();

    run(dir, engine, &["migrate"]);
    let applied = states(dir, engine);
    assert!(all_in(&applied, "applied"), "{example}: {applied:?}");

    for (service, fresh) in services.iter().zip(&fresh) {
        run(dir, engine, &["undo", service, "--to", "0", "--yes"]);
        assert_eq!(
            &schema(dir, engine, service),
            fresh,
            "{example}/{service} on {engine}: undoing every version leaves another schema \
             than the fresh store's"
        );
    }
    let undone = states(dir, engine);
    assert!(all_in(&undone, "pending"), "{example}: {undone:?}");

    run(dir, engine, &["migrate"]);
    assert_eq!(states(dir, engine), applied, "{example} on {engine}");

    for service in &services {
        let report = run_json(dir, engine, &["verify", service, "--json"]);
        assert!(
            report["report"]["failure"].is_null(),
            "{example}/{service} on {engine}: {report:#}"
        );
        assert!(
            report["report"]["without_undo"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{example}/{service}: every bundled V file has its U file: {report:#}"
        );
    }
    run(dir, engine, &["destroy", "--yes"]);
}

/// Every example, every engine it is written for. One test per engine, so
/// both engines' failures show.
fn every_example_on(engine: Engine) {
    let chosen: Vec<String> = examples()
        .into_iter()
        .filter(|e| engines(e).contains(&engine))
        .collect();
    assert!(!chosen.is_empty(), "no example is written for {engine}");
    for example in &chosen {
        round_trip(example, engine);
    }
}

#[test]
fn every_example_migrates_undoes_and_verifies_on_sqlite() {
    every_example_on(Engine::Sqlite);
}

#[test]
fn every_example_migrates_undoes_and_verifies_on_postgres() {
    every_example_on(Engine::Postgres);
}

/// Every example is written for at least one engine, and the engine
/// folders are told apart (a guard on `engines` above).
#[test]
fn every_example_runs_somewhere() {
    let examples = examples();
    assert!(examples.len() >= 3, "{examples:?}");
    for example in &examples {
        assert!(!engines(example).is_empty(), "{example}");
    }
}
