//! `silo events run` on the nats bus.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use silo_events::relay::nats::NatsConfig;
use silo_events::relay::nats::run::{Counters, RunOptions, run as run_bus, set_up};
use silo_manifest::Service;
use tokio::signal::unix::{SignalKind, signal};

use super::nats_failure;
use crate::cli::EventsRunArgs;
use crate::context::{CmdResult, Context, Failure, print_json, store_report};

pub async fn run(ctx: &Context, args: &EventsRunArgs) -> CmdResult {
    let services: Vec<&Service> = ctx
        .select(&args.services)?
        .into_iter()
        .filter(|s| silo_events::needs_tables(s))
        .collect();
    if services.is_empty() {
        errln!("silo events run: nothing to do: no service named publishes or consumes");
        return Ok(ExitCode::SUCCESS);
    }
    // Contracts load once: a newest contract that does not compile stops
    // the worker before anything moves (exit 2).
    let contracts = silo_events::contracts::Contracts::load(&ctx.manifest)
        .map_err(|e| Failure::usage(miette::Report::new(e)))?;
    if let Some(addr) = args.metrics_addr {
        super::run::serve_metrics(addr)?;
    }
    // A missing credentials file would fail every retry: refused before
    // anything runs (exit 2). Each service's own file is all the worker
    // needs of the stores, so a sidecar needs no admin URL.
    for service in &services {
        ctx.stores
            .credentials(service)
            .map_err(|e| Failure::usage(store_report("", &e)))?;
    }
    let config = NatsConfig::from_env(&ctx.manifest);
    // Run for every service: set the bus up (as the admin under auth).
    // For some: their own consumers, or under auth only check.
    let changes = set_up(&config, &ctx.manifest, &services, args.services.is_empty())
        .await
        .map_err(|e| nats_failure(e.into()))?;
    for change in &changes {
        errln!("{change}");
    }
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    errln!(
        "silo events run: nats bus, stream {}, {} ({}){}",
        config.stream(),
        if names.len() == 1 {
            "1 service"
        } else {
            "services"
        },
        names.join(", "),
        if args.once {
            ""
        } else {
            "; Ctrl-C or SIGTERM stops"
        }
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        errln!("stopping: the batches in flight finish, no new one starts");
        let _ = stop.send(true);
    });
    let counters: Vec<Counters> = services.iter().map(|_| Counters::default()).collect();
    run_bus(
        &ctx.stores,
        &ctx.manifest,
        &config,
        &contracts,
        &services,
        &counters,
        RunOptions { once: args.once },
        rx,
    )
    .await;
    signals.abort();
    let counts: Vec<Counts> = counters.iter().map(Counts::of).collect();
    let total = Counts::sum(&counts);
    if args.json {
        print_json(&serde_json::json!({
            "bus": "nats",
            "once": args.once,
            "published": total.published,
            "delivered": total.delivered,
            "dead": total.dead,
            "skipped": total.skipped,
            "errors": total.errors,
            "services": services
                .iter()
                .zip(&counts)
                .map(|(s, c)| serde_json::json!({
                    "service": s.name,
                    "published": c.published,
                    "delivered": c.delivered,
                    "dead": c.dead,
                    "skipped": c.skipped,
                    "errors": c.errors,
                }))
                .collect::<Vec<_>>(),
        }));
    } else {
        outln!(
            "{}: published {}, delivered {}, dead {}, skipped {}{}",
            if args.once { "done" } else { "stopped" },
            total.published,
            total.delivered,
            total.dead,
            total.skipped,
            match (total.errors, args.once) {
                (0, _) => String::new(),
                (n, true) => format!(", {n} failed (see the warnings)"),
                (n, false) => format!(", {n} error(s) retried (see the warnings)"),
            }
        );
    }
    let errors = total.errors;
    Ok(if args.once && errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One service's counters, read once the worker ended.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    published: u64,
    delivered: u64,
    dead: u64,
    /// Messages acked and left out: not silo events, or refused.
    skipped: u64,
    errors: u64,
}

impl Counts {
    fn of(c: &Counters) -> Self {
        Counts {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dead: c.dead.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    fn sum(all: &[Counts]) -> Self {
        all.iter().fold(Counts::default(), |t, c| Counts {
            published: t.published + c.published,
            delivered: t.delivered + c.delivered,
            dead: t.dead + c.dead,
            skipped: t.skipped + c.skipped,
            errors: t.errors + c.errors,
        })
    }
}
