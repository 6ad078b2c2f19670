//! `silo lint`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use silo_lint::{Options, RuleId, Severity};

use crate::cli::{LintArgs, LintFormat};
use crate::context::{CmdResult, Context, Failure, print_json};

pub fn run(ctx: &Context, args: &LintArgs) -> CmdResult {
    let format = args
        .output()
        .map_err(|e| Failure::usage(miette::miette!("{e}")))?;
    ctx.select(&args.services)?;
    let rules = rule_ids(&args.rules)?;
    let skip_rules = rule_ids(&args.no_rules)?;
    silo_lint::check_settings(&ctx.manifest).map_err(|problems| {
        Failure::usage(miette::miette!(
            help = "fix the rule ids in [lint.rules]; `silo lint --explain` lists them",
            "{}",
            problems.join("\n")
        ))
    })?;
    if args.update_sum {
        let changed = silo_lint::sum::update_all(&ctx.manifest)
            .map_err(|e| Failure::failed(miette::miette!("cannot write silo.sum: {e}")))?;
        for path in &changed {
            let shown = path.strip_prefix(&ctx.manifest.root).unwrap_or(path);
            errln!("updated {}", shown.display());
        }
        if changed.is_empty() {
            errln!("silo.sum files unchanged");
        }
    }
    let loaded = silo_lint::load(&ctx.manifest)
        .map_err(|e| Failure::usage(miette::miette!(help = e.help(), "{e}")))?;
    let files = &loaded.files;
    // Migrations and contract files: PATHS and --changed-since pick among both.
    let linted = loaded.paths();
    let mut only = None;
    if !args.paths.is_empty() {
        only = Some(select_paths(&args.paths, &linted)?);
    }
    if let Some(git_ref) = &args.changed_since {
        let changed = changed_since(&ctx.manifest.root, git_ref)?;
        let selected: Vec<PathBuf> = linted
            .into_iter()
            .filter(|p| changed.contains(&std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
            .filter(|p| only.as_ref().is_none_or(|o: &Vec<PathBuf>| o.contains(p)))
            .collect();
        only = Some(selected);
    }
    let report = silo_lint::lint(
        &ctx.manifest,
        &loaded,
        &Options {
            services: args.services.clone(),
            rules,
            skip_rules,
            files: only,
        },
    );
    match format {
        LintFormat::Human => out!("{}", silo_lint::render::human(&report, files)),
        LintFormat::Json => print_json(&silo_lint::render::json(&report)),
        LintFormat::Sarif => print_json(&silo_lint::render::sarif(&report, files)),
        LintFormat::Github => out!("{}", silo_lint::render::github(&report)),
    }
    let failed = report
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `silo lint --explain [RULE]`: a rule's page, or the list of rules.
pub fn explain(rule: &str) -> CmdResult {
    crate::commands::explain(&silo_lint::docs::PAGES, rule, &RuleId::ids(), "rule")
}

/// The rules named on the command line; an unknown one is bad usage.
fn rule_ids(names: &[String]) -> Result<Vec<RuleId>, Failure> {
    names
        .iter()
        .map(|name| {
            RuleId::from_id(name).ok_or_else(|| {
                Failure::usage(miette::miette!(
                    help = format!("rules: {}", RuleId::ids().join(", ")),
                    "unknown rule `{name}`"
                ))
            })
        })
        .collect()
}

/// The linted files (migrations and contracts) under each of `paths`; a
/// path that names none of them is a usage error.
fn select_paths(paths: &[PathBuf], files: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut selected = Vec::new();
    for path in paths {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let absolute = std::fs::canonicalize(&absolute).unwrap_or(absolute);
        let matched: Vec<PathBuf> = files
            .iter()
            .filter(|f| {
                let real = std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf());
                real.starts_with(&absolute)
            })
            .cloned()
            .collect();
        if !absolute.exists() {
            return Err(Failure::usage(miette::miette!(
                help = "give a migration file or folder of a service in silo.toml",
                "`{}` does not exist",
                path.display()
            )));
        }
        if matched.is_empty() {
            return Err(Failure::usage(miette::miette!(
                help = "give a migration file, a contract or a folder of a service in silo.toml",
                "`{}` holds no migration file or contract of any service",
                path.display()
            )));
        }
        selected.extend(matched);
    }
    Ok(selected)
}

/// Absolute paths of the files that differ from `git_ref` in the working
/// tree (committed since, staged, unstaged) or are untracked.
fn changed_since(root: &Path, git_ref: &str) -> Result<Vec<PathBuf>, Failure> {
    let git = |args: &[&str]| -> Result<Vec<PathBuf>, Failure> {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .map_err(|e| Failure::usage(miette::miette!("cannot run git: {e}")))?;
        if !output.status.success() {
            return Err(Failure::usage(miette::miette!(
                help = "give a revision git knows (a branch, tag or commit) in a git work tree",
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let p = root.join(String::from_utf8_lossy(p).as_ref());
                std::fs::canonicalize(&p).unwrap_or(p)
            })
            .collect())
    };
    let mut changed = git(&["diff", "--name-only", "--relative", "-z", git_ref, "--"])?;
    changed.extend(git(&["ls-files", "--others", "--exclude-standard", "-z"])?);
    Ok(changed)
}
