//! age encryption of backup files: to the project's recipients (X25519
//! public keys, `age1...`) on the way out, with an identity file named by
//! [`IDENTITY_VAR`] on the way back.
//!
//! Files are encrypted and decrypted streaming, in age's 64 KiB chunks,
//! each authenticated: a changed or truncated file fails to decrypt rather
//! than yield altered data. Output goes to `<file>.part` and is renamed
//! into place only when complete, so a failed decryption leaves no
//! plaintext behind.
//!
//! The private key is read only from the identity file and never appears
//! in a message: age's own parser reports a bad line by number, not
//! content.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::x25519;

use crate::BackupError;

/// The environment variable naming the age identity file that decrypts
/// backups (`age-keygen -o key.txt` writes one).
pub const IDENTITY_VAR: &str = "SILO_BACKUP_IDENTITY_FILE";

/// The suffix of an encrypted backup file's name.
pub const SUFFIX: &str = ".age";

/// Parses X25519 recipients, naming the first that is bad (by position
/// and text: a recipient is a public key). An empty list is refused: an
/// encrypted backup nobody can read is worse than none.
pub fn parse_recipients<S: AsRef<str>>(list: &[S]) -> Result<Vec<x25519::Recipient>, BackupError> {
    if list.is_empty() {
        return Err(BackupError::NoRecipients);
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.as_ref().trim();
            s.parse::<x25519::Recipient>().map_err(|reason| {
                // A private key pasted by mistake is a secret: never echo it.
                let secret = s.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-");
                BackupError::BadRecipient {
                    position: i + 1,
                    recipient: if secret {
                        "AGE-SECRET-KEY-1... (hidden)".to_string()
                    } else {
                        s.to_string()
                    },
                    reason: if secret {
                        "this is a private key; give its public key (`age-keygen -y FILE` prints it), and take the private key out of the manifest".to_string()
                    } else if !s.starts_with("age1") {
                        "it does not start with age1".to_string()
                    } else {
                        reason.to_string()
                    },
                }
            })
        })
        .collect()
}

/// The identities of an identity file: the private keys that decrypt.
/// Cloning shares them.
#[derive(Clone)]
pub struct Identities {
    keys: Arc<Vec<Box<dyn age::Identity + Send + Sync>>>,
    /// Where they came from, for messages.
    source: String,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("source", &self.source)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Identities {
    /// Reads the identity file [`IDENTITY_VAR`] names; `what` (a backup's
    /// id) says in the error what could not be decrypted without it.
    pub fn from_env(what: &str) -> Result<Self, BackupError> {
        Self::from_var(std::env::var_os(IDENTITY_VAR).map(PathBuf::from), what)
    }

    /// As [`Identities::from_env`], with the variable's value given.
    pub fn from_var(value: Option<PathBuf>, what: &str) -> Result<Self, BackupError> {
        match value {
            Some(path) if !path.as_os_str().is_empty() => Self::from_file(&path),
            _ => Err(BackupError::IdentityNotSet {
                what: what.to_string(),
                var: IDENTITY_VAR,
            }),
        }
    }

    /// Reads the identities of an age identity file.
    pub fn from_file(path: &Path) -> Result<Self, BackupError> {
        let bad = |reason: String| BackupError::BadIdentity {
            path: path.display().to_string(),
            var: IDENTITY_VAR,
            reason,
        };
        let file = age::IdentityFile::from_file(path.to_string_lossy().into_owned())
            .map_err(|e| bad(e.to_string()))?;
        let keys = file.into_identities().map_err(|e| bad(e.to_string()))?;
        if keys.is_empty() {
            return Err(bad("it holds no identity".into()));
        }
        Ok(Identities {
            keys: Arc::new(keys),
            source: path.display().to_string(),
        })
    }
}

/// Encrypts the local file `from` into `to` for `recipients`, streaming.
pub async fn encrypt_file(
    from: &Path,
    to: &Path,
    recipients: &[x25519::Recipient],
) -> Result<(), BackupError> {
    if recipients.is_empty() {
        return Err(BackupError::NoRecipients);
    }
    let (from, to, recipients) = (from.to_owned(), to.to_owned(), recipients.to_vec());
    blocking(move || write_via_part(&to, |out| encrypt(&from, out, &recipients))).await
}

fn encrypt(
    from: &Path,
    out: &mut BufWriter<std::fs::File>,
    recipients: &[x25519::Recipient],
) -> Result<(), BackupError> {
    let mut input = std::fs::File::open(from)
        .map(BufReader::new)
        .map_err(|e| BackupError::io("opening", from, e))?;
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| BackupError::Io {
                action: "encrypting".into(),
                path: from.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
    let write_err = |e| BackupError::io("writing the encryption of", from, e);
    let mut writer = encryptor.wrap_output(out).map_err(write_err)?;
    copy(
        &mut input,
        &mut writer,
        |e| BackupError::io("reading", from, e),
        write_err,
    )?;
    writer.finish().map_err(write_err)?;
    Ok(())
}

/// Decrypts the local file `from` into `to` with `identities`, streaming.
/// A file none of the identities can open, and one changed after it was
/// written, are refused with the file named.
pub async fn decrypt_file(
    from: &Path,
    to: &Path,
    identities: &Identities,
) -> Result<(), BackupError> {
    let (from, to, identities) = (from.to_owned(), to.to_owned(), identities.clone());
    blocking(move || write_via_part(&to, |out| decrypt(&from, out, &identities))).await
}

fn decrypt(
    from: &Path,
    out: &mut BufWriter<std::fs::File>,
    identities: &Identities,
) -> Result<(), BackupError> {
    let file = from.display().to_string();
    let damaged = |reason: &str| BackupError::Decrypt {
        file: file.clone(),
        reason: reason.to_string(),
    };
    let input = std::fs::File::open(from)
        .map(BufReader::new)
        .map_err(|e| BackupError::io("opening", from, e))?;
    let decryptor = age::Decryptor::new_buffered(input).map_err(|e| match e {
        age::DecryptError::Io(e) => BackupError::io("reading", from, e),
        age::DecryptError::UnknownFormat => {
            damaged("it is not in a format this silo knows (a newer age?)")
        }
        _ => damaged("its age header is damaged or it is not an age file"),
    })?;
    if decryptor.is_scrypt() {
        return Err(damaged(
            "it is encrypted with a passphrase; silo's backups are encrypted to recipients",
        ));
    }
    let mut reader = decryptor
        .decrypt(
            identities
                .keys
                .iter()
                .map(|k| k.as_ref() as &dyn age::Identity),
        )
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupError::NoMatchingIdentity {
                file: file.clone(),
                identity: identities.source.clone(),
            },
            age::DecryptError::Io(e) => BackupError::io("reading", from, e),
            _ => damaged("its age header was changed after it was written"),
        })?;
    copy(
        &mut reader,
        out,
        |e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                BackupError::Decrypt {
                    file: file.clone(),
                    reason: "its contents were changed or cut short after it was written".into(),
                }
            }
            _ => BackupError::io("reading", from, e),
        },
        |e| BackupError::io("writing the decryption of", from, e),
    )
}

