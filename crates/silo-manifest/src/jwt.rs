//! `[gateway.jwt]`: how the gateway accepts JSON Web Tokens beside each
//! service's own gateway token, for teams that already issue JWTs.
//!
//! The manifest names where the key is, never the key: an HS256 secret is
//! read at the gateway's start from an environment variable or a file, an
//! ES256 public key from a PEM file beside silo.toml. The parser checks
//! every value here and reports each problem at its place in the file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::names::check_env_var;
use crate::parse::Problems;

/// The environment variable an HS256 secret is read from when the
/// manifest names neither `secret_env` nor `secret_file`.
pub const DEFAULT_SECRET_ENV: &str = "SILO_GATEWAY_JWT_SECRET";

/// Clock skew allowed on `exp` and `nbf` when `leeway` is not set.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Past an hour, a leeway keeps expired tokens alive long enough to defeat
/// `exp`: a clock that far off is a fault to fix, not to tolerate.
const MAX_LEEWAY: Duration = Duration::from_secs(3600);

/// The claims that name the service when `claim` is not set, in the order
/// they are tried.
const DEFAULT_CLAIMS: [&str; 2] = ["service", "sub"];

/// `[gateway.jwt]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The one algorithm a token may be signed with; any other, `none`
    /// included, is refused.
    pub algorithm: JwtAlgorithm,
    /// Where the verifying key is.
    pub key: JwtKey,
    /// `claim`: the claim that names the service; `None` tries `service`,
    /// then `sub`.
    pub claim: Option<String>,
    /// `issuer`: the `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// `audience`: the `aud` a token must carry, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 60 s).
    pub leeway: Duration,
}

impl JwtSettings {
    /// The claims that may name the service, in the order they are tried.
    pub fn claims(&self) -> Vec<&str> {
        match &self.claim {
            Some(claim) => vec![claim.as_str()],
            None => DEFAULT_CLAIMS.to_vec(),
        }
    }
}

/// The signature algorithms the gateway verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    Hs256,
    /// ECDSA on P-256 with SHA-256, verified with a public key.
    Es256,
}

impl JwtAlgorithm {
    /// The name as in a JWT header and the manifest (`HS256`, `ES256`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the key that verifies tokens is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// HS256: the secret is the value of this environment variable.
    SecretEnv(String),
    /// HS256: the secret is this file's content (a trailing newline is not
    /// part of it). Relative paths in silo.toml start at its folder.
    SecretFile(PathBuf),
    /// ES256: a PEM public key (`-----BEGIN PUBLIC KEY-----`) in this
    /// file. Relative paths in silo.toml start at its folder.
    PublicKey(PathBuf),
}

/// `[gateway]` in silo.toml, as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    jwt: Option<Spanned<RawJwt>>,
}

/// `[gateway.jwt]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    algorithm: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    claim: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    audience: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
}

/// `[gateway.jwt]`, checked; `None` when the table is absent or wrong
/// (each problem is reported). `root` is the folder of silo.toml.
pub(crate) fn jwt_settings(
    raw: Option<&RawGateway>,
    root: &Path,
    problems: &mut Problems,
) -> Option<JwtSettings> {
    let table = raw?.jwt.as_ref()?;
    let span = table.span();
    let raw = table.get_ref();
    let before = problems.len();

    let algorithm = match &raw.algorithm {
        None => {
            problems.add(
                span.clone(),
                "`[gateway.jwt]` has no `algorithm`".into(),
                Some(ALGORITHM_HELP.into()),
            );
            None
        }
        Some(a) => match a.get_ref().as_str() {
            "HS256" => Some(JwtAlgorithm::Hs256),
            "ES256" => Some(JwtAlgorithm::Es256),
            other => {
                problems.add(
                    a.span(),
                    format!("unknown JWT algorithm `{other}`; expected `HS256` or `ES256`"),
                    Some(ALGORITHM_HELP.into()),
                );
                None
            }
        },
    };
    let key =
        algorithm.and_then(|algorithm| key_place(algorithm, raw, span.clone(), root, problems));

    let claim = raw.claim.as_ref().and_then(|c| {
        non_empty(
            c,
            "claim",
            "name the claim that holds the service's name, or leave `claim` out to use `service`, then `sub`",
            problems,
        )
    });
    let issuer = raw.issuer.as_ref().and_then(|i| {
        non_empty(
            i,
            "issuer",
            "leave `issuer` out to accept any `iss`",
            problems,
        )
    });
    let audience = raw.audience.as_ref().and_then(|a| {
        non_empty(
            a,
            "audience",
            "leave `audience` out to accept any `aud`",
            problems,
        )
    });
    let leeway = match &raw.leeway {
        None => DEFAULT_LEEWAY,
        Some(l) => match parse_leeway(l.get_ref()) {
            Ok(leeway) => leeway,
            Err((message, help)) => {
                problems.add(l.span(), message, help);
                DEFAULT_LEEWAY
            }
        },
    };

    if problems.len() > before {
        return None;
    }
    Some(JwtSettings {
        algorithm: algorithm?,
        key: key?,
        claim,
        issuer,
        audience,
        leeway,
    })
}

