//! `silo status`: a live look at every store.

use std::process::ExitCode;

use serde_json::json;
use silo_manifest::Engine;

use crate::cli::StatusArgs;
use crate::context::{
    CmdResult, Context, Failure, describe, exit_code_all, human_size, print_json, progress,
    store_report, table,
};

pub async fn run(ctx: &Context, args: &StatusArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let bar = progress(services.len(), "checking");
    let results = ctx
        .stores
        .for_each(
            &services,
            |engine, service| async move { engine.status(service).await },
            |_, _| bar.inc(1),
        )
        .await;
    bar.finish_and_clear();

    let orphans = ctx
        .stores
        .orphans(&ctx.manifest.services)
        .map_err(Failure::store)?;
    if !args.all && !orphans.is_empty() && !args.json {
        errln!(
            "note: {} store(s) of services silo.toml no longer names; `silo status --all` lists them",
            orphans.len()
        );
    }
    let isolation = |s: &silo_manifest::Service| match s.engine {
        Engine::Sqlite => "file".to_string(),
        Engine::Postgres => s.isolation.to_string(),
    };
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| {
                let mut row = json!({
                    "service": s.name,
                    "engine": s.engine,
                    "isolation": isolation(s),
                    "database": s.database,
                    "role": s.role,
                    "exists": r.as_ref().is_ok_and(|st| st.exists),
                    "size_bytes": r.as_ref().ok().and_then(|st| st.size_bytes),
                    "connects": r.as_ref().is_ok_and(|st| st.connects),
                });
                let problem = match r {
                    Ok(st) => st.problem.clone(),
                    Err(e) => Some(describe(e)),
                };
                if let Some(p) = problem {
                    row["problem"] = json!(p);
                }
                if let Ok(st) = r {
                    row["leftovers"] = json!(st.leftovers);
                }
                row
            })
            .collect();
        let mut doc = json!({ "services": rows });
        if args.all {
            doc["orphans"] = json!(orphans);
        }
        print_json(&doc);
    } else {
        let mut t = table(&[
            "service",
            "engine",
            "isolation",
            "database",
            "role",
            "exists",
            "size",
            "connects",
        ]);
        for (s, r) in &results {
            let (exists, size, connects) = match r {
                Ok(st) => (
                    if st.exists { "yes" } else { "no" }.to_string(),
                    st.size_bytes.map(human_size).unwrap_or_else(|| "-".into()),
                    match (&st.problem, st.connects) {
                        (_, true) => "yes".to_string(),
                        (Some(p), false) => format!("no: {p}"),
                        (None, false) => "no".to_string(),
                    },
                ),
                Err(e) => ("?".into(), "-".into(), format!("error: {}", describe(e))),
            };
            let role = match s.engine {
                Engine::Sqlite => "-".to_string(),
                Engine::Postgres => s.role.clone(),
            };
            t.add_row(vec![
                s.name.clone(),
                s.engine.to_string(),
                isolation(s),
                s.database.clone(),
                role,
                exists,
                size,
                connects,
            ]);
        }
        outln!("{t}");
        if args.all && !orphans.is_empty() {
            let mut t = table(&["orphan", "engine", "database", "role", "found"]);
            for o in &orphans {
                t.add_row(vec![
                    o.service.clone(),
                    o.engine.to_string(),
                    o.database.clone(),
                    o.role.clone().unwrap_or_else(|| "-".into()),
                    o.found.join("; "),
                ]);
            }
            outln!("\nStores of services silo.toml no longer names:\n{t}");
            outln!("`silo down NAME --orphan --yes` removes one.");
        }
        for (s, r) in &results {
            if let Err(e) = r {
                errln!("{:?}", store_report(&format!("{}: ", s.name), e));
            }
        }
        for (s, r) in &results {
            for leftover in r.iter().flat_map(|st| &st.leftovers) {
                outln!("{}: left by an interrupted run: {leftover}", s.name);
            }
        }
    }
    // An error decides the code (2 for an unreachable server); a store that
    // is missing or does not connect is a finding (1).
    let errors = results.iter().filter_map(|(_, r)| r.as_ref().err());
    let code = exit_code_all(errors);
    let healthy = results
        .iter()
        .all(|(_, r)| r.as_ref().is_ok_and(|st| st.exists && st.connects));
    Ok(if code == ExitCode::SUCCESS && !healthy {
        ExitCode::from(1)
    } else {
        code
    })
}
