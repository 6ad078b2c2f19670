//! `silo lint`.

use std::process::ExitCode;

use silo_lint::{Options, Severity};

use crate::cli::{LintArgs, LintFormat};
use crate::context::{CmdResult, Context, Failure, print_json};

pub fn run(ctx: &Context, args: &LintArgs) -> CmdResult {
    ctx.select(&args.services)?;
    let known: Vec<&str> = silo_lint::rules::all()
        .iter()
        .map(|r| r.id())
        .chain([silo_lint::PARSE_ERROR])
        .collect();
    if let Some(unknown) = args
        .rules
        .iter()
        .chain(&args.no_rules)
        .find(|r| !known.contains(&r.as_str()))
    {
        return Err(Failure::usage(miette::miette!(
            help = format!("rules: {}", known.join(", ")),
            "unknown rule `{unknown}`"
        )));
    }
    let files =
        silo_lint::load(&ctx.manifest).map_err(|e| Failure::usage(miette::miette!("{e}")))?;
    let report = silo_lint::lint(
        &ctx.manifest,
        &files,
        &Options {
            services: args.services.clone(),
            rules: args.rules.clone(),
            skip_rules: args.no_rules.clone(),
        },
    );
    match args.format {
        LintFormat::Human => print!("{}", silo_lint::render::human(&report, &files)),
        LintFormat::Json => print_json(&silo_lint::render::json(&report)),
        LintFormat::Github => print!("{}", silo_lint::render::github(&report)),
    }
    Ok(
        if report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error)
        {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
