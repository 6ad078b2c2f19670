//! `[gateway.jwt]`: the settings a valid table resolves to, and one test
//! per refused value, each with the line and column it points at.

use std::path::Path;
use std::time::Duration;

use silo_manifest::{JwtAlgorithm, JwtKey, JwtSettings, Manifest, Overrides, Problem};

const HEAD: &str = "[project]\nname = \"p\"\n[services.orders]\n";

/// A project folder with a `keys/issuer.pem` beside silo.toml.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(
        dir.path().join("keys/issuer.pem"),
        "-----BEGIN PUBLIC KEY-----\n",
    )
    .unwrap();
    dir
}

fn parse(dir: &Path, table: &str) -> Result<Manifest, Vec<Problem>> {
    let text = format!("{HEAD}{table}");
    Manifest::from_str(&text, &dir.join("silo.toml"), &Overrides::default())
        .map_err(|e| e.problems().cloned().collect())
}

fn settings(table: &str) -> (tempfile::TempDir, Option<JwtSettings>) {
    let dir = project();
    let m = parse(dir.path(), table).unwrap_or_else(|p| panic!("{p:#?}"));
    (dir, m.gateway_jwt)
}

/// The single problem of `table`, as `(line, column, message)`; lines
/// count from the first line of `table` (silo.toml's line 4).
fn one(table: &str) -> (usize, usize, String) {
    let dir = project();
    let mut all = parse(dir.path(), table).expect_err("expected a problem");
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let p = all.remove(0);
    (p.line - 3, p.column, p.message)
}

#[test]
fn no_table_no_jwt() {
    assert_eq!(settings("").1, None);
    assert_eq!(settings("[gateway]\n").1, None);
}

#[test]
fn hs256_reads_its_secret_from_the_environment_by_default() {
    let (_dir, jwt) = settings("[gateway.jwt]\nalgorithm = \"HS256\"\n");
    let jwt = jwt.unwrap();
    assert_eq!(jwt.algorithm, JwtAlgorithm::Hs256);
    assert_eq!(jwt.key, JwtKey::SecretEnv("SILO_GATEWAY_JWT_SECRET".into()));
    assert_eq!(jwt.claims(), ["service", "sub"]);
    assert_eq!(jwt.leeway, Duration::from_secs(60));
    assert_eq!((jwt.issuer, jwt.audience), (None, None));
}

#[test]
fn every_value_is_read() {
    let (dir, jwt) = settings(
        "[gateway.jwt]\nalgorithm = \"HS256\"\nsecret_file = \"secrets/jwt\"\nclaim = \"svc\"\nissuer = \"https://auth.example\"\naudience = \"silo\"\nleeway = \"1m 30s\"\n",
    );
    let jwt = jwt.unwrap();
    assert_eq!(jwt.key, JwtKey::SecretFile(dir.path().join("secrets/jwt")));
    assert_eq!(jwt.claims(), ["svc"]);
    assert_eq!(jwt.issuer.as_deref(), Some("https://auth.example"));
    assert_eq!(jwt.audience.as_deref(), Some("silo"));
    assert_eq!(jwt.leeway, Duration::from_secs(90));

    let (_, jwt) = settings(
        "[gateway.jwt]\nalgorithm = \"HS256\"\nsecret_env = \"TEAM_JWT_KEY\"\nleeway = \"0s\"\n",
    );
    let jwt = jwt.unwrap();
    assert_eq!(jwt.key, JwtKey::SecretEnv("TEAM_JWT_KEY".into()));
    assert_eq!(jwt.leeway, Duration::ZERO);
}

#[test]
fn es256_reads_a_public_key_beside_the_manifest() {
    let (dir, jwt) =
        settings("[gateway.jwt]\nalgorithm = \"ES256\"\npublic_key = \"keys/issuer.pem\"\n");
    let jwt = jwt.unwrap();
    assert_eq!(jwt.algorithm, JwtAlgorithm::Es256);
    assert_eq!(
        jwt.key,
        JwtKey::PublicKey(dir.path().join("keys/issuer.pem"))
    );
}

