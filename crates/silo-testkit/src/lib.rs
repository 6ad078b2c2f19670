//! Test support shared by silo's crates.
//!
//! - [`admin_url`]: the shared PostgreSQL server tests provision on.
//! - [`Prefix`]: unique names per test, and cleanup of whatever a test made
//!   on the shared server, even when the test fails.
//! - [`TempServer`]: a throwaway PostgreSQL server of the test's own, for
//!   checks the shared trust-auth server cannot make (passwords) and for
//!   `instance` isolation.
//! - [`NatsServer`]: a throwaway nats-server with JetStream, its own port
//!   and store folder, that a test can stop and start again.
//! - [`S3Server`]: a throwaway S3-compatible server (moto) with a bucket
//!   and the keys of a user it authenticates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, PgConnection};

pub mod s3;
pub use s3::S3Server;

/// Admin URL of the shared test server: `SILO_TEST_PG_ADMIN_URL`, or the
/// machine's local server.
pub fn admin_url() -> String {
    std::env::var("SILO_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("random");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A unique name prefix for one test. Dropping it removes every database
/// and role on the shared server whose name starts with it.
pub struct Prefix {
    pub value: String,
}

impl Prefix {
    /// A fresh prefix like `t3fa9c2_`.
    pub fn new() -> Self {
        Prefix {
            value: format!("t{}_", random_hex(4)),
        }
    }

    /// `name` with the prefix.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.value)
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let prefix = self.value.clone();
        // Drop runs inside or outside a runtime; a thread of its own works
        // in both.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(drop_prefixed(&admin_url(), &prefix));
        })
        .join();
    }
}

/// Drops every database and role whose name starts with `prefix`.
pub async fn drop_prefixed(admin_url: &str, prefix: &str) {
    let Ok(mut conn) = PgConnection::connect(admin_url).await else {
        return;
    };
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let dbs: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for db in dbs {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for role in roles {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP ROLE IF EXISTS \"{role}\""
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A PostgreSQL server of the test's own: `initdb --auth=scram-sha-256` in
/// a temporary folder, listening on a free port of 127.0.0.1 with its
/// socket in that folder. Stopped and removed on drop.
pub struct TempServer {
    dir: tempfile::TempDir,
    pub port: u16,
    /// Superuser password.
    pub password: String,
}

fn bindir() -> PathBuf {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config is installed (postgresql server packages)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs a server binary, as `postgres` when we are root (the server
/// refuses to run as root).
fn pg_command(program: &str) -> Command {
    let path = bindir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn give_to_postgres(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {} failed", path.display());
    }
}

impl TempServer {
    /// Starts a fresh server and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_configured(|_| String::new())
    }

    /// Starts a fresh server with `conf(data folder)` appended to its
    /// postgresql.conf (WAL archiving, say), and waits until it accepts
    /// connections.
    pub fn start_configured(conf: impl FnOnce(&Path) -> String) -> Self {
        let dir = Self::folder();
        let password = random_hex(16);
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).unwrap();
        let data = dir.path().join("data");
        give_to_postgres(dir.path());
        let out = pg_command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&pwfile);
        let extra = conf(&data);
        if !extra.is_empty() {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .expect("postgresql.conf");
            writeln!(file, "\n{extra}").expect("write postgresql.conf");
        }
        Self::start_in(dir, password)
    }

    /// An empty temporary folder the server's OS user owns: the place of
    /// a data folder that something else (a restore) fills before
    /// [`TempServer::start_in`] starts a server on it.
    pub fn folder() -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("silo-pg-")
            .tempdir()
            .expect("temp dir");
        give_to_postgres(dir.path());
        dir
    }

    /// Starts a server on the data folder `dir/data` as it is (a restored
    /// copy, say), whose superuser's password is `password`, on a free
    /// port with its socket in `dir`; waits until it accepts connections.
    pub fn start_in(dir: tempfile::TempDir, password: String) -> Self {
        let data = dir.path().join("data");
        let port = free_port();
        let log = dir.path().join("server.log");
        let out = pg_command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                dir.path().display()
            ))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // `pg_ctl -w` returned only once the server accepts connections.
        TempServer {
            dir,
            port,
            password,
        }
    }

    /// The folder of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's data folder (pg_hba.conf lives there).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Superuser URL, password included.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }
}

impl Drop for TempServer {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A nats-server of the test's own: JetStream on, a free port of
/// 127.0.0.1, its store in a temporary folder that outlives restarts, and
/// an optional configuration file (an authorization block, say). Stopped
/// on drop.
pub struct NatsServer {
    dir: tempfile::TempDir,
    pub port: u16,
    config: Option<PathBuf>,
    child: Option<std::process::Child>,
}

/// The nats-server binary: `SILO_TEST_NATS_SERVER`, or `nats-server` on
/// the PATH, or the Debian package's.
fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SILO_TEST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("/usr/sbin/nats-server")
}

impl NatsServer {
    /// Starts a server without authorization.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server with `config` as its configuration file's text.
    pub fn start_with_config(config: &str) -> Self {
        Self::start_with(Some(config))
    }

    fn start_with(config: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("silo-nats-")
            .tempdir()
            .expect("temp dir");
        let config = config.map(|text| {
            let path = dir.path().join("server.conf");
            std::fs::write(&path, text).expect("write the server's configuration");
            path
        });
        let mut server = NatsServer {
            dir,
            port: free_port(),
            config,
            child: None,
        };
        server.start_again();
        server
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and store folder, and
    /// waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let mut cmd = Command::new(nats_server_binary());
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(self.dir.path().join("store"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(self.dir.path().join("server.log")).expect("log"));
        self.child = Some(
            cmd.spawn()
                .expect("nats-server runs (SILO_TEST_NATS_SERVER)"),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start: {}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL: nothing is flushed on the way out) and
    /// waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
