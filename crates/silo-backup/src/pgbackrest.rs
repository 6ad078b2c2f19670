//! Point-in-time recovery of a service's own server with pgBackRest
//! (`method = "pgbackrest"`, `instance` isolation only).
//!
//! silo does not reimplement physical backups: it runs the `pgbackrest`
//! binary with a configuration file of its own making, and keeps to three
//! rules:
//! - **One config file per stanza**, generated from the manifest at
//!   `<repository>/silo/<stanza>.conf` (folder 0700, file 0600), passed with
//!   `--config`. It lives in the repository because the server's
//!   `archive_command` reads it as the server's OS user, who must reach the
//!   repository anyway. It holds no secret: the superuser's password goes
//!   to pgBackRest through `PGPASSWORD` in its environment only.
//! - **pgBackRest runs as the owner of the data directory** (the server's
//!   OS user, usually `postgres`), as `archive_command` does: the
//!   repository's files then all belong to one user. silo run as root
//!   switches to that user for the child; run as another user, it refuses.
//! - **A restore goes into a new data directory.** Over an existing one
//!   only with `replace` (the CLI's `--replace --yes`), and never over the
//!   data directory of a running server.
//!
//! silo does not change the server's configuration: [`Pgbackrest::server_settings`]
//! gives the two lines the operator adds (`archive_mode`,
//! `archive_command`), and [`Pgbackrest::check`] tells whether they work.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use silo_manifest::{BackupPolicy, PgbackrestSettings};
use sqlx::{Connection, PgConnection};

use crate::BackupError;

/// Points silo at the `pgbackrest` binary to run instead of the PATH's.
pub const BINARY_VAR: &str = "SILO_PGBACKREST";

/// How pgBackRest reaches the server: the socket folder and port of the
/// server (pgBackRest connects through the Unix socket), and the
/// superuser it connects as.
#[derive(Clone)]
pub struct ServerAccess {
    pub socket_dir: PathBuf,
    pub port: u16,
    pub user: String,
    /// Given to pgBackRest as `PGPASSWORD`, never written down.
    password: Option<String>,
}

impl std::fmt::Debug for ServerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAccess")
            .field("socket_dir", &self.socket_dir)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What the server says about itself, read through its admin URL.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    pub data_directory: PathBuf,
    pub archive_mode: String,
    pub archive_command: String,
}

