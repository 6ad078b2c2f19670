//! Where the nats bus is and who connects to it.
//!
//! The URL comes from `SILO_NATS_URL` (default `nats://127.0.0.1:4222`).
//! Without `[events] nats_auth` every connection is anonymous; with it,
//! each service's worker connects as that service's own NATS user and the
//! admin work (the stream, the durable consumers, replay) as the silo
//! admin, with the credentials `silo events nats-config` generated.
//! Every connection uses its user's own inbox prefix
//! ([`names::inbox_prefix`]), the only subjects that user may subscribe to
//! under auth.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use silo_manifest::Manifest;
use silo_store::SecretsDir;

use super::error::NatsError;
use super::{auth, names};

/// The environment variable that holds the server's URL.
pub const URL_ENV: &str = "SILO_NATS_URL";

/// The URL when [`URL_ENV`] is not set.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How long a JetStream request (a publish ack included) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach the bus.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The server's URL.
    pub url: String,
    /// Whether each user connects with its own credentials
    /// (`[events] nats_auth`).
    pub auth: bool,
    /// The data dir, whose `secrets/nats/` holds the users' credentials.
    pub data_dir: PathBuf,
    /// The project's name: the stream's and the subjects'.
    pub project: String,
    /// How long the server waits for a delivered message's ack before it
    /// hands the message out again, set on the durables silo creates
    /// (default 30 s). A worker killed holding messages delays the
    /// messages after them by this much.
    pub ack_wait: Duration,
}

impl NatsConfig {
    /// The bus of `manifest`, at `SILO_NATS_URL` or the default URL.
    pub fn from_env(manifest: &Manifest) -> Self {
        let url = std::env::var(URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        Self::new(manifest, url)
    }

    /// The bus of `manifest` at `url`.
    pub fn new(manifest: &Manifest, url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            auth: manifest.events.nats_auth,
            data_dir: manifest.data_dir.clone(),
            project: manifest.project.clone(),
            ack_wait: super::stream::ACK_WAIT,
        }
    }

    /// The project's stream.
    pub fn stream(&self) -> String {
        names::stream_name(&self.project)
    }

    /// Connects as `user` (a service's name, or [`names::ADMIN_USER`]):
    /// with that user's credentials when auth is on, anonymously
    /// otherwise. The client reconnects by itself when the server comes
    /// back.
    pub async fn connect(&self, user: &str) -> Result<Connection, NatsError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(match user {
                names::GATEWAY_USER => "silo gateway".to_string(),
                _ => format!("silo events {user}"),
            })
            .custom_inbox_prefix(names::inbox_prefix(user))
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            // Give up on nothing: a worker waits for the server to return.
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay);
        if self.auth {
            let secrets = SecretsDir::new(&self.data_dir);
            let password =
                auth::read_password(&secrets, user)?.ok_or_else(|| NatsError::NoCredentials {
                    user: user.to_string(),
                    path: secrets.nats_path(user),
                })?;
            options = options.user_and_password(user.to_string(), password.expose().to_string());
        }
        let client = options.connect(&self.url).await.map_err(|e| {
            use async_nats::ConnectErrorKind as K;
            match e.kind() {
                K::AuthorizationViolation | K::Authentication => NatsError::Refused {
                    url: redact(&self.url),
                    user: user.to_string(),
                    reason: e.to_string(),
                },
                _ => NatsError::Unreachable {
                    url: redact(&self.url),
                    reason: e.to_string(),
                },
            }
        })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            // The relay pipelines a whole batch before it waits.
            .max_ack_inflight(4096)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Connection {
            client,
            js,
            user: user.to_string(),
        })
    }
}

/// How long the client waits before its `attempt`th try to reach the server
/// in a row (from 1; the count starts again after each connection made).
///
/// The client sleeps this long before every try, the first one of a
/// connect or a reconnect included: the first goes at once (a pause there
/// would add itself to every worker's start, and to every `--once` run),
/// the later ones back off from 400 ms, doubling, up to 2 s, so a server
/// that is down is not hammered.
pub(crate) fn reconnect_delay(attempt: usize) -> Duration {
    match attempt {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis((100u64 << n.min(5) as u64).min(2_000)),
    }
}

/// `url` without a password, for messages.
pub fn redact(url: &str) -> String {
    match url
        .split_once("://")
        .map(|(s, rest)| (s, rest.rsplit_once('@')))
    {
        Some((scheme, Some((_, host)))) => format!("{scheme}://***@{host}"),
        _ => url.to_string(),
    }
}

/// A connection to the bus as one user.
#[derive(Clone)]
pub struct Connection {
    /// The core NATS client.
    pub client: async_nats::Client,
    /// JetStream on that client.
    pub js: jetstream::Context,
    /// Who connected.
    pub user: String,
}

impl Connection {
    /// The server's version, as it says in its greeting (`2.9.10`).
    pub fn server_version(&self) -> String {
        self.client.server_info().version
    }

    /// Whether the server is at least `major.minor`.
    pub fn server_at_least(&self, major: u64, minor: u64) -> bool {
        let version = self.server_version();
        let mut parts = version
            .split(['.', '-'])
            .map(|p| p.parse::<u64>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        found >= (major, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_try_goes_at_once_and_later_ones_back_off() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(400));
        assert_eq!(reconnect_delay(3), Duration::from_millis(800));
        assert_eq!(reconnect_delay(9), Duration::from_secs(2));
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact("nats://u:p@host:4222"), "nats://***@host:4222");
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
    }
}
