//! Reading a service's secrets file as it is, not as silo wrote it: the
//! audit must notice a file copied from another service, so it takes the
//! user and password from whatever keys the file holds.

use std::path::PathBuf;

use silo_manifest::Service;
use silo_store::SecretsDir;
use silo_store::secrets_layout::{DATABASE_URL, Field};

/// What a secrets file says, whoever wrote it.
#[derive(Debug, Clone, Default)]
pub struct SecretsFile {
    pub path: PathBuf,
    pub exists: bool,
    /// The login role the file uses.
    pub user: Option<String>,
    /// The password; compared, never shown.
    pub password: Option<String>,
    /// The database the file points at.
    pub database: Option<String>,
}

impl SecretsFile {
    /// Reads the service's secrets file; a missing file is `exists: false`.
    pub fn read(secrets: &SecretsDir, service: &Service) -> SecretsFile {
        let path = secrets.path(&service.name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return SecretsFile {
                path,
                ..SecretsFile::default()
            };
        };
        let mut file = SecretsFile {
            path,
            exists: true,
            ..SecretsFile::default()
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            // Any service's prefix: a file copied from another service is
            // read as it is.
            match Field::of_var(key) {
                Some(Field::User) => file.user = Some(value.to_string()),
                Some(Field::Password) => file.password = Some(value.to_string()),
                Some(Field::Name) => file.database = Some(value.to_string()),
                Some(_) => {}
                None if key == DATABASE_URL => {
                    if let Ok(url) = url::Url::parse(value)
                        && url.scheme().starts_with("postgres")
                    {
                        let decode = |s: &str| percent_decode(s).filter(|s| !s.is_empty());
                        file.user = file.user.take().or_else(|| decode(url.username()));
                        file.password = file
                            .password
                            .take()
                            .or_else(|| url.password().and_then(decode));
                        file.database = file
                            .database
                            .take()
                            .or_else(|| decode(url.path().trim_start_matches('/')));
                    }
                }
                None => {}
            }
        }
        file
    }
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%40c").as_deref(), Some("a/b@c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("end%4").as_deref(), Some("end%4"));
    }
}