impl ServerAccess {
    /// Connects to the server at `admin_url` (a superuser's URL: the
    /// service's `url_env`), reads where its socket is, and checks that
    /// its data directory is `pg_data`: a backup of another server than
    /// the manifest names is refused before it starts.
    pub async fn discover(
        admin_url: &str,
        pg_data: &Path,
    ) -> Result<(ServerAccess, ServerFacts), BackupError> {
        let url = url::Url::parse(admin_url)
            .map_err(|e| BackupError::Unsupported(format!("the server URL is not a URL ({e})")))?;
        let decode = |s: &str| percent_decode(s);
        let user = if url.username().is_empty() {
            "postgres".to_string()
        } else {
            decode(url.username())
        };
        let password = url.password().map(decode);
        let sql = |action: &str| {
            let action = action.to_string();
            move |e: sqlx::Error| BackupError::Sql {
                action,
                target: mask(admin_url),
                source: e,
            }
        };
        let mut conn = PgConnection::connect(admin_url)
            .await
            .map_err(sql("connecting"))?;
        let (data_directory, sockets, port, archive_mode, archive_command): (
            String,
            String,
            String,
            String,
            String,
        ) = sqlx::query_as(
            "SELECT current_setting('data_directory'), current_setting('unix_socket_directories'), \
             current_setting('port'), current_setting('archive_mode'), current_setting('archive_command')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(sql("reading the server's settings"))?;
        let _ = conn.close().await;
        let data_directory = PathBuf::from(data_directory);
        let same = match (
            std::fs::canonicalize(&data_directory),
            std::fs::canonicalize(pg_data),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => data_directory == pg_data,
        };
        if !same {
            return Err(BackupError::Unsupported(format!(
                "`pg_data` is {}, but the server at the service's URL runs on {}: silo backs up only the server the manifest names",
                pg_data.display(),
                data_directory.display()
            )));
        }
        let Some(socket_dir) = sockets
            .split(',')
            .map(str::trim)
            .find(|s| s.starts_with('/'))
        else {
            return Err(BackupError::Unsupported(format!(
                "the server has no Unix socket folder (unix_socket_directories = '{sockets}'); pgBackRest connects through one: set unix_socket_directories"
            )));
        };
        let access = ServerAccess {
            socket_dir: PathBuf::from(socket_dir),
            port: port.parse().unwrap_or(5432),
            user,
            password,
        };
        let facts = ServerFacts {
            data_directory,
            archive_mode,
            archive_command,
        };
        Ok((access, facts))
    }

    /// For a server whose socket and superuser are known already.
    pub fn new(socket_dir: PathBuf, port: u16, user: &str, password: Option<String>) -> Self {
        ServerAccess {
            socket_dir,
            port,
            user: user.to_string(),
            password,
        }
    }
}

/// `postgres://user:secret@host` with the password masked.
fn mask(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "the server".into(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How long pgBackRest keeps full backups, from the service's policy:
/// `keep = N` keeps N full backups (and what depends on them), else
/// `retention = "30d"` keeps full backups for that many days (rounded
/// up); neither: pgBackRest keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Count(u32),
    Days(u64),
    Forever,
}

impl Retention {
    pub fn of(policy: &BackupPolicy) -> Retention {
        match (policy.keep, policy.retention) {
            (Some(n), _) => Retention::Count(n),
            (None, Some(d)) => Retention::Days(d.as_secs().div_ceil(86_400).max(1)),
            (None, None) => Retention::Forever,
        }
    }
}

/// One stanza: the service's server, its repository, and the config file
/// silo generates for both.
#[derive(Debug, Clone)]
pub struct Pgbackrest {
    settings: PgbackrestSettings,
    retention: Retention,
    binary: PathBuf,
    /// The uid and gid pgBackRest runs as when silo runs as root.
    run_as: Option<(u32, u32)>,
}

/// One backup in the repository, as `pgbackrest info` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhysicalBackup {
    /// pgBackRest's label (`20261128-051000F`, `..._20261128-061000I`).
    pub label: String,
    /// `full`, `diff` or `incr`.
    pub kind: String,
    /// Start and stop, Unix seconds.
    pub started: i64,
    pub stopped: i64,
    /// The database size it covers, and what it added to the repository.
    pub size_bytes: u64,
    pub repository_bytes: u64,
    /// The first and last WAL segment it needs.
    pub wal_start: Option<String>,
    pub wal_stop: Option<String>,
}

/// A stanza as `pgbackrest info` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct StanzaInfo {
    pub stanza: String,
    /// pgBackRest's status: `ok`, or what is wrong (`no valid backups`,
    /// `missing stanza path`).
    pub status: String,
    pub backups: Vec<PhysicalBackup>,
    /// The oldest and newest WAL segment archived.
    pub wal_min: Option<String>,
    pub wal_max: Option<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct PitrRestored {
    pub stanza: String,
    /// The backup the restore started from.
    pub backup: String,
    /// The recovery target as given to the server.
    pub target_time: String,
    pub data_dir: PathBuf,
    /// Whether the copy archives WAL (`false` for a copy beside the live
    /// server: `archive_mode = off` in its postgresql.auto.conf).
    pub archives: bool,
}

/// Where a restore writes.
#[derive(Debug, Clone)]
pub struct RestoreRequest<'a> {
    /// The recovery target, a time with its offset (see [`parse_target_time`]).
    pub target_time: &'a str,
    /// The data directory to restore into: a new or empty folder, or, with
    /// `replace`, any folder no running server uses.
    pub into: &'a Path,
    /// Overwrite a data directory that has files (pgBackRest's `--delta`).
    pub replace: bool,
}

fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { sys_geteuid() }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn sys_geteuid() -> u32;
}

