//! `silo audit`.

use std::io::IsTerminal;
use std::process::ExitCode;

use silo_audit::{AuditError, Check, Options, Report, fix, render};

use crate::cli::{AuditArgs, LintFormat};
use crate::context::{
    CmdResult, Context, Failure, ask, interactive, print_json, refuse_without_terminal,
};

pub async fn run(ctx: &Context, args: &AuditArgs) -> CmdResult {
    let format = args
        .output()
        .map_err(|e| Failure::usage(miette::miette!("{e}")))?;
    ctx.select(&args.services)?;
    let options = Options {
        services: args.services.clone(),
        live: !args.code_only,
        code: !args.live_only,
        thorough: args.thorough,
        jobs: ctx.jobs,
        probe_jobs: usize::from(args.probe_jobs),
    };
    let report = audit(ctx, &options).await?;
    // One document per run: machine formats print only the final report.
    let human = format == LintFormat::Human;
    if !args.fix || human {
        print_report(ctx, format, &report);
    }
    if !args.fix {
        return Ok(exit(&report));
    }
    let steps = fix::plan(&report);
    let unfixable = fix::unfixable(&report);
    if steps.is_empty() {
        errln!("nothing to fix automatically");
        if !human {
            print_report(ctx, format, &report);
        }
        return Ok(exit(&report));
    }
    errln!("\n--fix will:");
    for step in &steps {
        err!("{step}");
    }
    if !unfixable.is_empty() {
        errln!(
            "and leave {} finding{} for a person (their remediation is above)",
            unfixable.len(),
            if unfixable.len() == 1 { "" } else { "s" }
        );
    }
    if !args.yes && !confirm()? {
        errln!("nothing changed");
        return Ok(ExitCode::from(1));
    }
    let mut failed = 0;
    for step in &steps {
        let title = step.to_string();
        let title = title
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches(", one transaction:");
        match fix::apply(step, &ctx.manifest, &ctx.stores).await {
            Ok(()) => errln!("fixed: {title}"),
            Err(e) => {
                failed += 1;
                errln!("FAILED (rolled back): {title} {e}");
            }
        }
    }
    if human {
        outln!("\naudit after --fix:");
    }
    let after = audit(ctx, &options).await?;
    print_report(ctx, format, &after);
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        exit(&after)
    })
}

async fn audit(ctx: &Context, options: &Options) -> Result<Report, Failure> {
    silo_audit::audit(&ctx.manifest, &ctx.stores, options)
        .await
        .map_err(|e: AuditError| Failure {
            code: crate::context::exit_code_of(&e),
            report: miette::Report::new(crate::context::Shown::new("cannot audit: ", e)),
        })
}

fn print_report(ctx: &Context, format: LintFormat, report: &Report) {
    match format {
        LintFormat::Human => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            out!("{}", render::human(report, color));
        }
        LintFormat::Json => print_json(&render::json(report)),
        LintFormat::Sarif => {
            let manifest = ctx
                .manifest
                .path
                .strip_prefix(&ctx.manifest.root)
                .unwrap_or(&ctx.manifest.path);
            print_json(&render::sarif(report, manifest));
        }
        LintFormat::Github => out!("{}", render::github(report)),
    }
}

fn exit(report: &Report) -> ExitCode {
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Asks on the terminal; without one, refuses (use --yes).
fn confirm() -> Result<bool, Failure> {
    if !interactive() {
        return Err(refuse_without_terminal(
            "fix",
            "run again with --fix --yes to apply the steps above",
        ));
    }
    Ok(ask("apply these changes?"))
}

/// `silo audit --explain [CHECK]`: a check's page, or the list of checks.
pub fn explain(check: &str) -> CmdResult {
    let ids = Check::ALL.map(|c| c.id());
    crate::commands::explain(&silo_audit::docs::PAGES, check, &ids, "check")
}
