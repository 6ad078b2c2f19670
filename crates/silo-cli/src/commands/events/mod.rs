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

/// Refuses a subcommand that is not built yet.
fn not_yet(what: &str) -> CmdResult {
    Err(crate::context::Failure::usage(miette::miette!(
        "`silo events {what}` is not available in this build"
    )))
}
