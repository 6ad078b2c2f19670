//! The D&D example (seed 003) end to end on SQLite: `init --example dnd`,
//! `up`, `migrate`, then `silo gateway` serves each of the seven services
//! its own sub-database and refuses another's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

mod common;
use common::{json, silo};

/// Seed 003's services, and a table of each one's migrations.
const SEVEN: [(&str, &str); 7] = [
    ("character", "characters"),
    ("campaign", "campaigns"),
    ("auth", "users"),
    ("metrics", "samples"),
    ("catalog", "items"),
    ("image_storage", "images"),
    ("search", "documents"),
];

fn post(addr: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Stops the gateway however the test ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_dnd_example_inits_ups_migrates_and_is_served_by_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    silo(path)
        .args(["init", "--example", "dnd", "--dir", "."])
        .assert()
        .success();
    let up = json(silo(path).args(["up", "--json"]));
    assert_eq!(up["services"].as_array().unwrap().len(), 7, "{up}");
    silo(path).arg("migrate").assert().success();
    // A second run changes nothing.
    silo(path).arg("migrate").assert().success();

    let tokens: Vec<String> = SEVEN
        .iter()
        .map(|(s, _)| {
            let shown = json(silo(path).args(["credentials", "show", s, "--json", "--reveal"]));
            shown["gateway_token"].as_str().unwrap().to_string()
        })
        .collect();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(path)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _gateway = Gateway(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    // The character service writes a character in one transaction and
    // reads it back.
    let (status, body) = post(
        &addr,
        "/v1/write",
        &tokens[0],
        &json!({"database": "character_db", "transaction": {"operations": [
            {"type": "insert", "table": "characters", "returning": ["id"],
             "data": {"name": "Aria", "class": "wizard", "level": 6, "player_id": 1}},
            {"type": "insert", "table": "journals",
             "data": {"character_id": 1, "entry": "Left Phandalin at dawn."}}
        ]}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["returning"],
        json!([{"id": 1}]),
        "{body}"
    );
    let (status, body) = post(
        &addr,
        "/v1/query",
        &tokens[0],
        &json!({"database": "character_db", "query": {"type": "select", "table": "characters",
            "fields": ["id", "name"], "where": {"field": "level", "operator": ">", "value": 5}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([{"id": 1, "name": "Aria"}]));

    // Every service reaches its own tables, and no other service's.
    for (i, (caller, _)) in SEVEN.iter().enumerate() {
        for (owner, table) in SEVEN {
            let (status, body) = post(
                &addr,
                "/v1/query",
                &tokens[i],
                &json!({"database": format!("{owner}_db"),
                        "query": {"type": "select", "table": table}}),
            );
            if *caller == owner {
                assert_eq!(status, 200, "{caller}: {body}");
            } else {
                assert_eq!(status, 403, "{caller} → {owner}: {body}");
                assert_eq!(body["error"]["code"], "UnauthorizedAccess");
            }
        }
    }
}
