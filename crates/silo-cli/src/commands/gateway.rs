//! `silo gateway`: serve every service's store over HTTP (silo-gateway).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use silo_events::relay::nats::NatsConfig;
use silo_events::relay::nats::connect::redact;
use silo_gateway::audit::Target;
use silo_gateway::nats::{NatsListener, NatsOptions};
use silo_gateway::{AuditLog, Gateway, GatewayConfig, JwtAuth, ServeOptions, Stopped, Tls};
use silo_manifest::{JwtKey, JwtSettings};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::GatewayArgs;
use crate::context::{CmdResult, Context, Failure};

pub async fn run(ctx: &Context, args: &GatewayArgs) -> CmdResult {
    let services: Vec<_> = ctx.select(&args.services)?.into_iter().cloned().collect();
    // Flags beat silo.toml's per-service limits, for every service.
    let config = GatewayConfig {
        pool_size: args.pool_size,
        statement_timeout: args.statement_timeout,
        jwt: ctx
            .manifest
            .gateway_jwt
            .as_ref()
            .map(jwt_auth)
            .transpose()?,
        ..GatewayConfig::default()
    };
    // Refused before anything else starts, so a bad key or log path is
    // the one thing the operator sees.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            Tls::from_pem_files(cert, key).map_err(|e| Failure::usage(miette::Report::new(e)))?,
        ),
        _ => None,
    };
    let audit = args
        .audit_log
        .as_deref()
        .map(|path| {
            AuditLog::open(&Target::parse(path)).map_err(|e| {
                Failure::usage(miette::miette!(
                    code = "silo::gateway::audit_log",
                    help = "--audit-log takes a file path in a folder that exists, or - for standard output",
                    "cannot open the audit log {path}: {e}"
                ))
            })
        })
        .transpose()?;
    let mut gateway = Gateway::new(&ctx.stores, &services, config)
        .map_err(|e| Failure::usage(miette::miette!("{e}")))?;
    if let Some(audit) = audit {
        gateway = gateway.with_audit_log(audit);
    }
    for skipped in &gateway.skipped {
        errln!("not serving `{}`: {}", skipped.service, skipped.reason);
    }
    for note in &gateway.notes {
        errln!("note: {note}");
    }
    if gateway.services().is_empty() {
        return Err(Failure::usage(miette::miette!(
            code = "silo::gateway::nothing_to_serve",
            help = "run `silo up` first: it makes each service's store and gateway token",
            "no service has a store and a gateway token to serve"
        )));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            Failure::usage(miette::miette!(
                code = "silo::gateway::listen",
                help = "pick another address with --listen HOST:PORT (port 0 picks a free one)",
                "cannot listen on {}: {e}",
                args.listen
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::usage(miette::miette!("{e}")))?;
    let nats = if args.nats {
        let options = NatsOptions {
            bus: NatsConfig::from_env(&ctx.manifest),
            concurrency: args.nats_concurrency.max(1),
        };
        let listener = NatsListener::bind(&options).await.map_err(nats_failure)?;
        Some((listener, redact(&options.bus.url)))
    } else {
        None
    };
    outln!(
        "silo gateway listening on {}://{addr} for {}",
        if tls.is_some() { "https" } else { "http" },
        gateway.services().join(", ")
    );
    if let Some((listener, url)) = &nats {
        let caller = if listener.trusts_nats_users() {
            "the NATS user"
        } else {
            "the Authorization header"
        };
        outln!(
            "silo gateway answering {} on NATS at {url} (caller: {caller})",
            listener.subjects()
        );
    }
    // One signal stops both faces.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            // No signals: serve until killed (`stop` stays alive).
            return std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        errln!("stopping: finishing the requests in flight");
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let gateway = Arc::new(gateway);
    let options = ServeOptions {
        drain_timeout: Duration::from_secs(args.drain_timeout),
        tls,
    };
    let http = silo_gateway::serve_with(
        listener,
        gateway.clone(),
        until_stopped(stopped.clone()),
        options,
    );
    let nats = async {
        match nats {
            Some((listener, _)) => {
                silo_gateway::nats::serve(listener, gateway.clone(), until_stopped(stopped.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    // SIGHUP reads every service's gateway token and credentials again
    // (after `silo credentials rotate`), without a restart.
    let reloads = async {
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        let mut stopped = stopped.clone();
        loop {
            tokio::select! {
                _ = hangups.recv() => {
                    let notes = gateway.reload(&ctx.stores);
                    errln!(
                        "reloaded the gateway tokens and credentials of {} services",
                        gateway.services().len()
                    );
                    for note in notes {
                        errln!("note: {note}");
                    }
                }
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    };
    let (http, nats, ()) = tokio::join!(http, nats, reloads);
    let stopped = http.map_err(|e| Failure::usage(miette::miette!("the gateway stopped: {e}")))?;
    nats.map_err(nats_failure)?;
    gateway.close();
    if stopped == Stopped::DrainTimedOut {
        errln!(
            "stopped with requests still in flight after {}s (--drain-timeout); their transactions roll back",
            args.drain_timeout
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The JWT verifier of `[gateway.jwt]`, its key read now so that a missing
/// or weak one stops the start (exit 2) rather than refusing every caller.
/// Neither the secret nor the key file's content is ever printed.
fn jwt_auth(settings: &JwtSettings) -> Result<JwtAuth, Failure> {
    let key = match &settings.key {
        JwtKey::SecretEnv(var) => std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Failure::usage(miette::miette!(
                    code = "silo::gateway::jwt_secret",
                    help = "export the HS256 secret in that variable, or name another with `secret_env` / a file with `secret_file` under [gateway.jwt]",
                    "[gateway.jwt] reads its secret from ${var}, which is not set"
                ))
            })?
            .into_bytes(),
        JwtKey::SecretFile(path) | JwtKey::PublicKey(path) => {
            let mut bytes = std::fs::read(path).map_err(|e| {
                Failure::usage(miette::miette!(
                    code = "silo::gateway::jwt_key",
                    help = "fix the path under [gateway.jwt] in silo.toml (relative to its folder)",
                    "cannot read the JWT key file {}: {e}",
                    path.display()
                ))
            })?;
            // A secret file written by `echo` ends with a newline that is
            // not part of the secret.
            if matches!(settings.key, JwtKey::SecretFile(_)) {
                while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                    bytes.pop();
                }
            }
            bytes
        }
    };
    JwtAuth::new(settings, &key).map_err(|e| {
        Failure::usage(miette::miette!(
            code = "silo::gateway::jwt_key",
            help = "HS256 needs a random secret of 32 bytes or more (`openssl rand -base64 32`); ES256 the issuer's PEM public key",
            "[gateway.jwt]: {e}"
        ))
    })
}

fn nats_failure(e: silo_events::relay::nats::NatsError) -> Failure {
    Failure {
        code: e.exit_code(),
        report: crate::context::store_report("", &e),
    }
}
