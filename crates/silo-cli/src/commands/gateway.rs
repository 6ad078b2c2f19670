//! `silo gateway`: serve every service's store over HTTP (silo-gateway).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use silo_gateway::{Gateway, GatewayConfig, JwtAuth};
use silo_manifest::{JwtKey, JwtSettings};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::GatewayArgs;
use crate::context::{CmdResult, Context, Failure};

pub async fn run(ctx: &Context, args: &GatewayArgs) -> CmdResult {
    let services: Vec<_> = ctx.select(&args.services)?.into_iter().cloned().collect();
    let config = GatewayConfig {
        pool_size: args.pool_size.max(1),
        statement_timeout: Duration::from_secs(args.statement_timeout.max(1)),
        jwt: ctx
            .manifest
            .gateway_jwt
            .as_ref()
            .map(jwt_auth)
            .transpose()?,
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&ctx.stores, &services, config)
        .map_err(|e| Failure::usage(miette::miette!("{e}")))?;
    for skipped in &gateway.skipped {
        errln!("not serving `{}`: {}", skipped.service, skipped.reason);
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
    outln!(
        "silo gateway listening on http://{addr} for {}",
        gateway.services().join(", ")
    );
    let shutdown = async {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        errln!("stopping: finishing the requests in flight");
    };
    silo_gateway::serve(listener, Arc::new(gateway), shutdown)
        .await
        .map_err(|e| Failure::usage(miette::miette!("the gateway stopped: {e}")))?;
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
