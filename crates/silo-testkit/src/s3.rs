//! A throwaway S3-compatible server: moto in server mode, on a free port of
//! 127.0.0.1, with one bucket and the keys of one IAM user.
//!
//! By default moto takes any keys. [`S3Server::start_authenticating_or_skip`]
//! makes it check them: moto checks signatures once its first
//! `INITIAL_NO_AUTH_ACTION_COUNT` actions are spent, and the harness spends
//! them on making the user, its keys, its policy and the bucket, so every
//! request a test makes afterwards is authenticated as a real S3 server
//! would (a wrong secret gets `SignatureDoesNotMatch`). moto 5's server
//! computes the signature over the decoded query string, so a correctly
//! signed request whose query holds an escaped character (a list with
//! `prefix=a%2F`) is refused too: tests of listing use the default server,
//! and tests of refused keys use requests without a query (reading an
//! object).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The actions the harness makes before authentication starts: create the
/// user, its access key, its policy, and the bucket.
const SETUP_ACTIONS: u32 = 4;

/// The bucket every server starts with.
pub const BUCKET: &str = "silo-test";

/// The region the server's clients sign for.
pub const REGION: &str = "us-east-1";

/// A moto S3 server of the test's own. Killed on drop.
pub struct S3Server {
    dir: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    child: Option<Child>,
}

/// How to run moto's server: `SILO_TEST_MOTO_SERVER` (a `moto_server`
/// executable), or the interpreter of `python3` that imports `moto.server`
/// (`pip install 'moto[server]'`). The interpreter is resolved to its real
/// path so the child is the server itself, not a shim that a kill would
/// miss.
fn moto_command() -> Result<Command, String> {
    if let Ok(p) = std::env::var("SILO_TEST_MOTO_SERVER") {
        return Ok(Command::new(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, moto.server, flask_cors; print(sys.executable)",
        ])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("python3 does not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 cannot import moto's server ({}); install it with `pip install 'moto[server]'` (scripts/ensure-prereqs.sh does)",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ));
    }
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut cmd = Command::new(python);
    cmd.args(["-m", "moto.server"]);
    Ok(cmd)
}

impl S3Server {
    /// Starts a server, or says why it cannot and returns `None` so the
    /// test can skip. Under CI (`CI` set) a missing moto fails the test
    /// instead: CI's prerequisites install it, and a skip there would hide
    /// a missing install step.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        Self::start_or_skip_with(test, false)
    }

    /// As [`S3Server::start_or_skip`], with the keys checked (see the
    /// module documentation for what moto then refuses).
    pub fn start_authenticating_or_skip(test: &str) -> Option<Self> {
        Self::start_or_skip_with(test, true)
    }

    fn start_or_skip_with(test: &str, authenticate: bool) -> Option<Self> {
        match moto_command() {
            Ok(cmd) => Some(Self::start_with(cmd, authenticate)),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("{test} needs moto's S3 server: {why}")
            }
            Err(why) => {
                eprintln!("skipping {test}: {why}");
                None
            }
        }
    }

    fn start_with(mut cmd: Command, authenticate: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("silo-s3-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if authenticate {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS.to_string());
        } else {
            cmd.env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("moto's server runs");
        let mut server = S3Server {
            dir,
            port,
            bucket: BUCKET.to_string(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            child: Some(child),
        };
        server.wait_until_answering();
        server.set_up();
        server
    }

    /// Polls moto's own API (which spends no unauthenticated action) until
    /// it answers, for at most 30 seconds.
    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self.request("GET", "/moto-api/", &[], b"") {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("moto's server exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "moto's server did not answer within 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The user with full rights, its keys, and the bucket, made with the
    /// unauthenticated actions (moto routes them by the service named in
    /// the unsigned Authorization header's scope).
    fn set_up(&mut self) {
        let iam = unsigned_authorization("iam");
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let call = |server: &Self, body: &str| {
            let (status, text) = server
                .request(
                    "POST",
                    "/",
                    &[form[0], ("Authorization", &iam)],
                    body.as_bytes(),
                )
                .expect("moto answers");
            assert_eq!(status, 200, "IAM call {body} failed: {text}");
            text
        };
        call(self, "Action=CreateUser&UserName=silo&Version=2010-05-08");
        let key = call(
            self,
            "Action=CreateAccessKey&UserName=silo&Version=2010-05-08",
        );
        self.access_key_id = xml_value(&key, "AccessKeyId").expect("an access key id");
        self.secret_access_key = xml_value(&key, "SecretAccessKey").expect("a secret key");
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        call(
            self,
            &format!(
                "Action=PutUserPolicy&UserName=silo&PolicyName=all&PolicyDocument={policy}&Version=2010-05-08"
            ),
        );
        let (status, text) = self
            .request(
                "PUT",
                &format!("/{}", self.bucket),
                &[("Authorization", &unsigned_authorization("s3"))],
                b"",
            )
            .expect("moto answers");
        assert_eq!(status, 200, "creating the bucket failed: {text}");
    }

    /// The server's URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_start_matches('/'))
    }

    /// The environment an S3 client needs to reach this server as its user.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Kills the server (SIGKILL) and waits until it is gone. moto keeps
    /// everything in memory: what it held is lost.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's log so far: one line per request it answered.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Waits until a request line containing `needle` is in the log, for
    /// at most `within`; false if it never came.
    pub fn wait_for_request(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log().lines().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One plain HTTP/1.1 request to the server; its status and body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Authorization header that names `service` in its scope and carries
/// no valid signature: enough for moto to route an unauthenticated action.
fn unsigned_authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIASETUP/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_string())
}
