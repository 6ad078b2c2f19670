//! `silo down` and `silo destroy`: drop what silo created, nothing else.

use serde_json::json;
use silo_manifest::Service;

use crate::cli::{DestroyArgs, DownArgs};
use crate::context::{
    CmdResult, Context, describe, print_json, progress, require_yes, store_exit_code, store_report,
    table,
};

pub async fn down(ctx: &Context, args: &DownArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    require_yes(
        args.yes,
        &format!("drop the stores of {}", names(&services)),
    )?;
    drop_all(ctx, &services, args.json).await
}

pub async fn destroy(ctx: &Context, args: &DestroyArgs) -> CmdResult {
    let services = ctx.select(&[])?;
    require_yes(
        args.yes,
        &format!("drop every store of project `{}`", ctx.manifest.project),
    )?;
    drop_all(ctx, &services, args.json).await
}

fn names(services: &[&Service]) -> String {
    services
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn drop_all(ctx: &Context, services: &[&Service], as_json: bool) -> CmdResult {
    let bar = progress(services.len(), "dropping");
    let results = ctx
        .stores
        .for_each(
            services,
            |engine, service| async move { engine.drop_store(service).await },
            |_, _| bar.inc(1),
        )
        .await;
    bar.finish_and_clear();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if as_json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| {
                json!({
                    "service": s.name,
                    "removed": r.as_ref().map(|d| d.removed.clone()).unwrap_or_default(),
                    "error": r.as_ref().err().map(describe),
                })
            })
            .collect();
        print_json(&json!({ "services": rows, "summary": { "failed": failed } }));
    } else {
        let mut t = table(&["service", "result", "details"]);
        for (s, r) in &results {
            let (result, details) = match r {
                Ok(d) if d.removed.is_empty() => ("absent".into(), "nothing to drop".into()),
                Ok(d) => ("dropped".into(), d.removed.join(", ")),
                Err(e) => ("REFUSED".into(), describe(e)),
            };
            t.add_row(vec![s.name.clone(), result, details]);
        }
        outln!("{t}");
        for (s, r) in &results {
            if let Err(e) = r {
                eprintln!("{:?}", store_report(&format!("{}: ", s.name), e));
            }
        }
    }
    Ok(store_exit_code(results.iter().map(|(_, r)| r)))
}
