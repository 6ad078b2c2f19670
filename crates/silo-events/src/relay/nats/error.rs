//! What can go wrong on the nats bus.

use std::path::PathBuf;

use miette::Diagnostic;

/// An error of the nats bus: reaching the server, the stream and its
/// consumers, publishing, and the NATS users' credentials.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum NatsError {
    /// Reading or writing the data dir's secrets failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] silo_store::StoreError),

    /// The server could not be reached.
    #[error("NATS at {url} could not be reached: {reason}")]
    #[diagnostic(
        code(silo::events::nats_unreachable),
        help(
            "start nats-server with JetStream (`nats-server -js`), or point SILO_NATS_URL at one (default nats://127.0.0.1:4222)"
        )
    )]
    Unreachable { url: String, reason: String },

    /// The server refused the user's credentials.
    #[error("NATS at {url} refused user {user}: {reason}")]
    #[diagnostic(
        code(silo::events::nats_auth),
        help(
            "write the authorization block with `silo events nats-config --out FILE`, include it in the server's configuration and reload the server; the credentials are in the data dir's secrets/nats/"
        )
    )]
    Refused {
        url: String,
        user: String,
        reason: String,
    },

    /// The server has no JetStream.
    #[error("NATS at {url} has no JetStream: {reason}")]
    #[diagnostic(
        code(silo::events::no_jetstream),
        help(
            "start nats-server with JetStream enabled (`-js`, or `jetstream {{}}` in its configuration)"
        )
    )]
    NoJetStream { url: String, reason: String },

    /// `[events] nats_auth = true` but a user has no credentials yet.
    #[error("NATS user {user} has no credentials at {}", path.display())]
    #[diagnostic(
        code(silo::events::nats_no_credentials),
        help(
            "run `silo events nats-config --out FILE` to generate them and write the server's authorization block"
        )
    )]
    NoCredentials { user: String, path: PathBuf },

    /// A credentials file is not in the form silo writes.
    #[error("the NATS credentials file {} is not one silo wrote: {reason}", path.display())]
    #[diagnostic(
        code(silo::events::nats_bad_credentials),
        help("remove it and run `silo events nats-config` again to generate new credentials")
    )]
    BadCredentials { path: PathBuf, reason: String },

    /// A stream of the project's name exists but silo did not create it.
    #[error(
        "the JetStream stream {stream} exists but was not created by silo (description: {description:?})"
    )]
    #[diagnostic(
        code(silo::events::stream_not_ours),
        help(
            "silo never adopts a stream it did not create: rename the project in silo.toml, or remove the stream (`nats stream rm {stream}`) if it is unused"
        )
    )]
    StreamNotOurs { stream: String, description: String },

    /// The project's stream name is taken by another silo project whose
    /// name maps to the same one.
    #[error(
        "the JetStream stream {stream} belongs to silo project `{project}`, whose name maps to the same stream name as this project's"
    )]
    #[diagnostic(
        code(silo::events::stream_of_other_project),
        help(
            "a stream name keeps only letters, digits, `-` and `_` of the project's name (any other character becomes `_`): rename this project in silo.toml so its name maps to another stream, or give it its own nats-server; remove the stream (`nats stream rm {stream}`) only if project `{project}` is gone"
        )
    )]
    StreamOfOtherProject { stream: String, project: String },

    /// The server refused to create the project's stream.
    #[error("the server refused to create the JetStream stream {stream}: {reason}")]
    #[diagnostic(
        code(silo::events::stream_refused),
        help(
            "the server's reason is above: fix what it names (in silo.toml's [events], or on the server), then run again"
        )
    )]
    StreamRefused { stream: String, reason: String },

    /// The project's stream has settings silo cannot change.
    #[error("the JetStream stream {stream} has {setting} {found}; silo needs {expected}")]
    #[diagnostic(
        code(silo::events::stream_incompatible),
        help(
            "JetStream cannot change this on an existing stream: back its events up if you need them, remove it (`nats stream rm {stream}`) and run again to create it anew"
        )
    )]
    StreamIncompatible {
        stream: String,
        setting: String,
        found: String,
        expected: String,
    },

    /// The project's stream or a durable consumer is missing, and this
    /// user may not create it.
    #[error("{what} does not exist on the server, and user {user} may not create it")]
    #[diagnostic(
        code(silo::events::nats_not_set_up),
        help(
            "with `[events] nats_auth = true` the silo admin creates the stream and the consumers: run `silo events nats-config --apply` (or `silo events run` for every service) once"
        )
    )]
    NotSetUp { what: String, user: String },

    /// Replay was asked for a type the service does not consume.
    #[error("{service} does not consume {event_type}")]
    #[diagnostic(
        code(silo::events::not_consumed),
        help(
            "add it to the service's `consumes` in silo.toml, or pick one of the types it consumes"
        )
    )]
    NotConsumed { service: String, event_type: String },

    /// A replay's start time is outside what JetStream can compare.
    #[error("a replay since {since} cannot be asked of JetStream: {reason}")]
    #[diagnostic(
        code(silo::events::since_out_of_range),
        help(
            "JetStream keeps times as nanoseconds since 1970 in 64 bits (1677-09-21 to 2262-04-11): give a time in that range"
        )
    )]
    SinceOutOfRange { since: String, reason: String },

    /// A JetStream request failed.
    #[error("{action} failed: {reason}")]
    #[diagnostic(
        code(silo::events::nats),
        help(
            "check that nats-server runs with JetStream at SILO_NATS_URL and that its logs show no errors"
        )
    )]
    Request { action: String, reason: String },

    /// Writing the authorization block failed.
    #[error("writing {} failed: {source}", path.display())]
    #[diagnostic(code(silo::events::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NatsError {
    /// The exit code this error means: 2 for a server that cannot be
    /// reached or refuses the credentials, credentials not generated yet,
    /// or a request the command line got wrong; 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            NatsError::Unreachable { .. }
            | NatsError::Refused { .. }
            | NatsError::NoJetStream { .. }
            | NatsError::NotConsumed { .. }
            | NatsError::NoCredentials { .. }
            | NatsError::SinceOutOfRange { .. } => 2,
            NatsError::Store(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// Whether retrying later may help: the server or the connection went
    /// away, as opposed to a setting that stays wrong.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            NatsError::Unreachable { .. } | NatsError::Request { .. }
        )
    }
}

/// Maps a failed request to [`NatsError::Request`].
pub(crate) fn request<E: std::fmt::Display>(
    action: impl Into<String>,
) -> impl FnOnce(E) -> NatsError {
    let action = action.into();
    move |e| NatsError::Request {
        action,
        reason: e.to_string(),
    }
}
