//! The accept loop: each connection on a task of its own (its TLS
//! handshake too, so a slow client cannot hold up the others), and a
//! shutdown in two steps: stop taking connections at once, then give the
//! requests in flight until the drain timeout to finish, so a write that
//! began commits and is answered.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::{Gateway, Tls, router};

/// Longest a TLS handshake may take before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`serve_with`] serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// After the shutdown signal, how long requests in flight may take to
    /// finish before [`serve_with`] returns without them.
    pub drain_timeout: Duration,
    /// Serve HTTPS with this certificate; plain HTTP when `None`.
    pub tls: Option<Tls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            drain_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight finished.
    Drained,
    /// The drain timeout passed with requests still running; they go on
    /// until the process ends or they finish.
    DrainTimedOut,
}

/// Serves `gateway` on `listener` until `shutdown` completes, then stops
/// taking connections and lets requests in flight finish (at most the
/// default drain timeout, 30 s).
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, gateway, shutdown, ServeOptions::default())
        .await
        .map(|_| ())
}

/// Serves `gateway` on `listener` until `shutdown` completes. Then the
/// listener is closed at once (a new connection is refused), idle
/// connections are closed, and each connection with a request in flight
/// is closed after its answer, or when `options.drain_timeout` has passed.
pub async fn serve_with(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> io::Result<Stopped> {
    let app = router(gateway);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // Answers are small and written at once; waiting for more to
        // fill a segment only adds latency.
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let app = app.clone();
        match options.tls.clone() {
            None => {
                tokio::spawn(connection(stream, app, watcher));
            }
            Some(tls) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => connection(stream, app, watcher).await,
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    match tokio::time::timeout(options.drain_timeout, graceful.shutdown()).await {
        Ok(()) => Ok(Stopped::Drained),
        Err(_) => Ok(Stopped::DrainTimedOut),
    }
}

/// Serves one connection's requests until it closes or, after shutdown,
/// until its request in flight is answered.
async fn connection<IO>(io: IO, app: axum::Router, watcher: Watcher)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection ended: {e}");
    }
}

/// A failed accept: a connection that died before it was taken is
/// skipped; anything else (such as too many open files) is waited out a
/// moment so the loop does not spin, as hyper's own server does.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
