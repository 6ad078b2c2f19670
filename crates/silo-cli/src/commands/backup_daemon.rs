//! `silo backup daemon`: every scheduled service backed up on its own
//! schedule until Ctrl-C or SIGTERM, with metrics for Prometheus. The
//! logic is silo_backup::daemon's; this wires it to the project, the
//! system clock, the signals and an HTTP listener.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use silo_backup::daemon::{Daemon, ProjectWork};
use silo_backup::metrics;
use silo_backup::schedule::SystemClock;

use crate::cli::{BackupCommand, Command};
use crate::context::{CmdResult, Context, Failure};
use crate::interrupt;

#[derive(Debug, Args)]
pub struct BackupDaemonArgs {
    /// Only this service (repeat for more) [default: every service with a
    /// `schedule`]
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0: any free
    /// port; the address is printed on stderr)
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// On SIGTERM or Ctrl-C, how long to wait for running backups before
    /// abandoning them
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub stop_timeout: u64,
}

/// Whether the command is the daemon, whose logs (each backup, prune and
/// drill) are its output: shown at `info` without `-v`.
pub fn logs_by_default(command: &Command) -> bool {
    matches!(
        command,
        Command::Backup(args) if matches!(args.command, Some(BackupCommand::Daemon(_)))
    )
}

pub async fn run(ctx: &Context, args: &BackupDaemonArgs) -> CmdResult {
    // First: a signal from here on stops the daemon instead of killing it.
    interrupt::install_stop_saying(
        "stopping: no backup starts, running ones are waited for",
        "a backup cut short is never listed; the next prune removes its files after a day",
    );
    // pgBackRest keeps its own backups (full and incremental, WAL in
    // between); its backups are not the dumps the daemon schedules, prunes
    // and drills, so it leaves those services to a timer of the operator's.
    let (pitr, selected) = crate::commands::restore_pitr::split(ctx.select(&args.services)?);
    let pitr: Vec<String> = pitr.iter().map(|s| s.name.clone()).collect();
    if !args.services.is_empty() && !pitr.is_empty() {
        return Err(Failure::usage(miette::miette!(
            help = "run `silo backup SERVICE` for them from cron or a systemd timer: pgBackRest expires its own backups",
            "the daemon does not run pgBackRest backups ({})",
            pitr.join(", ")
        )));
    }
    let (mut daemon, unscheduled) = Daemon::new(selected.iter().copied());
    if !args.services.is_empty() && !unscheduled.is_empty() {
        return Err(Failure::usage(miette::miette!(
            help = "add `schedule = \"0 */4 * * *\"` (cron) under [services.NAME.backup] in silo.toml, or leave the service out",
            "no backup schedule for {}",
            unscheduled.join(", ")
        )));
    }
    if daemon.services().is_empty() {
        return Err(Failure::usage(miette::miette!(
            help = "add `schedule = \"0 */4 * * *\"` (cron) under [services.NAME.backup] or [defaults.backup] in silo.toml",
            "no service has a backup schedule: nothing to run"
        )));
    }
    daemon.concurrency = ctx.jobs.max(1);
    daemon.stop_timeout = Duration::from_secs(args.stop_timeout);

    let token = interrupt::token();
    let server = match args.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Failure::usage(miette::miette!(
                    help = "pick a free address with --metrics-addr, such as 127.0.0.1:9465",
                    "cannot serve metrics at {addr}: {e}"
                ))
            })?;
            let bound = listener
                .local_addr()
                .map_err(|e| Failure::usage(miette::miette!("cannot serve metrics: {e}")))?;
            errln!("silo backup daemon: metrics at http://{bound}/metrics");
            let token = token.clone();
            Some(tokio::spawn(metrics::serve(
                listener,
                daemon.metrics(),
                async move { token.cancelled().await },
            )))
        }
        None => None,
    };
    if !pitr.is_empty() {
        errln!(
            "silo backup daemon: not run here (method = \"pgbackrest\"; run `silo backup SERVICE` from a timer): {}",
            pitr.join(", ")
        );
    }
    if !unscheduled.is_empty() {
        errln!(
            "silo backup daemon: not scheduled (no `schedule`): {}",
            unscheduled.join(", ")
        );
    }
    errln!(
        "silo backup daemon: {}; Ctrl-C or SIGTERM stops",
        selected
            .iter()
            .filter_map(|s| {
                let schedule = s.backup.as_ref()?.schedule.as_ref()?;
                Some(format!("{} on {schedule}", s.name))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    let work = ProjectWork {
        manifest: Arc::new(ctx.manifest.clone()),
        stores: ctx.stores.clone(),
    };
    let stop = token.clone();
    let summary = daemon
        .run(&work, &SystemClock, async move { stop.cancelled().await })
        .await;
    if let Some(server) = server {
        // The token is cancelled: the server is shutting down.
        let _ = server.await;
    }
    if summary.abandoned.is_empty() {
        errln!("silo backup daemon: stopped");
        Ok(ExitCode::SUCCESS)
    } else {
        errln!(
            "silo backup daemon: stopped after {}s, abandoning the backup of {} (it is not listed; prune removes its files after a day)",
            args.stop_timeout,
            summary.abandoned.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}
