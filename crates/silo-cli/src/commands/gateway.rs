//! `silo gateway`: serve every service's store over HTTP and, with
//! `--nats`, NATS request/reply (silo-gateway).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use silo_events::relay::nats::NatsConfig;
use silo_events::relay::nats::connect::redact;
use silo_gateway::nats::{NatsListener, NatsOptions};
use silo_gateway::{Gateway, GatewayConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::GatewayArgs;
use crate::context::{CmdResult, Context, Failure};

pub async fn run(ctx: &Context, args: &GatewayArgs) -> CmdResult {
    let services: Vec<_> = ctx.select(&args.services)?.into_iter().cloned().collect();
    let config = GatewayConfig {
        pool_size: args.pool_size.max(1),
        statement_timeout: Duration::from_secs(args.statement_timeout.max(1)),
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
        "silo gateway listening on http://{addr} for {}",
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
    let http = silo_gateway::serve(listener, gateway.clone(), until_stopped(stopped.clone()));
    let nats = async {
        match nats {
            Some((listener, _)) => {
                silo_gateway::nats::serve(listener, gateway.clone(), until_stopped(stopped.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    let (http, nats) = tokio::join!(http, nats);
    http.map_err(|e| Failure::usage(miette::miette!("the gateway stopped: {e}")))?;
    nats.map_err(nats_failure)?;
    Ok(ExitCode::SUCCESS)
}

fn nats_failure(e: silo_events::relay::nats::NatsError) -> Failure {
    Failure {
        code: e.exit_code(),
        report: crate::context::store_report("", &e),
    }
}
