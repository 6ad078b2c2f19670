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

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use context::{CmdResult, Context};

/// mimalloc rather than the system allocator: `silo events run` allocates
/// and frees a few small buffers per event (messages, rows, JSON), and
/// glibc's malloc took about a third of its CPU doing so.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let wants_json = asks_for_json(std::env::args());
    // The daemon's logs are its output: `info` without -v.
    let logs = commands::backup_daemon::logs_by_default(&cli.command);
    init_tracing(cli.global.verbose.max(u8::from(logs)), logs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(failure) => {
            errln!("{:?}", failure.report);
            if wants_json {
                // A machine reading stdout gets a document even when the
                // command refused or failed before it had a result.
                context::print_json(&context::error_json(&failure));
            }
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

/// Whether the command line asks for JSON (`--json`, or `--format json` /
/// `--format=json` for lint and audit), before or after the subcommand.
fn asks_for_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.take_while(|a| a != "--").collect();
    args.iter().any(|a| a == "--json" || a == "--format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "json")
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
        Command::Events(command) => commands::events::run(&ctx, command).await,
        Command::Backup(args) => commands::backup::run(&ctx, args).await,
        Command::Restore(args) => commands::restore::run(&ctx, args).await,
        Command::Gateway(args) => commands::gateway::run(&ctx, args).await,
    }
}

/// Logs on stderr; `timestamps` for a long-running command, whose lines
/// are read long after they were written.
fn init_tracing(verbose: u8, timestamps: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sqlx=warn",
        _ => "debug,sqlx=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: codes in a file or a log
    // collector are noise. NO_COLOR (no-color.org) turns it off anywhere.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    if timestamps {
        fmt.init();
    } else {
        fmt.without_time().init();
    }
}
