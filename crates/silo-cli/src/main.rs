//! The `silo` binary: parses arguments, loads the project and hands off to
//! the libraries. Exit codes: 0 success, 1 failure, 2 bad usage, bad
//! manifest or unreachable server, 130 (143) interrupted by SIGINT
//! (SIGTERM).

// First: its macros are used by every module below.
#[macro_use]
mod output;

mod cli;
mod commands;
mod context;
mod interrupt;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use context::{CmdResult, Context};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(failure) => {
            errln!("{:?}", failure.report);
            ExitCode::from(failure.code)
        }
    };
    // Interrupted: whatever the command managed, it was stopped.
    let code =
        interrupt::received().map_or(code, |signal| ExitCode::from(interrupt::exit_code(signal)));
    match output::finish() {
        // The result did not reach its reader: the command did not do its job.
        Some(e) if code == ExitCode::SUCCESS => {
            errln!("silo: cannot write the output: {e}");
            ExitCode::from(1)
        }
        _ => code,
    }
}

async fn run(cli: Cli) -> CmdResult {
    if let Command::Init(args) = &cli.command {
        let engine = cli.global.engine.map(|e| match e {
            cli::EngineArg::Sqlite => "sqlite",
            cli::EngineArg::Postgres => "postgres",
        });
        return commands::init::run(args, engine);
    }
    if let Command::Lint(args) = &cli.command
        && let Some(rule) = &args.explain
    {
        return commands::lint::explain(rule);
    }
    if let Command::Audit(args) = &cli.command
        && let Some(check) = &args.explain
    {
        return commands::audit::explain(check);
    }
    let ctx = Context::load(&cli.global)?;
    match &cli.command {
        Command::Init(_) => unreachable!("handled above"),
        Command::Up(args) => commands::up::run(&ctx, args).await,
        Command::Status(args) => commands::status::run(&ctx, args).await,
        Command::Down(args) => commands::down::down(&ctx, args).await,
        Command::Destroy(args) => commands::down::destroy(&ctx, args).await,
        Command::Credentials(command) => commands::credentials::run(&ctx, command).await,
        Command::Connect(args) => commands::connect::run(&ctx, args),
        Command::Migrate(args) => commands::migrate::migrate(&ctx, args).await,
        Command::Info(args) => commands::info::info(&ctx, args).await,
        Command::Validate(args) => commands::validate::validate(&ctx, args).await,
        Command::Undo(args) => commands::undo::undo(&ctx, args).await,
        Command::Repair(args) => commands::repair::repair(&ctx, args).await,
        Command::Baseline(args) => commands::baseline::baseline(&ctx, args).await,
        Command::New(args) => commands::new::new(&ctx, args),
        Command::Migrations(cli::MigrationsCommand::Adopt(args)) => {
            commands::adopt::run(&ctx, args).await
        }
        Command::Migrations(command) => commands::import::import(&ctx, command),
        Command::Lint(args) => commands::lint::run(&ctx, args),
        Command::Audit(args) => commands::audit::run(&ctx, args).await,
        Command::Verify(args) => commands::verify::verify(&ctx, args).await,
        Command::Diff(args) => commands::diff::diff(&ctx, args).await,
        Command::Schema(command) => commands::schema::schema(&ctx, command).await,
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sqlx=warn",
        _ => "debug,sqlx=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
