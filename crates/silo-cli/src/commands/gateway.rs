//! `silo gateway`: serve every service's store over HTTP (silo-gateway).

use std::process::ExitCode;
use std::sync::Arc;

use silo_gateway::{Gateway, GatewayConfig};
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
    let gateway = Gateway::new(&ctx.stores, &services, config)
        .map_err(|e| Failure::usage(miette::miette!("{e}")))?;
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
