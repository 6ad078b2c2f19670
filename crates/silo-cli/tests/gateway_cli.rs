//! `silo gateway` and the gateway token: made by `silo up`, shown masked
//! unless revealed, kept by a password rotation, replaced by `--gateway`.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{json, orders_project, silo};
use silo_testkit::Prefix;

fn token(dir: &std::path::Path, reveal: bool) -> Value {
    let mut cmd = silo(dir);
    cmd.args(["credentials", "show", "orders", "--json"]);
    if reveal {
        cmd.arg("--reveal");
    }
    json(&mut cmd)["gateway_token"].clone()
}

#[test]
fn the_gateway_token_is_made_shown_kept_and_rotated() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("postgres", &prefix);
    let first = token(dir.path(), true);
    assert_eq!(first.as_str().unwrap().len(), 43, "{first}");
    assert_eq!(token(dir.path(), false), "***");
    let shown = silo(dir.path())
        .args(["credentials", "show", "orders"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(!shown.contains(first.as_str().unwrap()), "{shown}");
    // A second `up` changes nothing; a password rotation keeps the token.
    let up = json(silo(dir.path()).args(["up", "--json"]));
    assert_eq!(up["services"][0]["outcome"], "unchanged", "{up}");
    silo(dir.path())
        .args(["credentials", "rotate", "orders"])
        .assert()
        .success();
    assert_eq!(token(dir.path(), true), first);
    let rotated =
        json(silo(dir.path()).args(["credentials", "rotate", "orders", "--gateway", "--json"]));
    assert_eq!(rotated["rotated"], "gateway_token", "{rotated}");
    assert!(!rotated.to_string().contains(first.as_str().unwrap()));
    let second = token(dir.path(), true);
    assert_ne!(second, first);
    assert_eq!(second.as_str().unwrap().len(), 43);
}

/// One HTTP/1.1 exchange over a plain socket: (status, body).
fn http(addr: &str, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_gateway_serves_and_stops_on_sigterm() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("sqlite", &prefix);
    let tok = token(dir.path(), true).as_str().unwrap().to_string();
    let (child, addr, _out) = common::start_gateway(dir.path(), &[], &[]);
    let (status, body) = http(&addr, "GET", "/healthz", None, "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&addr, "GET", "/readyz", None, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"orders\":\"ok\""), "{body}");
    let query = format!(
        r#"{{"database":"{}","query":{{"type":"select","table":"nope"}}}}"#,
        prefix.name("orders")
    );
    let (status, body) = http(&addr, "POST", "/v1/query", Some(&tok), &query);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("UnknownTable"), "{body}");
    let (status, _) = http(&addr, "POST", "/v1/query", Some("wrong"), &query);
    assert_eq!(status, 401);

    let (status, err) = terminate(child);
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains(&tok), "{err}");
}

