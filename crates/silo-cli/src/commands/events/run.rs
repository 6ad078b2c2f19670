//! `silo events run`: the events worker, until Ctrl-C or SIGTERM (or once).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use silo_events::worker::embedded::{Plan, Worker};
use silo_events::worker::{Status, metrics};
use silo_manifest::Bus;

use crate::cli::EventsRunArgs;
use crate::context::{CmdResult, Context, Failure, Shown, exit_code_all, print_json, store_report};
use crate::interrupt;

pub async fn run(ctx: &Context, args: &EventsRunArgs) -> CmdResult {
    // First: a signal from here on stops the worker instead of killing it.
    interrupt::install_stop();
    // Unknown names are a usage error before anything runs.
    ctx.select(&args.services)?;
    match ctx.manifest.events.bus {
        Bus::Embedded => embedded(ctx, args).await,
        Bus::Nats => super::run_nats::run(ctx, args).await,
    }
}

async fn embedded(ctx: &Context, args: &EventsRunArgs) -> CmdResult {
    let plan = Plan::new(&ctx.manifest, &args.services);
    if plan.routes.is_empty() && plan.publishers.is_empty() {
        errln!(
            "silo events run: nothing to do: no service {} a type that silo.toml lists as published",
            if args.services.is_empty() {
                "publishes or consumes"
            } else {
                "named consumes"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    // A missing credentials file would fail every retry: refused before
    // anything runs, like a manifest that does not match the stores (exit 2).
    plan.check(&ctx.stores, &ctx.manifest)
        .map_err(|e| Failure::usage(store_report("", &e)))?;
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr)?;
    }
    let routes: Vec<String> = plan.routes.iter().map(|r| r.label()).collect();
    errln!(
        "silo events run: embedded bus, {} route{}{}{}",
        routes.len(),
        if routes.len() == 1 { "" } else { "s" },
        if routes.is_empty() {
            String::new()
        } else {
            format!(" ({})", routes.join(", "))
        },
        if args.once {
            ""
        } else {
            "; Ctrl-C or SIGTERM stops"
        }
    );
    // Contracts load once: a newest contract that does not compile stops
    // the worker before anything moves (exit 2).
    let contracts = silo_events::contracts::Contracts::load(&ctx.manifest)
        .map_err(|e| Failure::usage(miette::Report::new(e)))?;
    let worker = Worker::new(
        ctx.stores.clone(),
        Arc::new(ctx.manifest.clone()),
        plan,
        Arc::new(contracts),
    )
    .once(args.once);
    let line = status_line(worker.status());
    let token = interrupt::token();
    let summary = worker.run(async move { token.cancelled().await }).await;
    if let Some(line) = line {
        line.abort();
        // Its drop clears the line: before the summary is printed.
        let _ = line.await;
    }
    let code = if args.once {
        exit_code_all(summary.failures.iter().map(|(_, e)| e))
    } else {
        ExitCode::SUCCESS
    };
    let line = summary.line();
    let json = args.json.then(|| {
        serde_json::json!({
            "bus": "embedded",
            "once": args.once,
            "delivered": summary.delivered(),
            "retired": summary.retired,
            "failing": summary.failures.len(),
            "routes": summary
                .routes
                .iter()
                .map(|(r, n)| serde_json::json!({
                    "publisher": r.publisher,
                    "consumer": r.consumer,
                    "delivered": n,
                }))
                .collect::<Vec<_>>(),
        })
    });
    for (what, error) in summary.failures {
        errln!(
            "{:?}",
            miette::Report::new(Shown::new(format!("{what}: "), error))
        );
    }
    match json {
        Some(json) => print_json(&json),
        None => outln!("{}: {line}", if args.once { "done" } else { "stopped" }),
    }
    Ok(code)
}

/// Serves the worker's metrics at `addr` (`GET /metrics`, any path).
pub(super) fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), Failure> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(metrics::BATCH_SECONDS.into()),
            metrics::BATCH_BUCKETS,
        )
        .and_then(PrometheusBuilder::install)
        .map_err(|e| {
            Failure::usage(miette::miette!(
                help = "pick a free address with --metrics-addr, such as 127.0.0.1:9464",
                "cannot serve metrics at {addr}: {e}"
            ))
        })?;
    metrics::describe();
    Ok(())
}

/// A live line on stderr, when it is a terminal: delivered, backlog, lag
/// and failing routes. The task ends when aborted.
fn status_line(status: Arc<Status>) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    Some(tokio::spawn(async move {
        struct Clear(ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let bar = Clear(bar);
        loop {
            let failing = status.failing();
            bar.0.set_message(format!(
                "delivered {} · backlog {} · lag {:.1}s · retired {}{}",
                status.delivered(),
                status.backlog(),
                status.lag().as_secs_f64(),
                status.retired(),
                if failing > 0 {
                    format!(" · {failing} failing (see the warnings)")
                } else {
                    String::new()
                }
            ));
            bar.0.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}
