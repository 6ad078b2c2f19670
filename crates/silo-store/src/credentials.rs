//! A service's credentials and the `<data_dir>/secrets/<service>.env` file
//! that carries them to the service.
//!
//! The file holds `DATABASE_URL` plus the per-field variables seed 004's
//! services read (`AUTH_DB_HOST`, `AUTH_DB_PORT`, ...); the names are
//! [`crate::secrets_layout`]'s.

use std::path::{Path, PathBuf};

use serde::Serialize;
use silo_manifest::{Engine, Service};

use crate::error::StoreError;
use crate::files;
use crate::secret::Secret;
use crate::secrets_layout::{self, DATABASE_URL, Field, GATEWAY_TOKEN};

/// Everything a service needs to reach its own store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub service: String,
    pub engine: Engine,
    /// Server host, or the socket folder; `None` for SQLite.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Database name (PostgreSQL) or file path (SQLite).
    pub database: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// The JSON shape of `silo credentials show --json`.
#[derive(Debug, Serialize)]
pub struct CredentialsView<'a> {
    pub service: &'a str,
    pub engine: Engine,
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    pub database: &'a str,
    pub user: Option<&'a str>,
    /// The password, or `***` unless it was asked for.
    pub password: Option<&'a str>,
    /// The connection URL, its password masked the same way.
    pub url: String,
}

/// What a masked password shows.
pub const MASK: &str = "***";

impl Credentials {
    /// The connection URL, password included: for the secrets file and the
    /// service, never for logs.
    pub fn url(&self) -> String {
        let password = self.password.as_ref().map(|p| url_encode(p.expose()));
        self.render_url(password.as_deref())
    }

    /// The URL with the password masked, safe to print.
    pub fn redacted_url(&self) -> String {
        self.render_url(self.password.as_ref().map(|_| MASK))
    }

    /// The URL with `password` (already URL-encoded) in its user info.
    fn render_url(&self, password: Option<&str>) -> String {
        match self.engine {
            Engine::Sqlite => format!("sqlite://{}", self.database),
            Engine::Postgres => {
                let host = self.host.as_deref().unwrap_or("localhost");
                let port = self.port.unwrap_or(5432);
                let user = url_encode(self.user.as_deref().unwrap_or_default());
                let password = password.map(|p| format!(":{p}")).unwrap_or_default();
                if host.starts_with('/') {
                    // A Unix socket folder goes in the query, as libpq reads it.
                    format!(
                        "postgres://{user}{password}@localhost:{port}/{}?host={}",
                        self.database,
                        url_encode(host)
                    )
                } else {
                    format!(
                        "postgres://{user}{password}@{host}:{port}/{}",
                        self.database
                    )
                }
            }
        }
    }

    /// The fields for display: the password and the URL's password are
    /// masked unless `reveal` (the user asked for them with `--reveal`).
    pub fn view(&self, reveal: bool) -> CredentialsView<'_> {
        CredentialsView {
            service: &self.service,
            engine: self.engine,
            host: self.host.as_deref(),
            port: self.port,
            database: &self.database,
            user: self.user.as_deref(),
            password: self
                .password
                .as_ref()
                .map(|p| if reveal { p.expose() } else { MASK }),
            url: if reveal {
                self.url()
            } else {
                self.redacted_url()
            },
        }
    }

    /// The env file's text.
    pub fn to_env_file(&self) -> String {
        let mut out = format!(
            "# silo credentials for service `{}` ({}). Private: mode 0600, never commit.\n",
            self.service, self.engine
        );
        if self.engine == Engine::Postgres {
            out.push_str(&format!(
                "# Written by `silo up`; `silo credentials rotate {}` replaces the password.\n",
                self.service
            ));
        }
        let mut line = |key: &str, value: &str| {
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        };
        line(DATABASE_URL, &self.url());
        let var = |field: Field| field.var(&self.service);
        match self.engine {
            Engine::Sqlite => {
                line(&var(Field::Path), &self.database);
            }
            Engine::Postgres => {
                line(&var(Field::Host), self.host.as_deref().unwrap_or(""));
                line(
                    &var(Field::Port),
                    &self.port.map(|p| p.to_string()).unwrap_or_default(),
                );
                line(&var(Field::User), self.user.as_deref().unwrap_or(""));
                line(
                    &var(Field::Password),
                    self.password.as_ref().map(Secret::expose).unwrap_or(""),
                );
                line(&var(Field::Name), &self.database);
            }
        }
        out
    }

    /// Parses an env file written by [`Credentials::to_env_file`].
    pub fn from_env_file(service: &Service, text: &str) -> Option<Credentials> {
        let get = |field: Field| -> Option<String> {
            let key = format!("{}=", field.var(&service.name));
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .map(str::to_string)
        };
        if let Some(path) = get(Field::Path) {
            return Some(Credentials {
                service: service.name.clone(),
                engine: Engine::Sqlite,
                host: None,
                port: None,
                database: path,
                user: None,
                password: None,
            });
        }
        Some(Credentials {
            service: service.name.clone(),
            engine: Engine::Postgres,
            host: get(Field::Host),
            port: get(Field::Port).and_then(|p| p.parse().ok()),
            database: get(Field::Name)?,
            user: get(Field::User),
            password: get(Field::Password).map(Secret::new),
        })
    }
}

