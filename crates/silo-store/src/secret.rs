//! Generated passwords and the SCRAM verifiers PostgreSQL stores for them.
//!
//! silo sends PostgreSQL a SCRAM-SHA-256 verifier, never the password itself
//! (as `psql`'s `\password` does), so a server that logs statements never
//! sees a usable secret.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Random bytes in a generated password (the floor is 32).
pub const PASSWORD_BYTES: usize = 32;
/// PBKDF2 iterations in the verifier: PostgreSQL's default `scram_iterations`.
const SCRAM_ITERATIONS: u32 = 4096;

/// A secret string that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps an existing secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// A fresh password: 32 bytes from the OS generator, URL-safe base64
    /// (43 characters), so it needs no escaping in URLs or env files.
    pub fn generate() -> Self {
        Secret(URL_SAFE_NO_PAD.encode(random_bytes::<PASSWORD_BYTES>()))
    }

    /// The secret itself. Call sites are few and deliberate.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// The SCRAM-SHA-256 verifier of `password` with a fresh salt, in the form
/// PostgreSQL stores in `pg_authid.rolpassword` (RFC 5802, RFC 7677).
pub fn scram_verifier(password: &Secret) -> String {
    scram_verifier_with_salt(password, &random_bytes::<16>(), SCRAM_ITERATIONS)
}

fn scram_verifier_with_salt(password: &Secret, salt: &[u8], iterations: u32) -> String {
    // Generated passwords are ASCII, for which SASLprep is the identity.
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.expose().as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// Whether `password` is the one behind a stored SCRAM-SHA-256 verifier
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`). `None`
/// when `verifier` is not in that form (an md5 hash, say).
pub fn scram_verifies(password: &Secret, verifier: &str) -> Option<bool> {
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    let (params, _keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let iterations: u32 = iterations.parse().ok()?;
    let salt = STANDARD.decode(salt).ok()?;
    Some(scram_verifier_with_salt(password, &salt, iterations) == verifier)
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_checks_its_own_password_only() {
        let right = Secret::new("right-password");
        let verifier = scram_verifier(&right);
        assert_eq!(scram_verifies(&right, &verifier), Some(true));
        assert_eq!(
            scram_verifies(&Secret::new("wrong-password"), &verifier),
            Some(false)
        );
        assert_eq!(
            scram_verifies(&right, "md5d41d8cd98f00b204e9800998ecf8427e"),
            None
        );
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }

    /// The test vector of RFC 7677 section 3 (password "pencil").
    #[test]
    fn verifier_matches_rfc7677() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = scram_verifier_with_salt(&Secret::new("pencil"), &salt, 4096);
        let server_key = v.rsplit(':').next().unwrap();
        // These keys reproduce the RFC's exchange: HMAC(ServerKey,
        // AuthMessage) is its ServerSignature 6rriTRBi23Wp..., and its
        // ClientProof dHzbZapWIk4j... follows from StoredKey.
        let stored_key = v.split('$').nth(2).unwrap().split(':').next().unwrap();
        assert_eq!(stored_key, "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
        assert_eq!(server_key, "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
        assert!(v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    }
}