const ALGORITHM_HELP: &str = "`algorithm = \"HS256\"` verifies with a shared secret (`secret_env` or `secret_file`); `algorithm = \"ES256\"` with a public key (`public_key = \"path/to/key.pem\"`)";

/// The key's place for `algorithm`; the other algorithm's keys are refused,
/// so that a manifest cannot look as if it pinned a key it does not use.
fn key_place(
    algorithm: JwtAlgorithm,
    raw: &RawJwt,
    table: Range<usize>,
    root: &Path,
    problems: &mut Problems,
) -> Option<JwtKey> {
    match algorithm {
        JwtAlgorithm::Hs256 => {
            if let Some(p) = &raw.public_key {
                problems.add(
                    p.span(),
                    "`public_key` is for ES256, but the algorithm is HS256".into(),
                    Some("HS256 verifies with a shared secret: name it with `secret_env` or `secret_file`, or set `algorithm = \"ES256\"`".into()),
                );
            }
            match (&raw.secret_env, &raw.secret_file) {
                (Some(_), Some(file)) => {
                    problems.add(
                        file.span(),
                        "`secret_env` and `secret_file` are both set".into(),
                        Some("name one place for the secret".into()),
                    );
                    None
                }
                (Some(env), None) => match check_env_var(env.get_ref()) {
                    Ok(()) => Some(JwtKey::SecretEnv(env.get_ref().clone())),
                    Err(why) => {
                        problems.add(
                            env.span(),
                            format!("invalid secret_env `{}`: {why}", env.get_ref()),
                            None,
                        );
                        None
                    }
                },
                (None, Some(file)) => non_empty(
                    file,
                    "secret_file",
                    "give the path of the file that holds the secret",
                    problems,
                )
                .map(|path| JwtKey::SecretFile(root.join(path))),
                (None, None) => Some(JwtKey::SecretEnv(DEFAULT_SECRET_ENV.to_string())),
            }
        }
        JwtAlgorithm::Es256 => {
            for secret in [&raw.secret_env, &raw.secret_file].into_iter().flatten() {
                problems.add(
                    secret.span(),
                    "a secret is for HS256, but the algorithm is ES256".into(),
                    Some("ES256 verifies with a public key: remove the secret and set `public_key = \"path/to/key.pem\"`".into()),
                );
            }
            let Some(public_key) = &raw.public_key else {
                problems.add(
                    table,
                    "ES256 needs `public_key`".into(),
                    Some("add `public_key = \"path/to/key.pem\"`: the PEM public key of the issuer, relative to silo.toml".into()),
                );
                return None;
            };
            let path = root.join(public_key.get_ref());
            if !path.is_file() {
                problems.add(
                    public_key.span(),
                    format!("the public key file `{}` does not exist", path.display()),
                    Some("give the path of the issuer's PEM public key (`-----BEGIN PUBLIC KEY-----`), relative to the folder of silo.toml or absolute".into()),
                );
                return None;
            }
            Some(JwtKey::PublicKey(path))
        }
    }
}

fn non_empty(
    value: &Spanned<String>,
    key: &str,
    help: &str,
    problems: &mut Problems,
) -> Option<String> {
    if value.get_ref().trim().is_empty() {
        problems.add(value.span(), format!("`{key}` is empty"), Some(help.into()));
        return None;
    }
    Some(value.get_ref().clone())
}

/// Parses a leeway: a humantime duration (`60s`, `2m`, `1m 30s`) of whole
/// seconds, an hour at most.
fn parse_leeway(text: &str) -> Result<Duration, (String, Option<String>)> {
    let help = Some(
        "a duration such as `60s`, `2m` or `1m 30s`, an hour at most; `0s` allows no clock skew"
            .to_string(),
    );
    let leeway = humantime::parse_duration(text)
        .map_err(|e| (format!("invalid leeway `{text}`: {e}"), help.clone()))?;
    if leeway.subsec_nanos() != 0 {
        return Err((
            format!("the leeway `{text}` is not a whole number of seconds"),
            help,
        ));
    }
    if leeway > MAX_LEEWAY {
        return Err((
            format!("the leeway `{text}` is longer than an hour: expired tokens would stay valid"),
            help,
        ));
    }
    Ok(leeway)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leeways() {
        assert_eq!(parse_leeway("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_leeway("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_leeway("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_leeway("1h").unwrap(), MAX_LEEWAY);
        assert!(parse_leeway("500ms").unwrap_err().0.contains("whole"));
        assert!(parse_leeway("2h").unwrap_err().0.contains("hour"));
        for bad in ["", "60", "soon", "-1s"] {
            assert!(parse_leeway(bad).is_err(), "{bad}");
        }
    }
}