/// `--statement-timeout` takes a duration as silo.toml writes it, or whole
/// seconds; anything else is a usage error (exit 2) that says what it
/// wants, before any store is touched.
#[test]
fn a_bad_statement_timeout_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["soon", "0s", "-3"] {
        let out = silo(dir.path())
            .args(["gateway", &format!("--statement-timeout={bad}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--statement-timeout"), "{bad}: {stderr}");
    }
    let out = silo(dir.path())
        .args(["gateway", "--pool-size", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `[gateway.jwt]`: the binary stops at start (exit 2) without the secret,
/// and with it accepts a JWT that names the service.
#[test]
fn the_gateway_accepts_a_jwt() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("sqlite", &prefix);
    let manifest = dir.path().join("silo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("[gateway.jwt]\nalgorithm = \"HS256\"\nsecret_env = \"ORDERS_TEST_JWT\"\n");
    std::fs::write(&manifest, text).unwrap();
    let secret = "a test secret, 32 bytes or longer, never printed";

    let missing = common::silo(dir.path())
        .env_remove("ORDERS_TEST_JWT")
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("ORDERS_TEST_JWT"), "{err}");

    let (child, addr, _out) =
        common::start_gateway(dir.path(), &[], &[("ORDERS_TEST_JWT", secret)]);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let sign = |key: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({"sub": "orders", "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    };
    let query = format!(
        r#"{{"database":"{}","query":{{"type":"select","table":"nope"}}}}"#,
        prefix.name("orders")
    );
    // Past authentication: the store's catalog answers.
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/query",
        Some(&sign(secret.as_bytes())),
        &query,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("UnknownTable"), "{body}");
    let forged = sign(b"not the secret, but 32 bytes or longer");
    let (status, body) = http(&addr, "POST", "/v1/query", Some(&forged), &query);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signature"), "{body}");

    let (status, err) = terminate(child);
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains(secret), "{err}");
}

/// Stops `child` with SIGTERM and waits (bounded): its exit status and
/// standard error.
fn terminate(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

/// `silo gateway --nats` answers the operations on the project's subjects
/// with the caller's token in a header, as HTTP does, and stops on
/// SIGTERM; with no NATS server to reach it stops at start (exit 2) and
/// says where it looked.
#[test]
fn the_gateway_answers_over_nats() {
    let prefix = Prefix::new();
    let dir = tempfile::tempdir().unwrap();
    let project = prefix.name("gwnats");
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"{project}\"\n[services.orders]\ndatabase = \"{}\"\n",
            prefix.name("orders")
        ),
    )
    .unwrap();
    silo(dir.path()).arg("up").assert().success();
    let tok = token(dir.path(), true).as_str().unwrap().to_string();

    let unreachable = silo(dir.path())
        .env("SILO_NATS_URL", "nats://127.0.0.1:1")
        .args(["gateway", "--listen", "127.0.0.1:0", "--nats"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
    let err = String::from_utf8_lossy(&unreachable.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");

    let url = "nats://127.0.0.1:4222";
    let (child, addr, mut out) =
        common::start_gateway(dir.path(), &["--nats"], &[("SILO_NATS_URL", url)]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let subjects = format!("{project}_db.<service>.<operation>");
    assert!(line.contains(&subjects) && line.contains(url), "{line}");

    let query = format!(
        r#"{{"database":"{}","query":{{"type":"select","table":"nope"}}}}"#,
        prefix.name("orders")
    );
    let (_, over_http) = http(&addr, "POST", "/v1/query", Some(&tok), &query);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ask = |token: &str| {
        runtime.block_on(async {
            let nc = async_nats::connect(url).await.unwrap();
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Authorization", format!("Bearer {token}").as_str());
            let reply = nc
                .request_with_headers(
                    format!("{project}_db.orders.query"),
                    headers,
                    query.clone().into(),
                )
                .await
                .unwrap();
            let status = reply
                .headers
                .as_ref()
                .and_then(|h| h.get("Silo-Status"))
                .map(|v| v.to_string());
            let body: Value = serde_json::from_slice(&reply.payload).unwrap();
            (status, body)
        })
    };
    let (status, mut body) = ask(&tok);
    // The same answer as over HTTP, but for the request's own id.
    let mut over_http: Value = serde_json::from_str(&over_http).unwrap();
    for b in [&mut body, &mut over_http] {
        b["error"].as_object_mut().unwrap().remove("request_id");
    }
    assert_eq!((status.as_deref(), &body), (Some("400"), &over_http));
    assert_eq!(body["error"]["code"], "UnknownTable", "{body}");
    let (status, body) = ask("not-a-token");
    assert_eq!(status.as_deref(), Some("401"), "{body}");

    let (status, err) = terminate(child);
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains(&tok), "{err}");
}

/// SIGHUP makes a running gateway read the tokens again: after `silo
/// credentials rotate --gateway` and a SIGHUP, the new token is served and
/// the old one gets 401, without a restart.
#[test]
fn sighup_takes_a_rotated_token() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("sqlite", &prefix);
    let old = token(dir.path(), true).as_str().unwrap().to_string();
    let (child, addr, _out) = common::start_gateway(dir.path(), &[], &[]);
    let query = format!(
        r#"{{"database":"{}","query":{{"type":"select","table":"nope"}}}}"#,
        prefix.name("orders")
    );
    // 400 UnknownTable: past authentication.
    assert_eq!(http(&addr, "POST", "/v1/query", Some(&old), &query).0, 400);
    silo(dir.path())
        .args(["credentials", "rotate", "orders", "--gateway"])
        .assert()
        .success();
    let new = token(dir.path(), true).as_str().unwrap().to_string();
    assert_eq!(http(&addr, "POST", "/v1/query", Some(&new), &query).0, 401);
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    // The signal is handled on the gateway's own time: poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(&addr, "POST", "/v1/query", Some(&new), &query).0 != 400 {
        assert!(Instant::now() < deadline, "the new token was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http(&addr, "POST", "/v1/query", Some(&old), &query).0, 401);
    let (status, err) = terminate(child);
    assert!(status.success(), "{status:?}: {err}");
    assert!(
        err.contains("reloaded the gateway tokens and credentials of 1 services"),
        "{err}"
    );
    assert!(!err.contains(&new) && !err.contains(&old), "{err}");
}
