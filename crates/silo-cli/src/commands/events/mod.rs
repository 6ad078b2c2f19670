//! `silo events`: one module per subcommand.

mod contracts;
mod dlq;
mod nats_config;
mod replay;
mod run;
mod run_nats;
mod status;

use crate::cli::EventsCommand;
use crate::context::{CmdResult, Context};

pub async fn run(ctx: &Context, command: &EventsCommand) -> CmdResult {
    match command {
        EventsCommand::Run(args) => run::run(ctx, args).await,
        EventsCommand::Status(args) => status::status(ctx, args).await,
        EventsCommand::Dlq(args) => dlq::dlq(ctx, args).await,
        EventsCommand::Contracts(args) => contracts::contracts(ctx, args),
        EventsCommand::Replay(args) => replay::replay(ctx, args).await,
        EventsCommand::NatsConfig(args) => nats_config::nats_config(ctx, args).await,
    }
}

/// A failure of the events library, with its own exit code, cause and
/// hint.
fn nats_failure(e: silo_events::EventsError) -> crate::context::Failure {
    crate::context::Failure {
        code: e.exit_code(),
        report: crate::context::store_report("", &e),
    }
}

/// The named services, or with none every service that publishes or
/// consumes.
fn event_services<'c>(
    ctx: &'c Context,
    names: &[String],
) -> Result<Vec<&'c silo_manifest::Service>, crate::context::Failure> {
    let services = ctx.select(names)?;
    Ok(if names.is_empty() {
        services
            .into_iter()
            .filter(|s| silo_events::needs_tables(s))
            .collect()
    } else {
        services
    })
}

/// A wait in seconds, short: `0.4s`, `12s`, `3m 20s`, `2h 5m`, `3d 4h`.
fn age(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_short() {
        let shown: Vec<String> = [0.42, 12.4, 200.0, 7500.0, 300000.0, -1.0]
            .into_iter()
            .map(super::age)
            .collect();
        assert_eq!(shown, ["0.4s", "12s", "3m 20s", "2h 5m", "3d 11h", "0.0s"]);
    }
}