fn pgbackrest_binary() -> PathBuf {
    if let Ok(p) = std::env::var(BINARY_VAR) {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("pgbackrest");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("pgbackrest")
}

impl Pgbackrest {
    /// The stanza of a service whose policy says `method = "pgbackrest"`.
    /// Finds the binary and the user to run it as (the owner of
    /// `pg_data`); refuses when silo runs as neither root nor that user.
    pub fn new(settings: &PgbackrestSettings, retention: Retention) -> Result<Self, BackupError> {
        for (what, path) in [
            ("the repository", &settings.repository),
            ("pg_data", &settings.pg_data),
        ] {
            let text = path.to_string_lossy();
            if !path.is_absolute() || text.contains(['\n', '\r']) {
                return Err(BackupError::Unsupported(format!(
                    "{what} `{}` must be an absolute path on one line",
                    path.display()
                )));
            }
        }
        let binary = pgbackrest_binary();
        let owner = std::fs::metadata(&settings.pg_data)
            .map_err(|e| BackupError::io("reading the data directory", &settings.pg_data, e))?;
        let euid = geteuid();
        let run_as = if euid == 0 {
            (owner.uid() != 0).then_some((owner.uid(), owner.gid()))
        } else if owner.uid() == euid {
            None
        } else {
            return Err(BackupError::Unsupported(format!(
                "the data directory {} belongs to uid {}, and silo runs as uid {euid}: pgBackRest must run as the server's OS user (run silo as that user, usually `postgres`, or as root)",
                settings.pg_data.display(),
                owner.uid()
            )));
        };
        Ok(Pgbackrest {
            settings: settings.clone(),
            retention,
            binary,
            run_as,
        })
    }

    /// The stanza's settings.
    pub fn settings(&self) -> &PgbackrestSettings {
        &self.settings
    }

    /// The folder of the generated config file and pgBackRest's lock and
    /// log folders.
    pub fn config_dir(&self) -> PathBuf {
        self.settings.repository.join("silo")
    }

    /// The generated config file, given to every pgBackRest command.
    pub fn config_path(&self) -> PathBuf {
        self.config_dir()
            .join(format!("{}.conf", self.settings.stanza))
    }

    /// The `archive_command` the server runs for each WAL segment.
    pub fn archive_command(&self) -> String {
        format!(
            "{} --config={} --stanza={} archive-push %p",
            self.binary.display(),
            self.config_path().display(),
            self.settings.stanza
        )
    }

    /// The lines the operator adds to the server's postgresql.conf (then
    /// restarts it): silo does not own that server's configuration.
    pub fn server_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("archive_mode", "on".to_string()),
            ("archive_command", self.archive_command()),
        ]
    }

    /// [`Self::server_settings`] as postgresql.conf lines.
    pub fn server_settings_text(&self) -> String {
        self.server_settings()
            .iter()
            .map(|(k, v)| format!("{k} = '{}'\n", v.replace('\'', "''")))
            .collect()
    }

    fn config_text(&self, server: Option<&ServerAccess>) -> String {
        let config_dir = self.config_dir();
        let mut text = String::from(
            "# Generated by silo from silo.toml; rewritten by every silo command.\n[global]\n",
        );
        text += &format!("repo1-path={}\n", self.settings.repository.display());
        match self.retention {
            Retention::Count(n) => text += &format!("repo1-retention-full={n}\n"),
            Retention::Days(d) => {
                text += &format!("repo1-retention-full-type=time\nrepo1-retention-full={d}\n");
            }
            Retention::Forever => {}
        }
        text += &format!(
            "lock-path={}\nlog-path={}\nstart-fast=y\narchive-timeout=60\n",
            config_dir.join("lock").display(),
            config_dir.join("log").display(),
        );
        text += &format!("\n[{}]\n", self.settings.stanza);
        text += &format!("pg1-path={}\n", self.settings.pg_data.display());
        if let Some(server) = server {
            text += &format!(
                "pg1-socket-path={}\npg1-port={}\npg1-user={}\n",
                server.socket_dir.display(),
                server.port,
                server.user
            );
        }
        text
    }

    /// Writes the config file (and creates the repository), owned by the
    /// user pgBackRest runs as: folders 0700, the file 0600, replaced in
    /// one rename so a running `archive_command` never reads half of it.
    /// Without `server`, the connection lines of the file there are kept.
    pub fn write_config(&self, server: Option<&ServerAccess>) -> Result<PathBuf, BackupError> {
        let config_dir = self.config_dir();
        let path = self.config_path();
        let text = match server {
            Some(_) => self.config_text(server),
            None => match std::fs::read_to_string(&path) {
                // Keep what a previous command learnt about the server.
                Ok(existing) if existing.contains("pg1-socket-path=") => {
                    let tail: String = existing
                        .lines()
                        .filter(|l| {
                            l.starts_with("pg1-socket-path=")
                                || l.starts_with("pg1-port=")
                                || l.starts_with("pg1-user=")
                        })
                        .map(|l| format!("{l}\n"))
                        .collect();
                    self.config_text(None) + &tail
                }
                _ => self.config_text(None),
            },
        };
        for dir in [
            &self.settings.repository,
            &config_dir,
            &config_dir.join("lock"),
            &config_dir.join("log"),
        ] {
            let existed = dir.exists();
            std::fs::create_dir_all(dir)
                .map_err(|e| BackupError::io("creating the folder", dir, e))?;
            if !existed {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| BackupError::io("setting the mode of", dir, e))?;
            }
            self.give(dir)?;
        }
        let tmp = config_dir.join(format!(".{}.conf.tmp", self.settings.stanza));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| BackupError::io("writing", &tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| BackupError::io("writing", &tmp, e))?;
        drop(file);
        self.give(&tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| BackupError::io("replacing", &path, e))?;
        self.check_reachable(&path)?;
        Ok(path)
    }

    /// Hands a file or folder to the user pgBackRest runs as.
    fn give(&self, path: &Path) -> Result<(), BackupError> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| BackupError::io("handing to the server's OS user", path, e))?;
        }
        Ok(())
    }

    /// The server's OS user reads the config file through every folder
    /// above it; a repository inside silo's private data dir (0700, owned
    /// by root) is out of its reach.
    fn check_reachable(&self, path: &Path) -> Result<(), BackupError> {
        let Some((uid, gid)) = self.run_as else {
            return Ok(());
        };
        let mut test = std::process::Command::new("test");
        std::os::unix::process::CommandExt::uid(&mut test, uid);
        std::os::unix::process::CommandExt::gid(&mut test, gid);
        let readable = test
            .arg("-r")
            .arg(path)
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if readable {
            return Ok(());
        }
        Err(BackupError::Unsupported(format!(
            "the server's OS user (uid {uid}) cannot read {}: a folder above the repository is closed to it; set `repository` to a folder that user can reach, such as /var/lib/pgbackrest/{}",
            path.display(),
            self.settings.stanza
        )))
    }

    /// Runs one pgBackRest command with the generated config; returns its
    /// standard output. `server` gives the password through `PGPASSWORD`.
    async fn run(
        &self,
        command: &str,
        args: &[String],
        server: Option<&ServerAccess>,
        help: &str,
    ) -> Result<String, BackupError> {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg(format!("--config={}", self.config_path().display()))
            .arg(format!("--stanza={}", self.settings.stanza))
            .args(args)
            .arg(command)
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(ServerAccess {
            password: Some(p), ..
        }) = server
        {
            cmd.env("PGPASSWORD", p);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
            // The server's OS user may not enter root's working folder.
            cmd.current_dir(self.config_dir());
        }
        let out = cmd.output().await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BackupError::Tool {
                    tool: "pgbackrest",
                    reason: format!("{} is not installed", self.binary.display()),
                    help: format!(
                        "install pgBackRest (Debian: apt-get install pgbackrest) or point {BINARY_VAR} at its binary"
                    ),
                }
            } else {
                BackupError::io("running", &self.binary, e)
            }
        })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(BackupError::PgbackrestFailed {
            what: format!(
                "pgbackrest {command} of stanza `{}` failed ({})",
                self.settings.stanza, out.status
            ),
            stderr,
            help: help.to_string(),
        })
    }

    /// Creates the stanza (nothing happens when it exists and matches the
    /// server).
    pub async fn stanza_create(&self, server: &ServerAccess) -> Result<(), BackupError> {
        self.write_config(Some(server))?;
        self.run(
            "stanza-create",
            &[],
            Some(server),
            "check that pg_data is the server's data directory and that the server's OS user can write the repository",
        )
        .await?;
        Ok(())
    }

    /// `pgbackrest check`: the server reaches the repository through
    /// `archive_command` (it switches WAL and waits for the segment).
    pub async fn check(&self, server: &ServerAccess) -> Result<(), BackupError> {
        self.write_config(Some(server))?;
        self.run("check", &[], Some(server), &self.archiving_help())
            .await?;
        Ok(())
    }

    fn archiving_help(&self) -> String {
        format!(
            "the server must archive its WAL to the repository: add to its postgresql.conf\n{}and restart it (`silo backup setup SERVICE` prints these lines)",
            self.server_settings_text()
        )
    }

    /// Takes a backup: full when the stanza has none, else incremental
    /// (pgBackRest's default), or `kind` (`full`, `diff`, `incr`).
    /// Expiry by the policy's retention follows, as pgBackRest does after
    /// every backup. Returns the new backup.
    pub async fn backup(
        &self,
        server: &ServerAccess,
        kind: Option<&str>,
    ) -> Result<PhysicalBackup, BackupError> {
        self.stanza_create(server).await?;
        let before = self.info().await?.backups;
        let args: Vec<String> = kind.iter().map(|k| format!("--type={k}")).collect();
        self.run("backup", &args, Some(server), &self.archiving_help())
            .await?;
        let after = self.info().await?.backups;
        after
            .into_iter()
            .rev()
            .find(|b| !before.iter().any(|old| old.label == b.label))
            .ok_or_else(|| {
                BackupError::Unsupported(
                    "pgbackrest backup succeeded but lists no new backup".into(),
                )
            })
    }

    /// The stanza's backups, oldest first, and its archived WAL.
    pub async fn info(&self) -> Result<StanzaInfo, BackupError> {
        self.write_config(None)?;
        let out = self
            .run(
                "info",
                &["--output=json".to_string()],
                None,
                "check that the repository is readable by the server's OS user",
            )
            .await?;
        parse_info(&out, &self.settings.stanza)
    }

    /// Restores the stanza as it was at `request.target_time` into
    /// `request.into`, from the newest backup that finished before then.
    /// The copy is left stopped, with `recovery.signal`, a
    /// `restore_command` reading WAL from the repository, and
    /// `recovery_target_action = 'promote'`: started, it replays up to the
    /// target and opens for writes. A copy beside the live server does not
    /// archive (`archive_mode = off`), so that it never writes into the
    /// live server's stanza.
    pub async fn restore(&self, request: &RestoreRequest<'_>) -> Result<PitrRestored, BackupError> {
        let target = parse_target_time(request.target_time)?;
        let into = absolute(request.into);
        let live = same_dir(&into, &self.settings.pg_data);
        refuse_running(&into)?;
        let has_files = std::fs::read_dir(&into)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if (live || has_files) && !request.replace {
            return Err(BackupError::RestoreRefused {
                reason: if live {
                    format!(
                        "{} is the live data directory of the service's server",
                        into.display()
                    )
                } else {
                    format!("{} is not empty", into.display())
                },
                help: "restore into a new folder with --into DIR; to overwrite this one, stop its server and add --replace --yes".into(),
            });
        }
        let info = self.info().await?;
        let target_secs = target.timestamp();
        let Some(set) = info.backups.iter().rev().find(|b| b.stopped <= target_secs) else {
            return Err(BackupError::NotFound {
                what: match info.backups.first() {
                    Some(first) => format!(
                        "no backup of stanza `{}` finished before {} (the oldest finished at {})",
                        self.settings.stanza,
                        request.target_time,
                        unix_to_text(first.stopped)
                    ),
                    None => format!("stanza `{}` has no backup", self.settings.stanza),
                },
                destination: self.settings.repository.display().to_string(),
            });
        };
        if !into.exists() {
            std::fs::create_dir_all(&into)
                .map_err(|e| BackupError::io("creating the data directory", &into, e))?;
            std::fs::set_permissions(&into, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| BackupError::io("setting the mode of", &into, e))?;
            self.give(&into)?;
        }
        let target_text = target.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
        let mut args = vec![
            format!("--pg1-path={}", into.display()),
            format!("--set={}", set.label),
            "--type=time".to_string(),
            format!("--target={target_text}"),
            "--target-action=promote".to_string(),
        ];
        if request.replace {
            args.push("--delta".to_string());
        }
        self.run(
            "restore",
            &args,
            None,
            "the data directory was not restored; fix the cause above and run the restore again (into an empty folder)",
        )
        .await?;
        let archives = live;
        if !archives {
            let auto = into.join("postgresql.auto.conf");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&auto)
                .map_err(|e| BackupError::io("writing", &auto, e))?;
            file.write_all(
                b"# Added by silo: a restored copy beside the live server must not archive into its stanza.\narchive_mode = 'off'\n",
            )
            .map_err(|e| BackupError::io("writing", &auto, e))?;
        }
        Ok(PitrRestored {
            stanza: self.settings.stanza.clone(),
            backup: set.label.clone(),
            target_time: target_text,
            data_dir: into,
            archives,
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => absolute(a) == absolute(b),
    }
}

