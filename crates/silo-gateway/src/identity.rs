//! Who is calling: a bearer token names one service, either the service's
//! own gateway token or, when `[gateway.jwt]` is set, a signed JWT whose
//! claim names it (see [`crate::jwt`]); or, over NATS under per-service
//! NATS users, the user the server let publish the request.
//!
//! Tokens come from each service's secrets file (`SILO_GATEWAY_TOKEN=`) and
//! are kept only as SHA-256 digests. A presented token is hashed and
//! compared with every digest in constant time, so neither the answer's
//! timing nor memory holds a usable token.

use sha2::{Digest, Sha256};
use silo_store::Secret;

use crate::error::GatewayError;
use crate::jwt::{JwtAuth, looks_like_jwt};

/// What a request offers as proof of who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Nothing.
    None,
    /// An `Authorization` header's value (`Bearer <token>`), from HTTP or
    /// a NATS message's headers.
    Authorization(&'a str),
    /// The service whose NATS user published the request. Only a
    /// transport that knows the server enforced it (each service's user
    /// may publish on its own subjects only) hands this over.
    NatsUser(&'a str),
}

impl<'a> From<Option<&'a str>> for Credential<'a> {
    fn from(authorization: Option<&'a str>) -> Self {
        authorization.map_or(Credential::None, Credential::Authorization)
    }
}

/// The services the gateway knows, by the digest of their tokens.
#[derive(Default)]
pub struct Identities {
    digests: Vec<([u8; 32], String)>,
    jwt: Option<JwtAuth>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.digests.iter().map(|(_, s)| s.as_str()).collect();
        f.debug_struct("Identities")
            .field("services", &names)
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Identities {
    /// Identities of `(service, token)` pairs.
    pub fn new(tokens: impl IntoIterator<Item = (String, Secret)>) -> Self {
        Identities {
            digests: tokens
                .into_iter()
                .map(|(service, token)| (digest(token.expose()), service))
                .collect(),
            jwt: None,
        }
    }

    /// These identities, also accepting JWTs that `jwt` verifies.
    pub fn with_jwt(mut self, jwt: Option<JwtAuth>) -> Self {
        self.jwt = jwt;
        self
    }

    /// The service `credential` proves the caller to be.
    pub fn authenticate(&self, credential: Credential<'_>) -> Result<&str, GatewayError> {
        let header = match credential {
            Credential::None => {
                return Err(GatewayError::unauthenticated(
                    "the request carries no credential",
                ));
            }
            Credential::NatsUser(user) => {
                return self
                    .digests
                    .iter()
                    .find(|(_, service)| service == user)
                    .map(|(_, service)| service.as_str())
                    .ok_or_else(|| {
                        GatewayError::unauthenticated("the NATS user is not a served service")
                    });
            }
            Credential::Authorization(header) => header,
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                GatewayError::unauthenticated("the Authorization header is not `Bearer <token>`")
            })?;
        // Gateway tokens hold no `.`, so a JWT-shaped token is never one.
        if let Some(jwt) = &self.jwt
            && looks_like_jwt(token)
        {
            let service = jwt.verify(token, |name| self.serves(name))?;
            return self
                .digests
                .iter()
                .map(|(_, s)| s.as_str())
                .find(|s| *s == service)
                .ok_or_else(|| GatewayError::unauthenticated("the JWT names no served service"));
        }
        let presented = digest(token);
        // Every digest is compared, found or not.
        let mut found = None;
        for (d, service) in &self.digests {
            if same(d, &presented) && found.is_none() {
                found = Some(service.as_str());
            }
        }
        found.ok_or_else(|| GatewayError::unauthenticated("the token is not any service's"))
    }

    fn serves(&self, name: &str) -> bool {
        self.digests.iter().any(|(_, s)| s == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_service_only() {
        let ids = Identities::new([
            ("a".to_string(), Secret::new("tok-a")),
            ("b".to_string(), Secret::new("tok-b")),
        ]);
        let auth = |h: Option<&str>| ids.authenticate(Credential::from(h));
        assert_eq!(auth(Some("Bearer tok-a")).unwrap(), "a");
        assert_eq!(auth(Some("Bearer tok-b")).unwrap(), "b");
        for bad in [
            None,
            Some("tok-a"),
            Some("Bearer "),
            Some("Bearer tok-c"),
            Some("Basic tok-a"),
        ] {
            let e = auth(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 401, "{bad:?}");
            assert!(!e.message.contains("tok-"), "{e:?}");
        }
        assert!(!format!("{ids:?}").contains("tok-"));
    }

    #[test]
    fn a_nats_user_is_a_served_service_or_nobody() {
        let ids = Identities::new([("a".to_string(), Secret::new("tok-a"))]);
        assert_eq!(ids.authenticate(Credential::NatsUser("a")).unwrap(), "a");
        for user in ["b", "silo-gateway", ""] {
            let e = ids.authenticate(Credential::NatsUser(user)).unwrap_err();
            assert_eq!(e.status.as_u16(), 401, "{user}");
        }
    }
}
