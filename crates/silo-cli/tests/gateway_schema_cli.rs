//! `silo gateway`'s `/v1/schema` through the real binary: a migration sent
//! over HTTP is seen by `silo info`, and `silo migrate` with the same file
//! has nothing left to do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;

use serde_json::{Value, json};

mod common;
use common::{json, orders_project, silo};
use silo_testkit::Prefix;

/// One HTTP/1.1 exchange over a plain socket: (status, JSON body).
fn post(addr: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `silo gateway` on a free port: the child and its address.
fn gateway(dir: &std::path::Path) -> (Child, String) {
    let (child, addr, _) = common::start_gateway(dir, &[], &[]);
    (child, addr)
}

fn states(dir: &std::path::Path) -> Vec<(String, String)> {
    let info = json(silo(dir).args(["info", "--json"]));
    info["services"][0]["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("{info}"))
        .iter()
        .map(|m| {
            (
                m["script"].as_str().unwrap().to_string(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn migrates_over_http(engine: &str) {
    let prefix = Prefix::new();
    let (dir, migrations) = orders_project(engine, &prefix);
    let d = dir.path();
    std::fs::write(
        migrations.join("V1__init.sql"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    silo(d).arg("migrate").assert().success();
    let token = json(silo(d).args(["credentials", "show", "orders", "--json", "--reveal"]))
        ["gateway_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut child, addr) = gateway(d);
    let up = "CREATE TABLE lines (id INTEGER PRIMARY KEY, item INTEGER NOT NULL);\n";
    let (status, body) = post(
        &addr,
        "/v1/schema",
        &token,
        &json!({"database": prefix.name("orders"), "action": "migrate",
                "description": "add lines", "migrations": [{"up": up, "down": "DROP TABLE lines;"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"][0]["script"], "V2__add_lines.sql", "{body}");
    let (status, body) = post(
        &addr,
        "/v1/write",
        &token,
        &json!({"database": prefix.name("orders"), "transaction": {"operations": [
            {"type": "insert", "table": "lines", "data": {"id": 1, "item": 7}}]}}),
    );
    assert_eq!(status, 200, "{body}");
    child.kill().unwrap();
    child.wait().unwrap();

    // `silo info` sees what the gateway applied ...
    assert_eq!(
        states(d),
        [
            ("V1__init.sql".to_string(), "applied".to_string()),
            ("V2__add_lines.sql".to_string(), "future".to_string()),
        ]
    );
    // ... and the same file is the same migration: `silo migrate` has
    // nothing to do.
    std::fs::write(migrations.join("V2__add_lines.sql"), up).unwrap();
    assert_eq!(states(d)[1].1, "applied");
    let migrated = json(silo(d).args(["migrate", "--json"]));
    assert_eq!(migrated["services"][0]["applied"], json!([]), "{migrated}");
    assert_eq!(migrated["services"][0]["error"], Value::Null, "{migrated}");
}

#[test]
fn the_binary_migrates_over_http_sqlite() {
    migrates_over_http("sqlite");
}

#[test]
fn the_binary_migrates_over_http_postgres() {
    migrates_over_http("postgres");
}
