//! `silo gateway` with `--audit-log` and TLS: the binary serves HTTPS,
//! writes a private audit line per request without values or tokens, and
//! refuses a key file every user can read.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{json, orders_project, silo};
use silo_testkit::Prefix;

/// A self-signed certificate for `localhost` in `dir`; the key gets `mode`.
/// Returns the certificate's PEM.
fn certificate(dir: &Path, mode: u32) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    let key = dir.join("key.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    made.cert.pem()
}

/// One HTTPS exchange trusting `ca`: (status, headers and body as text).
fn https(addr: &str, ca: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).unwrap());
    write!(
        tls,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nX-Request-Id: cli-ops-1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    // A peer that closes without close_notify still gave its answer.
    let _ = tls.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).to_string();
    (out[9..12].parse().unwrap(), out)
}

#[test]
fn an_exposed_key_is_refused_with_exit_2() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("sqlite", &prefix);
    certificate(dir.path(), 0o644);
    let out = silo(dir.path())
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .args(["--tls-cert", "cert.pem", "--tls-key", "key.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("silo::gateway::tls"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn the_gateway_serves_https_and_audits_each_request() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("sqlite", &prefix);
    let ca = certificate(dir.path(), 0o600);
    let tok = json(silo(dir.path()).args(["credentials", "show", "orders", "--json", "--reveal"]))
        ["gateway_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut child, addr, _out) = common::start_gateway(
        dir.path(),
        &[
            "--audit-log",
            "audit.jsonl",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
        &[],
    );
    let secret = "a-value-the-log-must-not-hold";
    let query = format!(
        r#"{{"database":"{}","query":{{"type":"select","table":"nope","where":{{"field":"x","operator":"=","value":"{secret}"}}}}}}"#,
        prefix.name("orders")
    );
    let (status, answer) = https(&addr, &ca, "/v1/query", &tok, &query);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("x-request-id: cli-ops-1"), "{answer}");
    assert!(answer.contains(r#""request_id":"cli-ops-1""#), "{answer}");

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
    assert!(status.success(), "{status:?}");

    let path = dir.path().join("audit.jsonl");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains(&tok), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["request_id"], "cli-ops-1");
    assert_eq!(lines[0]["service"], "orders");
    assert_eq!(lines[0]["operation"], "query");
    assert_eq!(lines[0]["tables"][0], "nope");
    assert_eq!(lines[0]["outcome"]["code"], "UnknownTable");
}
