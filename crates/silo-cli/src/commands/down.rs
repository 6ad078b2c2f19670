//! `silo down` and `silo destroy`: drop what silo created, nothing else.

use serde_json::json;
use silo_manifest::Service;

use crate::cli::{DestroyArgs, DownArgs};
use crate::context::{
    CmdResult, Context, Failure, describe, print_json, progress, require_yes, store_exit_code,
    store_report, table,
};

pub async fn down(ctx: &Context, args: &DownArgs) -> CmdResult {
    if args.orphan {
        return down_orphans(ctx, args).await;
    }
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
                errln!("{:?}", store_report(&format!("{}: ", s.name), e));
            }
        }
    }
    Ok(store_exit_code(results.iter().map(|(_, r)| r)))
}

/// `silo down NAME --orphan`: drops stores of services silo.toml no longer
/// names.
async fn down_orphans(ctx: &Context, args: &DownArgs) -> CmdResult {
    let orphans = ctx
        .stores
        .orphans(&ctx.manifest.services)
        .map_err(Failure::store)?;
    let mut chosen = Vec::new();
    for name in &args.services {
        if ctx.manifest.service(name).is_some() {
            return Err(Failure::usage(miette::miette!(
                help = format!("drop it with `silo down {name} --yes`"),
                "`{name}` is in {}, so it is no orphan",
                ctx.manifest.path.display()
            )));
        }
        let Some(orphan) = orphans.iter().find(|o| &o.service == name) else {
            let known: Vec<&str> = orphans.iter().map(|o| o.service.as_str()).collect();
            return Err(Failure::usage(miette::miette!(
                help = if known.is_empty() {
                    "this project has no orphans".to_string()
                } else {
                    format!("orphans of this project: {}", known.join(", "))
                },
                "no store of a service `{name}` is left in {}",
                ctx.manifest.data_dir.display()
            )));
        };
        chosen.push(orphan);
    }
    require_yes(
        args.yes,
        &format!(
            "drop the stores of {}",
            chosen
                .iter()
                .map(|o| format!("`{}`", o.service))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )?;
    let mut results = Vec::new();
    for orphan in &chosen {
        results.push(ctx.stores.drop_orphan(orphan).await);
    }
    if args.json {
        let rows: Vec<_> = chosen
            .iter()
            .zip(&results)
            .map(|(o, r)| {
                json!({
                    "service": o.service,
                    "removed": r.as_ref().map(|d| d.removed.clone()).unwrap_or_default(),
                    "error": r.as_ref().err().map(describe),
                })
            })
            .collect();
        let failed = results.iter().filter(|r| r.is_err()).count();
        print_json(&json!({ "services": rows, "summary": { "failed": failed } }));
    } else {
        for (o, r) in chosen.iter().zip(&results) {
            match r {
                Ok(d) => outln!("{}: dropped {}", o.service, d.removed.join(", ")),
                Err(e) => errln!("{:?}", store_report(&format!("{}: ", o.service), e)),
            }
        }
    }
    Ok(store_exit_code(&results))
}