/// Refuses a data directory a server runs on: `postmaster.pid` names a
/// live process.
fn refuse_running(dir: &Path) -> Result<(), BackupError> {
    let Ok(pid_file) = std::fs::read_to_string(dir.join("postmaster.pid")) else {
        return Ok(());
    };
    let pid = pid_file.lines().next().unwrap_or("").trim();
    let running = !pid.is_empty()
        && pid.chars().all(|c| c.is_ascii_digit())
        && Path::new("/proc").join(pid).exists();
    if running {
        return Err(BackupError::RestoreRefused {
            reason: format!(
                "a PostgreSQL server (pid {pid}) is running on {}; a restore never overwrites a running server's data directory",
                dir.display()
            ),
            help: "restore into a new folder with --into DIR, or stop the server first and then use --replace --yes".into(),
        });
    }
    Ok(())
}

/// Unix seconds as `2026-11-28 05:10:00+00`.
pub fn unix_to_text(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S+00").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// Reads a recovery target time: `2026-11-28 05:10:00+00`, with optional
/// fractions of a second, an offset as `+HH`, `+HHMM` or `+HH:MM`, or
/// `Z`, and `T` or a space between date and time. The offset is required:
/// a time without one would be read in the server's time zone, which silo
/// cannot see from here.
pub fn parse_target_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, BackupError> {
    let t = text.trim();
    let normalized = t.replacen('T', " ", 1);
    let normalized = match normalized.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => normalized,
    };
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z"] {
        if let Ok(parsed) = chrono::DateTime::parse_from_str(&normalized, format) {
            return Ok(parsed.with_timezone(&chrono::Utc));
        }
    }
    Err(BackupError::BadTargetTime {
        text: text.to_string(),
    })
}

