//! Fairness load generator: does one service's flood slow another's
//! requests? bench/gateway_fairness.sh runs it; see docs/gateway.md.
//!
//! Two services, `quiet` and `noisy`, each with its own store (1000 rows
//! in `items`), behind one in-process gateway on a loopback port. `quiet`
//! sends single-row reads by primary key at a steady rate (open loop:
//! latency counts from when each request was due, so a stalled gateway
//! cannot hide its stall); its latency is measured in three phases of
//! SECS seconds each:
//!
//! 1. `alone`: nothing else runs;
//! 2. `flood`: `noisy` sends 100-row reads as fast as FLOOD connections
//!    allow, with no limit;
//! 3. `flood-limited`: the same flood, `noisy` limited to NOISY_RPS
//!    requests per second (`requests_per_second` in silo.toml): the
//!    excess is refused with 429 before any store work.
//!
//! Usage: `fairness ENGINE [SECS] [QUIET_RPS] [FLOOD] [NOISY_RPS]`
//! (defaults: 5 s, 50 requests/s, 16 connections, 200 requests/s);
//! PostgreSQL at `SILO_PG_ADMIN_URL`. It prints one tab-separated line per
//! phase. The client speaks HTTP/1.1 over keep-alive connections by hand:
//! the gateway's answers always carry `Content-Length`, and a hand-written
//! reader adds no client-side work worth measuring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use silo_gateway::{Gateway, GatewayConfig};
use silo_manifest::{Manifest, Overrides, RateLimit};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ROWS: i64 = 1000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| a.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let engine = args.first().map(String::as_str).unwrap_or("sqlite");
    let secs = arg(1, 5);
    let quiet_rps = arg(2, 50);
    let flood = arg(3, 16) as usize;
    let noisy_rps = arg(4, 200) as u32;

    let dir = tempfile::tempdir().unwrap();
    let tag = format!("fair{}_", std::process::id());
    let mut text = format!("[project]\nname = \"fair\"\n[defaults]\nengine = \"{engine}\"\n");
    for name in ["quiet", "noisy"] {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{tag}{name}\"\nrole = \"{tag}{name}_svc\"\n"
        ));
    }
    let manifest =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let admin = std::env::var("SILO_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin),
        concurrency: 2,
    });
    let mut tokens = Vec::new();
    for svc in &manifest.services {
        let store = stores.engine(svc).unwrap();
        store
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        stores.secrets().ensure_gateway_token(&svc.name).unwrap();
        let sql = format!(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, level INTEGER);
             INSERT INTO items (id, name, level)
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             SELECT i, 'item ' || i, i % 10 FROM n;"
        );
        match stores.connect_as(svc, "bench").await.unwrap() {
            ServiceConnection::Postgres(mut c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .map(drop),
            ServiceConnection::Sqlite(mut c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .map(drop),
        }
        .unwrap();
        let token = stores.secrets().gateway_token(&svc.name).unwrap().unwrap();
        tokens.push(token.expose().to_string());
    }
    let (quiet_token, noisy_token) = (tokens[0].clone(), tokens[1].clone());
    let quiet_db = format!("{tag}quiet");
    let noisy_db = format!("{tag}noisy");

    println!(
        "engine\tphase\tquiet_n\tquiet_p50_ms\tquiet_p95_ms\tquiet_p99_ms\tnoisy_ok_per_s\tnoisy_429_per_s"
    );
    for phase in ["alone", "flood", "flood-limited"] {
        let mut services = manifest.services.clone();
        if phase == "flood-limited" {
            services[1].gateway.rate = Some(RateLimit {
                requests_per_second: noisy_rps,
                burst: noisy_rps,
            });
        }
        let gateway = Arc::new(Gateway::new(&stores, &services, GatewayConfig::default()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(silo_gateway::serve(listener, gateway, async {
            let _ = stop_rx.await;
        }));
        // Warm both pools and catalogs.
        for (token, db) in [(&quiet_token, &quiet_db), (&noisy_token, &noisy_db)] {
            let mut c = Client::connect(&addr).await;
            for i in 0..20 {
                c.post(token, &point_read(db, i + 1)).await;
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let limited = Arc::new(AtomicU64::new(0));
        let mut flooders = Vec::new();
        if phase != "alone" {
            for _ in 0..flood {
                let (addr, token, db) = (addr.clone(), noisy_token.clone(), noisy_db.clone());
                let (stop, ok, limited) = (stop.clone(), ok.clone(), limited.clone());
                flooders.push(tokio::spawn(async move {
                    let mut c = Client::connect(&addr).await;
                    let body = format!(
                        r#"{{"database":"{db}","query":{{"type":"select","table":"items","limit":100}}}}"#
                    );
                    while !stop.load(Ordering::Relaxed) {
                        match c.post(&token, &body).await {
                            200 => ok.fetch_add(1, Ordering::Relaxed),
                            429 => limited.fetch_add(1, Ordering::Relaxed),
                            other => panic!("noisy got {other}"),
                        };
                    }
                }));
            }
        }
        let latencies = quiet(&addr, &quiet_token, &quiet_db, quiet_rps, secs).await;
        stop.store(true, Ordering::Relaxed);
        for f in flooders {
            f.await.unwrap();
        }
        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
        let pct = |p: f64| {
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i].as_secs_f64() * 1000.0
        };
        println!(
            "{engine}\t{phase}\t{}\t{:.2}\t{:.2}\t{:.2}\t{:.0}\t{:.0}",
            latencies.len(),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            ok.load(Ordering::Relaxed) as f64 / secs as f64,
            limited.load(Ordering::Relaxed) as f64 / secs as f64,
        );
    }
    for svc in &manifest.services {
        stores.engine(svc).unwrap().drop_store(svc).await.unwrap();
    }
}

fn point_read(db: &str, id: i64) -> String {
    format!(
        r#"{{"database":"{db}","query":{{"type":"select","table":"items","where":{{"field":"id","operator":"=","value":{id}}}}}}}"#
    )
}

/// `quiet`'s steady reads: `rps` a second for `secs` seconds over four
/// connections; each latency counts from when its request was due.
async fn quiet(addr: &str, token: &str, db: &str, rps: u64, secs: u64) -> Vec<Duration> {
    const CONNECTIONS: u64 = 4;
    let per_connection = Duration::from_secs_f64(CONNECTIONS as f64 / rps as f64);
    let mut tasks = Vec::new();
    for k in 0..CONNECTIONS {
        let (addr, token, db) = (addr.to_string(), token.to_string(), db.to_string());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr).await;
            let start = tokio::time::Instant::now() + per_connection.mul_f64(k as f64 / 4.0);
            let mut ticks = tokio::time::interval_at(start, per_connection);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + Duration::from_secs(secs);
            let mut out = Vec::new();
            let mut id = k as i64;
            while Instant::now() < end {
                let due = ticks.tick().await;
                id = id % ROWS + 1;
                let status = c.post(&token, &point_read(&db, id)).await;
                assert_eq!(status, 200, "quiet was refused");
                out.push(due.elapsed());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream: BufReader::new(stream),
        }
    }

    /// POSTs a query and returns the status, the body read and dropped.
    async fn post(&mut self, token: &str, body: &str) -> u16 {
        let request = format!(
            "POST /v1/query HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status line");
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut sink = vec![0u8; length];
        self.stream.read_exact(&mut sink).await.unwrap();
        status
    }
}
