//! Signed JWTs as a caller's credential (`[gateway.jwt]` in silo.toml),
//! for teams whose identity provider already issues them.
//!
//! The algorithm is pinned to the configured one before any key is used:
//! `alg: none` and, with an ES256 key, an HS256 token signed with the
//! public key's bytes (the classic key-confusion attack) are refused from
//! the header alone. `exp` is required; `nbf`, `iss` and `aud` are checked
//! when the token or the manifest sets them. Each refusal says which check
//! failed and never repeats the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use silo_manifest::{JwtAlgorithm, JwtSettings};

use crate::error::GatewayError;

/// RFC 7518 §3.2: an HS256 key is at least as long as the hash, 256 bits.
/// A shorter secret can be guessed offline from any one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Verifies JWTs against one key and algorithm.
#[derive(Clone)]
pub struct JwtAuth {
    algorithm: JwtAlgorithm,
    key: DecodingKey,
    validation: Validation,
    claims: Vec<String>,
}

/// The key material's fault, found at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    #[error(
        "the HS256 secret is {0} bytes long; it must be at least {MIN_SECRET_BYTES} bytes (256 bits)"
    )]
    ShortSecret(usize),
    #[error("the ES256 public key is not a PEM P-256 public key (`-----BEGIN PUBLIC KEY-----`)")]
    BadPublicKey,
}

// The key is never printed: an HS256 key is the secret itself.
impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// A verifier for `settings` with `key`: the secret's bytes for HS256,
    /// the PEM public key's for ES256.
    pub fn new(settings: &JwtSettings, key: &[u8]) -> Result<Self, JwtKeyError> {
        let (algorithm, key) = match settings.algorithm {
            JwtAlgorithm::Hs256 => {
                if key.len() < MIN_SECRET_BYTES {
                    return Err(JwtKeyError::ShortSecret(key.len()));
                }
                let key = DecodingKey::from_secret(key)
                    .map_err(|_| JwtKeyError::ShortSecret(key.len()))?;
                (Algorithm::HS256, key)
            }
            JwtAlgorithm::Es256 => {
                let key = DecodingKey::from_ec_pem(key).map_err(|_| JwtKeyError::BadPublicKey)?;
                (Algorithm::ES256, key)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience a token's `aud` names some
            // other relying party's choice, not ours to judge.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtAuth {
            algorithm: settings.algorithm,
            key,
            validation,
            claims: settings.claims().into_iter().map(String::from).collect(),
        })
    }

    /// The service a token names, once its signature and claims hold.
    /// `served` tells which names the gateway serves.
    pub fn verify(
        &self,
        token: &str,
        served: impl Fn(&str) -> bool,
    ) -> Result<String, GatewayError> {
        let alg = header_alg(token)?;
        if alg != self.algorithm.as_str() {
            return Err(refused(format!(
                "the JWT is signed with `{alg}`, but the gateway accepts {} only",
                self.algorithm
            )));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| refused(why(e.kind())))?;
        let (claim, value) = self
            .claims
            .iter()
            .find_map(|c| data.claims.get(c).map(|v| (c, v)))
            .ok_or_else(|| {
                refused(format!(
                    "the JWT has no `{}` claim naming the service",
                    self.claims.join("` or `")
                ))
            })?;
        let service = value
            .as_str()
            .ok_or_else(|| refused(format!("the JWT's `{claim}` claim is not a string")))?;
        if !served(service) {
            return Err(refused(format!(
                "the JWT's `{claim}` names no service this gateway serves"
            )));
        }
        Ok(service.to_string())
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts): opaque
/// gateway tokens never hold a `.`.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The header's `alg`, read before any key is touched.
fn header_alg(token: &str) -> Result<String, GatewayError> {
    let malformed = || refused("the JWT's header is not base64url JSON".to_string());
    let header = token.split('.').next().ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    match header.get("alg").and_then(Value::as_str) {
        Some(alg) => Ok(alg.to_string()),
        None => Err(refused("the JWT's header names no `alg`".to_string())),
    }
}

/// Which check a token failed, in words.
fn why(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the JWT's signature does not verify".into(),
        ErrorKind::ExpiredSignature => "the JWT has expired (`exp`)".into(),
        ErrorKind::ImmatureSignature => "the JWT is not valid yet (`nbf`)".into(),
        ErrorKind::InvalidIssuer => "the JWT's issuer (`iss`) is not the configured one".into(),
        ErrorKind::InvalidAudience => "the JWT's audience (`aud`) is not the configured one".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the JWT has no `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the JWT's `{claim}` claim is malformed"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "the JWT's algorithm is not the configured one".into()
        }
        _ => "the JWT is malformed".into(),
    }
}

fn refused(message: String) -> GatewayError {
    GatewayError::unauthenticated(&message)
}
