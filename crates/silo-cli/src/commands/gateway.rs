//! `silo gateway`: serve every service's store over HTTP (silo-gateway).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use silo_gateway::audit::Target;
use silo_gateway::{AuditLog, Gateway, GatewayConfig, ServeOptions, Stopped, Tls};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::GatewayArgs;
use crate::context::{CmdResult, Context, Failure};

pub async fn run(ctx: &Context, args: &GatewayArgs) -> CmdResult {
    let services: Vec<_> = ctx.select(&args.services)?.into_iter().cloned().collect();
    // Flags beat silo.toml's per-service limits, for every service.
    let config = GatewayConfig {
        pool_size: args.pool_size,
        statement_timeout: args.statement_timeout,
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
    outln!(
        "silo gateway listening on {}://{addr} for {}",
        if tls.is_some() { "https" } else { "http" },
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
    let gateway = Arc::new(gateway);
    let options = ServeOptions {
        drain_timeout: Duration::from_secs(args.drain_timeout),
        tls,
    };
    let stopped = silo_gateway::serve_with(listener, gateway.clone(), shutdown, options)
        .await
        .map_err(|e| Failure::usage(miette::miette!("the gateway stopped: {e}")))?;
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
