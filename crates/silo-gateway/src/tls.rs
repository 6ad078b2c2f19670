//! TLS for the HTTP face: a certificate chain and its private key, both
//! PEM files, served with rustls on the ring provider (the one sqlx's
//! rustls already links, so the binary carries one crypto library).
//!
//! A key file that anyone on the machine may read is refused rather than
//! used: a key that leaked that way cannot be trusted, and serving with it
//! would hide the problem.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// Why the certificate or key cannot be served.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    #[diagnostic(
        code(silo::gateway::tls),
        help("--tls-cert and --tls-key take PEM files the gateway can read")
    )]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has no {what} in PEM form", path.display())]
    #[diagnostic(
        code(silo::gateway::tls),
        help(
            "--tls-cert takes `-----BEGIN CERTIFICATE-----` blocks (the chain, leaf first); --tls-key one `-----BEGIN PRIVATE KEY-----` (PKCS#8, PKCS#1 or SEC1)"
        )
    )]
    Pem { what: &'static str, path: PathBuf },
    #[error("the key file {} is readable by every user (mode {mode:o})", path.display())]
    #[diagnostic(
        code(silo::gateway::tls),
        help("chmod 600 {}, and replace the key if others may have read it", path.display())
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    #[diagnostic(
        code(silo::gateway::tls),
        help(
            "check that the key is the certificate's own and that the certificate is first in its file"
        )
    )]
    Config(#[from] rustls::Error),
}

/// A loaded certificate and key, ready to accept connections.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads `cert` (a PEM chain, leaf first) and `key` (one PEM private
    /// key, not readable by every user).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let mode = std::fs::metadata(key)
            .map_err(|source| TlsError::Read {
                what: "the key",
                path: key.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o004 != 0 {
            return Err(TlsError::KeyExposed {
                path: key.to_path_buf(),
                mode: mode & 0o777,
            });
        }
        let cert_pem = read(cert, "the certificate")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|chain| !chain.is_empty())
            .ok_or_else(|| TlsError::Pem {
                what: "certificate",
                path: cert.to_path_buf(),
            })?;
        let key_pem = read(key, "the key")?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
            what: "private key",
            path: key.to_path_buf(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}
