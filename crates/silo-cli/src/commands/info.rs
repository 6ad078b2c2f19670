//! `silo info`: every migration of each service and its state.

use serde_json::json;
use silo_manifest::Service;
use silo_migrate::MigrateError;
use silo_migrate::service as ops;

use super::migrations_common::{exit_code, policy, report};
use crate::cli::InfoArgs;
use crate::context::{CmdResult, Context, print_json, table};

/// Each service's migrations and their state, in the order of `services`.
pub(crate) async fn infos<'a>(
    ctx: &'a Context,
    services: &[&'a Service],
    lock_timeout: u64,
) -> Vec<(&'a Service, Result<ops::Info, MigrateError>)> {
    ctx.stores
        .for_each(
            services,
            |_, service| {
                ops::info(
                    &ctx.manifest,
                    &ctx.stores,
                    service,
                    policy(&service.name, lock_timeout),
                )
            },
            |_, _| {},
        )
        .await
}

pub async fn info(ctx: &Context, args: &InfoArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let results = infos(ctx, &services, args.lock.lock_timeout).await;
    let code = exit_code(&results);
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| match r {
                Ok(info) => json!({
                    "service": s.name,
                    "migrations": info.entries,
                    "foreign_history": info.foreign,
                    "hint": foreign_hint(&s.name, &info.foreign),
                }),
                Err(e) => json!({"service": s.name, "migrations": [], "error": e.describe()}),
            })
            .collect();
        print_json(&json!({ "services": rows }));
        return Ok(code);
    }
    let mut t = table(&[
        "service",
        "version",
        "description",
        "type",
        "state",
        "undo",
        "installed on",
    ]);
    for (s, r) in &results {
        match r {
            Ok(info) if info.entries.is_empty() => {
                t.add_row(vec![s.name.clone(), "-".into(), "(no migrations)".into()]);
            }
            Ok(info) => {
                for e in &info.entries {
                    t.add_row(vec![
                        s.name.clone(),
                        e.version.clone().unwrap_or_else(|| "-".into()),
                        e.description.clone(),
                        e.kind.to_string(),
                        match &e.partial {
                            Some(p) => format!("partial ({})", p.summary()),
                            None => e.state.as_str().to_string(),
                        },
                        if e.undo { "yes" } else { "" }.to_string(),
                        e.installed_on.clone().unwrap_or_default(),
                    ]);
                }
            }
            Err(e) => {
                t.add_row(vec![
                    s.name.clone(),
                    "-".into(),
                    format!("error: {}", e.describe()),
                ]);
            }
        }
    }
    outln!("{t}");
    let infos = print_errors(results);
    print_foreign_notes(&infos);
    Ok(code)
}

/// Prints the errors among `results`, each as its diagnostic, and gives
/// back the rest.
fn print_errors(
    results: Vec<(&Service, Result<ops::Info, MigrateError>)>,
) -> Vec<(&Service, ops::Info)> {
    let mut infos = Vec::new();
    for (s, r) in results {
        match r {
            Ok(info) => infos.push((s, info)),
            Err(e) => errln!("{:?}", report(&s.name, e)),
        }
    }
    infos
}

/// What to do about another tool's history in a store silo never migrated.
fn foreign_hint(service: &str, foreign: &[silo_migrate::adopt::Found]) -> Option<String> {
    let found = foreign.iter().find(|f| f.rows != Some(0))?;
    Some(format!(
        "{}'s history ({}) is in the store and silo's is empty: the files above are shown pending, but {} applied them. `silo migrations adopt {service} --from {}` records what it applied; `silo migrate` refuses until then",
        found.tool.title(),
        found.table,
        found.tool.title(),
        found.tool,
    ))
}

/// Prints [`foreign_hint`] for each service, on stderr (stdout is the
/// table).
pub(crate) fn print_foreign_notes(infos: &[(&Service, ops::Info)]) {
    for (s, info) in infos {
        if let Some(hint) = foreign_hint(&s.name, &info.foreign) {
            errln!("note: {}: {hint}", s.name);
        }
    }
}
