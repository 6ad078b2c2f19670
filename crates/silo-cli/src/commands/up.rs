//! `silo up`: provision every selected service's store, with its event
//! tables when it publishes or consumes.

use serde_json::json;
use silo_store::{Outcome, ProvisionOptions};

use crate::cli::UpArgs;
use crate::context::{
    CmdResult, Context, describe, print_json, progress, store_exit_code, store_report, table,
};

pub async fn run(ctx: &Context, args: &UpArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let options = ProvisionOptions { adopt: args.adopt };
    let bar = progress(services.len(), "provisioning");
    let results = ctx
        .stores
        .for_each(
            &services,
            |engine, service| async move {
                ctx.stores.check_no_store_elsewhere(service).await?;
                let mut provisioned = engine.provision(service, options).await?;
                // A service that publishes or consumes gets its event tables.
                silo_events::ensure(&ctx.stores, service)
                    .await?
                    .record(&mut provisioned);
                // Its credential for `silo gateway`, kept once made.
                if ctx.stores.secrets().ensure_gateway_token(&service.name)? {
                    provisioned
                        .changes
                        .push("generated the gateway token (SILO_GATEWAY_TOKEN)".into());
                    if provisioned.outcome == Outcome::Unchanged {
                        provisioned.outcome = Outcome::Updated;
                    }
                }
                Ok::<_, silo_events::EventsError>(provisioned)
            },
            |service, _| {
                bar.set_message(service.name.clone());
                bar.inc(1);
            },
        )
        .await;
    bar.finish_and_clear();

    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| {
                json!({
                    "service": s.name,
                    "engine": s.engine,
                    "database": s.database,
                    "role": s.role,
                    "outcome": r.as_ref().map_or("failed".to_string(), |p| p.outcome.to_string()),
                    "changes": r.as_ref().map(|p| p.changes.clone()).unwrap_or_default(),
                    "error": r.as_ref().err().map(describe),
                })
            })
            .collect();
        let count = |o: Outcome| {
            results
                .iter()
                .filter(|(_, r)| r.as_ref().is_ok_and(|p| p.outcome == o))
                .count()
        };
        print_json(&json!({
            "services": rows,
            "summary": {
                "created": count(Outcome::Created),
                "updated": count(Outcome::Updated),
                "unchanged": count(Outcome::Unchanged),
                "failed": failed,
            }
        }));
    } else {
        let mut t = table(&["service", "engine", "store", "result", "details"]);
        for (s, r) in &results {
            let store = match s.engine {
                silo_manifest::Engine::Sqlite => s
                    .sqlite_path(&ctx.manifest.data_dir)
                    .strip_prefix(&ctx.manifest.root)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| s.database.clone()),
                silo_manifest::Engine::Postgres => format!("{} (role {})", s.database, s.role),
            };
            let (result, details) = match r {
                Ok(p) => (p.outcome.to_string(), p.changes.join("; ")),
                Err(e) => ("FAILED".to_string(), describe(e)),
            };
            t.add_row(vec![
                s.name.clone(),
                s.engine.to_string(),
                store,
                result,
                details,
            ]);
        }
        outln!("{t}");
        for (s, r) in &results {
            if let Err(e) = r {
                errln!("{:?}", store_report(&format!("{}: ", s.name), e));
            }
        }
        let changed = results
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|p| p.outcome != Outcome::Unchanged))
            .count();
        errln!(
            "{} service{}: {changed} changed, {} unchanged, {failed} failed. Credentials: {}",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            results.len() - changed - failed,
            ctx.stores.secrets().dir().display()
        );
    }
    Ok(store_exit_code(results.iter().map(|(_, r)| r)))
}