/// Copies `input` to `output` in 64 KiB pieces, mapping read and write
/// errors apart (a read error while decrypting is damage; a write error is
/// the disk).
fn copy<R: Read, W: Write>(
    input: &mut R,
    output: &mut W,
    read_err: impl Fn(std::io::Error) -> BackupError,
    write_err: impl Fn(std::io::Error) -> BackupError,
) -> Result<(), BackupError> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        output.write_all(&buf[..n]).map_err(&write_err)?;
    }
}

/// Encrypts each staged file `names` in `staging` to `<name>.age` and
/// removes the plaintext; returns the names to upload. The plaintext never
/// leaves this machine.
pub async fn encrypt_staged(
    staging: &Path,
    names: &[String],
    recipients: &[x25519::Recipient],
) -> Result<Vec<String>, BackupError> {
    let mut sealed = Vec::with_capacity(names.len());
    for name in names {
        let plain = staging.join(name);
        let name = format!("{name}{SUFFIX}");
        encrypt_file(&plain, &staging.join(&name), recipients).await?;
        tokio::fs::remove_file(&plain)
            .await
            .map_err(|e| BackupError::io("removing", &plain, e))?;
        sealed.push(name);
    }
    Ok(sealed)
}

/// Decrypts each downloaded `<name>.age` of `names` in `staging` into
/// `<name>`, where the engines read it, and removes the ciphertext.
pub async fn decrypt_staged(
    staging: &Path,
    names: &[String],
    identities: &Identities,
) -> Result<(), BackupError> {
    for name in names {
        let Some(plain) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        let sealed = staging.join(name);
        decrypt_file(&sealed, &staging.join(plain), identities)
            .await
            .map_err(|e| match e {
                // Named as the backup names it, not by its staging path.
                BackupError::Decrypt { reason, .. } => BackupError::Decrypt {
                    file: name.clone(),
                    reason,
                },
                BackupError::NoMatchingIdentity { identity, .. } => {
                    BackupError::NoMatchingIdentity {
                        file: name.clone(),
                        identity,
                    }
                }
                e => e,
            })?;
        let _ = tokio::fs::remove_file(&sealed).await;
    }
    Ok(())
}

/// Runs `write` into `<to>.part`, then renames it to `to`; on failure the
/// part file is removed.
fn write_via_part(
    to: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        // Only its owner may read it: plaintext or not, it holds a
        // store's rows.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)
            .map_err(|e| BackupError::io("creating", &part, e))?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush()
            .map_err(|e| BackupError::io("writing", &part, e))?;
        std::fs::rename(&part, to).map_err(|e| BackupError::io("renaming into place", to, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the encryption task does not panic")
}