#[derive(Deserialize)]
struct RawStanza {
    name: String,
    #[serde(default)]
    status: Option<RawStatus>,
    #[serde(default)]
    backup: Vec<RawBackup>,
    #[serde(default)]
    archive: Vec<RawArchive>,
}

#[derive(Deserialize)]
struct RawStatus {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct RawArchive {
    min: Option<String>,
    max: Option<String>,
}

#[derive(Deserialize)]
struct RawBackup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: RawTimes,
    #[serde(default)]
    info: Option<RawInfo>,
    #[serde(default)]
    archive: Option<RawArchiveRange>,
}

#[derive(Deserialize)]
struct RawTimes {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct RawInfo {
    #[serde(default)]
    size: u64,
    #[serde(default)]
    repository: Option<RawRepoInfo>,
}

#[derive(Deserialize)]
struct RawRepoInfo {
    #[serde(default)]
    delta: u64,
}

#[derive(Deserialize)]
struct RawArchiveRange {
    start: Option<String>,
    stop: Option<String>,
}

/// Reads `pgbackrest info --output=json` for one stanza.
pub fn parse_info(json: &str, stanza: &str) -> Result<StanzaInfo, BackupError> {
    let stanzas: Vec<RawStanza> = serde_json::from_str(json).map_err(|e| {
        BackupError::Unsupported(format!(
            "pgbackrest info printed JSON silo cannot read: {e}"
        ))
    })?;
    let Some(raw) = stanzas.into_iter().find(|s| s.name == stanza) else {
        return Ok(StanzaInfo {
            stanza: stanza.to_string(),
            status: "missing stanza".into(),
            backups: Vec::new(),
            wal_min: None,
            wal_max: None,
        });
    };
    let mut backups: Vec<PhysicalBackup> = raw
        .backup
        .into_iter()
        .map(|b| PhysicalBackup {
            label: b.label,
            kind: b.kind,
            started: b.timestamp.start,
            stopped: b.timestamp.stop,
            size_bytes: b.info.as_ref().map_or(0, |i| i.size),
            repository_bytes: b
                .info
                .as_ref()
                .and_then(|i| i.repository.as_ref())
                .map_or(0, |r| r.delta),
            wal_start: b.archive.as_ref().and_then(|a| a.start.clone()),
            wal_stop: b.archive.as_ref().and_then(|a| a.stop.clone()),
        })
        .collect();
    backups.sort_by_key(|b| b.stopped);
    Ok(StanzaInfo {
        stanza: raw.name,
        status: raw.status.map_or_else(String::new, |s| s.message),
        backups,
        wal_min: raw.archive.iter().filter_map(|a| a.min.clone()).min(),
        wal_max: raw.archive.iter().filter_map(|a| a.max.clone()).max(),
    })
}

/// Waits until the server has archived the WAL segment `segment` (or a
/// later one), polling `pg_stat_archiver` up to `bound`.
pub async fn wait_archived(
    conn: &mut PgConnection,
    segment: &str,
    bound: Duration,
) -> Result<(), BackupError> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        let (archived, failed): (Option<String>, Option<String>) =
            sqlx::query_as("SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| BackupError::Sql {
                    action: "reading pg_stat_archiver".into(),
                    target: "the server".into(),
                    source: e,
                })?;
        // Segment names of one timeline sort in WAL order.
        if archived
            .as_deref()
            .is_some_and(|a| a[8.min(a.len())..] >= segment[8.min(segment.len())..])
        {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(BackupError::Unsupported(format!(
                "WAL segment {segment} was not archived within {}s (last archived: {}, last failed: {})",
                bound.as_secs(),
                archived.as_deref().unwrap_or("none"),
                failed.as_deref().unwrap_or("none")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_times() {
        let t = parse_target_time("2026-11-28 05:10:00+00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T05:10:00+00:00");
        let t = parse_target_time("2026-11-28T07:10:00.25+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T05:10:00.250+00:00");
        let t = parse_target_time("2026-11-28T05:10:00Z").unwrap();
        assert_eq!(t, parse_target_time("2026-11-28 06:10+01").unwrap());
        for bad in ["2026-11-28 05:10:00", "yesterday", "2026-11-28", ""] {
            assert!(parse_target_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn info_json() {
        let json = r#"[{"name":"battles","status":{"code":0,"message":"ok"},
          "archive":[{"id":"15-1","min":"000000010000000000000003","max":"000000010000000000000007"}],
          "backup":[
            {"label":"20261128-051000F_20261128-061000I","type":"incr","timestamp":{"start":200,"stop":210},
             "info":{"size":100,"repository":{"delta":10,"size":10}},"archive":{"start":"000000010000000000000006","stop":"000000010000000000000006"}},
            {"label":"20261128-051000F","type":"full","timestamp":{"start":100,"stop":110},
             "info":{"size":100,"repository":{"delta":40,"size":40}},"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"}}]}]"#;
        let info = parse_info(json, "battles").unwrap();
        assert_eq!(info.status, "ok");
        assert_eq!(info.backups.len(), 2);
        assert_eq!(info.backups[0].kind, "full");
        assert_eq!(info.backups[1].repository_bytes, 10);
        assert_eq!(info.wal_max.as_deref(), Some("000000010000000000000007"));
        assert_eq!(parse_info(json, "other").unwrap().status, "missing stanza");
    }

    #[test]
    fn retention_from_the_policy() {
        let policy = |keep, retention| BackupPolicy {
            schedule: None,
            retention,
            keep,
            destination: silo_manifest::BackupDestination::Local("/b".into()),
            encrypt: false,
            compression: None,
            verify_every: None,
            method: silo_manifest::BackupMethod::Dump,
        };
        assert_eq!(Retention::of(&policy(Some(3), None)), Retention::Count(3));
        assert_eq!(
            Retention::of(&policy(None, Some(Duration::from_secs(36 * 3600)))),
            Retention::Days(2)
        );
        assert_eq!(Retention::of(&policy(None, None)), Retention::Forever);
    }

    #[test]
    fn a_running_server_is_detected_by_its_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        refuse_running(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("postmaster.pid"),
            format!("{}\n/data\n", std::process::id()),
        )
        .unwrap();
        assert!(refuse_running(dir.path()).is_err());
        // A stale file of a process long gone.
        std::fs::write(dir.path().join("postmaster.pid"), "999999999\n").unwrap();
        refuse_running(dir.path()).unwrap();
    }
}