#[test]
fn unknown_key() {
    let (line, column, message) =
        one("[gateway.jwt]\nalgorithm = \"HS256\"\nsecret = \"hunter2\"\n");
    assert_eq!((line, column), (3, 1));
    assert!(
        message.starts_with("unknown field `secret`, expected one of `algorithm`"),
        "{message}"
    );
    let (line, _, message) = one("[gateway]\njtw = true\n");
    assert_eq!(line, 2);
    assert!(message.starts_with("unknown field `jtw`"), "{message}");
}

#[test]
fn bad_algorithm() {
    for alg in ["none", "RS256", "hs256"] {
        let (line, column, message) = one(&format!("[gateway.jwt]\nalgorithm = \"{alg}\"\n"));
        assert_eq!((line, column), (2, 13), "{alg}");
        assert_eq!(
            message,
            format!("unknown JWT algorithm `{alg}`; expected `HS256` or `ES256`")
        );
    }
    let (line, column, message) = one("[gateway.jwt]\nsecret_env = \"X\"\n");
    assert_eq!((line, column), (1, 1));
    assert_eq!(message, "`[gateway.jwt]` has no `algorithm`");
}

#[test]
fn missing_key_file() {
    let (line, column, message) =
        one("[gateway.jwt]\nalgorithm = \"ES256\"\npublic_key = \"keys/nope.pem\"\n");
    assert_eq!((line, column), (3, 14));
    assert!(
        message.starts_with("the public key file `")
            && message.ends_with("keys/nope.pem` does not exist"),
        "{message}"
    );
    let (line, column, message) = one("[gateway.jwt]\nalgorithm = \"ES256\"\n");
    assert_eq!((line, column), (1, 1));
    assert_eq!(message, "ES256 needs `public_key`");
}

#[test]
fn keys_of_the_other_algorithm_are_refused() {
    let (line, column, message) =
        one("[gateway.jwt]\nalgorithm = \"HS256\"\npublic_key = \"keys/issuer.pem\"\n");
    assert_eq!((line, column), (3, 14));
    assert_eq!(
        message,
        "`public_key` is for ES256, but the algorithm is HS256"
    );
    let (line, column, message) = one(
        "[gateway.jwt]\nalgorithm = \"ES256\"\npublic_key = \"keys/issuer.pem\"\nsecret_env = \"JWT\"\n",
    );
    assert_eq!((line, column), (4, 14));
    assert_eq!(message, "a secret is for HS256, but the algorithm is ES256");
    let (line, _, message) =
        one("[gateway.jwt]\nalgorithm = \"HS256\"\nsecret_env = \"JWT\"\nsecret_file = \"jwt\"\n");
    assert_eq!(line, 4);
    assert_eq!(message, "`secret_env` and `secret_file` are both set");
}

#[test]
fn bad_values() {
    let (line, column, message) =
        one("[gateway.jwt]\nalgorithm = \"HS256\"\nsecret_env = \"jwt-secret\"\n");
    assert_eq!((line, column), (3, 14));
    assert!(
        message.starts_with("invalid secret_env `jwt-secret`: "),
        "{message}"
    );
    let (line, column, message) = one("[gateway.jwt]\nalgorithm = \"HS256\"\nleeway = \"2h\"\n");
    assert_eq!((line, column), (3, 10));
    assert!(message.contains("longer than an hour"), "{message}");
    let (line, _, message) = one("[gateway.jwt]\nalgorithm = \"HS256\"\nleeway = \"soon\"\n");
    assert_eq!(line, 3);
    assert!(message.starts_with("invalid leeway `soon`"), "{message}");
    let (line, _, message) = one("[gateway.jwt]\nalgorithm = \"HS256\"\nclaim = \" \"\n");
    assert_eq!(line, 3);
    assert_eq!(message, "`claim` is empty");
    let (line, _, message) = one("[gateway.jwt]\nalgorithm = \"HS256\"\naudience = \"\"\n");
    assert_eq!(line, 3);
    assert_eq!(message, "`audience` is empty");
}