/// The folder of secrets files.
#[derive(Debug, Clone)]
pub struct SecretsDir {
    dir: PathBuf,
}

impl SecretsDir {
    /// The secrets folder inside `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        SecretsDir {
            dir: data_dir.join(secrets_layout::SECRETS_FOLDER),
        }
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The secrets file of `service`.
    pub fn path(&self, service: &str) -> PathBuf {
        self.dir.join(secrets_layout::file_name(service))
    }

    /// The credentials file of a NATS user: `secrets/nats/<user>.env`.
    pub fn nats_path(&self, user: &str) -> PathBuf {
        self.dir
            .join(secrets_layout::NATS_FOLDER)
            .join(secrets_layout::file_name(user))
    }

    /// Reads a NATS user's credentials file; `None` when it does not
    /// exist.
    pub fn read_nats(&self, user: &str) -> Result<Option<String>, StoreError> {
        let path = self.nats_path(user);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Writes a NATS user's credentials file (0600, atomically; folders
    /// 0700), like a service's database credentials.
    pub fn write_nats(&self, user: &str, text: &str) -> Result<(), StoreError> {
        self.prepare()?;
        let dir = self.dir.join(secrets_layout::NATS_FOLDER);
        files::prepare_dir(&dir, true).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = self.nats_path(user);
        files::write_private_atomic(&path, text.as_bytes())
            .map_err(|source| StoreError::Io { path, source })
    }

    /// Reads a service's credentials; `None` when the file does not exist.
    pub fn read(&self, service: &Service) -> Result<Option<Credentials>, StoreError> {
        let path = self.path(&service.name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Credentials::from_env_file(service, &text)
                .map(Some)
                .ok_or(StoreError::BadSecretsFile { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Every password the service's file carries, distinct, in the order a
    /// service may read them: `<SVC>_DB_PASSWORD`, then the one inside
    /// `DATABASE_URL`. A hand-edited file may disagree with itself.
    pub fn passwords(&self, service: &Service) -> Result<Vec<Secret>, StoreError> {
        let path = self.path(&service.name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let field = format!("{}=", Field::Password.var(&service.name));
        let from_field = text.lines().find_map(|l| l.strip_prefix(field.as_str()));
        let url = format!("{DATABASE_URL}=");
        let from_url = text
            .lines()
            .find_map(|l| l.strip_prefix(url.as_str()))
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.password().map(percent_decode));
        let mut out: Vec<Secret> = Vec::new();
        for p in [from_field.map(str::to_string), from_url]
            .into_iter()
            .flatten()
        {
            if !out.iter().any(|s| s.expose() == p) {
                out.push(Secret::new(p));
            }
        }
        Ok(out)
    }

    /// Reads a service's credentials; a missing file is an error that says
    /// to run `silo up`.
    pub fn require(&self, service: &Service) -> Result<Credentials, StoreError> {
        self.read(service)?
            .ok_or_else(|| StoreError::NoCredentials {
                service: service.name.clone(),
                path: self.path(&service.name),
            })
    }

    /// Writes a service's credentials (0600, atomically; folder 0700).
    /// Returns false when the file already said exactly this.
    pub fn write(&self, creds: &Credentials) -> Result<bool, StoreError> {
        let path = self.path(&creds.service);
        let text = self.with_kept_lines(&creds.service, creds.to_env_file())?;
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            files::ensure_mode(&path, files::FILE_MODE).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
            return Ok(false);
        }
        self.prepare()?;
        files::write_private_atomic(&path, text.as_bytes())
            .map_err(|source| StoreError::Io { path, source })?;
        Ok(true)
    }

    /// Writes the new credentials to a staged file beside the real one;
    /// [`SecretsDir::commit`] moves it into place.
    pub fn stage(&self, creds: &Credentials) -> Result<PathBuf, StoreError> {
        self.prepare()?;
        let path = self.path(&creds.service);
        let text = self.with_kept_lines(&creds.service, creds.to_env_file())?;
        files::stage_private(&path, text.as_bytes())
            .map_err(|source| StoreError::Io { path, source })
    }

    /// `text` (a new credentials file) with the lines of the old file that
    /// are not database credentials (the gateway token): replacing a
    /// password must not take away the service's other credentials.
    fn with_kept_lines(&self, service: &str, mut text: String) -> Result<String, StoreError> {
        if let Some(token) = self.gateway_token(service)? {
            text.push_str(&format!("{GATEWAY_TOKEN}={}\n", token.expose()));
        }
        Ok(text)
    }

    /// `service`'s gateway token (`SILO_GATEWAY_TOKEN=` in its secrets
    /// file); `None` when the file or the line is missing.
    pub fn gateway_token(&self, service: &str) -> Result<Option<Secret>, StoreError> {
        let path = self.path(service);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let key = format!("{GATEWAY_TOKEN}=");
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .filter(|t| !t.is_empty())
            .map(Secret::new))
    }

    /// Gives `service`'s secrets file a gateway token when it has none
    /// (`silo up`). Returns whether one was added. A service without a
    /// secrets file (no store yet) gets none.
    pub fn ensure_gateway_token(&self, service: &str) -> Result<bool, StoreError> {
        if self.gateway_token(service)?.is_some() || !self.path(service).exists() {
            return Ok(false);
        }
        self.replace_gateway_token(service)?;
        Ok(true)
    }

    /// Replaces `service`'s gateway token with a fresh one (256 random
    /// bits, URL-safe), atomically; the old one stops working when the
    /// gateway next reads the file.
    pub fn replace_gateway_token(&self, service: &str) -> Result<(), StoreError> {
        let path = self.path(service);
        let text = std::fs::read_to_string(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let key = format!("{GATEWAY_TOKEN}=");
        let mut out: String = text
            .lines()
            .filter(|l| !l.starts_with(key.as_str()))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str(&format!("{key}{}\n", Secret::generate().expose()));
        files::write_private_atomic(&path, out.as_bytes())
            .map_err(|source| StoreError::Io { path, source })
    }

    /// Moves a staged file into place.
    pub fn commit(&self, service: &str, staged: &Path) -> Result<(), StoreError> {
        let path = self.path(service);
        files::commit_staged(staged, &path).map_err(|source| StoreError::Io { path, source })
    }

    /// `(service, file)` of every credentials file in the folder.
    pub fn services(&self) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let service = name.strip_suffix(".env")?;
                (!service.is_empty()).then(|| (service.to_string(), e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Staged files of `service` (`<service>.env.tmp<pid>`) that no running
    /// process will move into place: their writer was killed. Each holds a
    /// password, so they are removed, never left lying around.
    pub fn stale_staged(&self, service: &str) -> Vec<PathBuf> {
        let prefix = format!("{service}.env.tmp");
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let pid = name
                    .to_str()
                    .and_then(|n| n.strip_prefix(&prefix))
                    .and_then(|pid| pid.parse::<u32>().ok());
                // A staged file whose writer still runs is in use.
                pid.is_some_and(|pid| {
                    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
                })
            })
            .map(|e| e.path())
            .collect();
        out.sort();
        out
    }

    /// Removes [`SecretsDir::stale_staged`] files. Returns what it removed.
    pub fn remove_stale_staged(&self, service: &str) -> Result<Vec<PathBuf>, StoreError> {
        let stale = self.stale_staged(service);
        for path in &stale {
            std::fs::remove_file(path).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(stale)
    }

    /// Removes a service's secrets file. Returns whether there was one.
    pub fn remove(&self, service: &str) -> Result<bool, StoreError> {
        let path = self.path(service);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Makes the data dir and the secrets folder ready. The data dir is
    /// taken over (0700, a `.gitignore` of `*`) only when silo creates it;
    /// in a folder that existed before, the secrets folder carries the
    /// `.gitignore` instead, so secrets never reach a repository.
    fn prepare(&self) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let data_owned = match self.dir.parent() {
            Some(data_dir) => {
                files::prepare_dir(data_dir, false)
                    .map_err(io(data_dir))?
                    .owned
            }
            None => false,
        };
        files::prepare_dir(&self.dir, data_owned).map_err(io(&self.dir))?;
        Ok(())
    }
}

/// Undoes the `%XX` escapes of a URL's user info.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> Service {
        let text = format!("[project]\nname = \"p\"\n[services.{name}]\n");
        silo_manifest::Manifest::from_str(&text, Path::new("silo.toml"), &Default::default())
            .unwrap()
            .services
            .remove(0)
    }

    #[test]
    fn postgres_env_file_round_trips() {
        let creds = Credentials {
            service: "auth".into(),
            engine: Engine::Postgres,
            host: Some("db.internal".into()),
            port: Some(5433),
            database: "usecapsule_auth".into(),
            user: Some("usecapsule_auth".into()),
            password: Some(Secret::new("s3cr-et_")),
        };
        let text = creds.to_env_file();
        assert!(text.contains(
            "DATABASE_URL=postgres://usecapsule_auth:s3cr-et_@db.internal:5433/usecapsule_auth\n"
        ));
        assert!(text.contains("AUTH_DB_HOST=db.internal\n"));
        assert!(text.contains("AUTH_DB_PORT=5433\n"));
        assert!(text.contains("AUTH_DB_USER=usecapsule_auth\n"));
        assert!(text.contains("AUTH_DB_PASSWORD=s3cr-et_\n"));
        assert!(text.contains("AUTH_DB_NAME=usecapsule_auth\n"));
        assert_eq!(
            Credentials::from_env_file(&service("auth"), &text),
            Some(creds)
        );
    }

    #[test]
    fn redacted_url_hides_password() {
        let creds = Credentials {
            service: "a".into(),
            engine: Engine::Postgres,
            host: Some("/var/run/postgresql".into()),
            port: Some(5432),
            database: "a".into(),
            user: Some("a_svc".into()),
            password: Some(Secret::new("topsecret")),
        };
        assert_eq!(
            creds.redacted_url(),
            "postgres://a_svc:***@localhost:5432/a?host=%2Fvar%2Frun%2Fpostgresql"
        );
        assert!(!format!("{creds:?}").contains("topsecret"));
    }

    #[test]
    fn the_gateway_token_is_made_once_and_kept_by_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretsDir::new(dir.path());
        let svc = service("auth");
        // No secrets file, no token.
        assert!(!secrets.ensure_gateway_token("auth").unwrap());
        let mut creds = Credentials {
            service: "auth".into(),
            engine: Engine::Postgres,
            host: Some("db".into()),
            port: Some(5432),
            database: "auth".into(),
            user: Some("auth_svc".into()),
            password: Some(Secret::new("first")),
        };
        secrets.write(&creds).unwrap();
        assert_eq!(secrets.gateway_token("auth").unwrap(), None);
        assert!(secrets.ensure_gateway_token("auth").unwrap());
        let token = secrets.gateway_token("auth").unwrap().unwrap();
        assert_eq!(token.expose().len(), 43);
        assert!(!secrets.ensure_gateway_token("auth").unwrap());
        // A new password (write or stage + commit) keeps the token.
        creds.password = Some(Secret::new("second"));
        secrets.write(&creds).unwrap();
        assert_eq!(secrets.gateway_token("auth").unwrap(), Some(token.clone()));
        creds.password = Some(Secret::new("third"));
        let staged = secrets.stage(&creds).unwrap();
        secrets.commit("auth", &staged).unwrap();
        assert_eq!(secrets.gateway_token("auth").unwrap(), Some(token.clone()));
        assert_eq!(secrets.read(&svc).unwrap().unwrap(), creds);
        // Rotation replaces it, and only it.
        secrets.replace_gateway_token("auth").unwrap();
        let rotated = secrets.gateway_token("auth").unwrap().unwrap();
        assert_ne!(rotated, token);
        assert_eq!(secrets.read(&svc).unwrap().unwrap(), creds);
        let text = std::fs::read_to_string(secrets.path("auth")).unwrap();
        assert_eq!(text.matches("SILO_GATEWAY_TOKEN=").count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secrets.path("auth"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn view_masks_unless_revealed() {
        let creds = Credentials {
            service: "a".into(),
            engine: Engine::Postgres,
            host: Some("db".into()),
            port: Some(5432),
            database: "a".into(),
            user: Some("a_svc".into()),
            password: Some(Secret::new("topsecret")),
        };
        let masked = serde_json::to_string(&creds.view(false)).unwrap();
        assert!(!masked.contains("topsecret"), "{masked}");
        assert!(masked.contains(r#""password":"***""#), "{masked}");
        assert!(
            masked.contains("postgres://a_svc:***@db:5432/a"),
            "{masked}"
        );
        let shown = creds.view(true);
        assert_eq!(shown.password, Some("topsecret"));
        assert_eq!(shown.url, "postgres://a_svc:topsecret@db:5432/a");
    }
}
