//! `silo down` and `silo destroy`: drop what silo created, nothing else.
//!
//! On the nats bus `silo destroy` removes the project's stream too (with
//! its events and every durable on it): the project is gone. `silo down`
//! leaves the stream and the services' durables alone: the events are
//! every other service's too, and a service provisioned again gets its
//! history back with `silo events replay`.

use std::process::ExitCode;

use serde_json::json;
use silo_events::EventsError;
use silo_events::relay::nats::{NatsConfig, names, stream};
use silo_manifest::{Bus, Service};

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
    drop_all(ctx, &services, args.json, None).await
}

pub async fn destroy(ctx: &Context, args: &DestroyArgs) -> CmdResult {
    let services = ctx.select(&[])?;
    require_yes(
        args.yes,
        &format!("drop every store of project `{}`", ctx.manifest.project),
    )?;
    // First: under auth, the admin's NATS credentials go with the stores.
    let stream = match ctx.manifest.events.bus {
        Bus::Nats => Some(remove_stream(ctx).await),
        Bus::Embedded => None,
    };
    let code = drop_all(ctx, &services, args.json, stream.as_ref()).await?;
    let Some((_, Err(e))) = &stream else {
        return Ok(code);
    };
    errln!("{:?}", store_report("", e));
    // The worse of the stores' code and the stream's.
    Ok(if code == ExitCode::SUCCESS || e.exit_code() == 2 {
        ExitCode::from(e.exit_code())
    } else {
        code
    })
}

/// Removes the project's stream, as the silo admin: its name, and whether
/// there was one.
async fn remove_stream(ctx: &Context) -> (String, Result<bool, EventsError>) {
    let config = NatsConfig::from_env(&ctx.manifest);
    let removed = async {
        let conn = config.connect(names::ADMIN_USER).await?;
        Ok(stream::remove_stream(&conn, &ctx.manifest).await?)
    }
    .await;
    (config.stream(), removed)
}

fn names(services: &[&Service]) -> String {
    services
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Drops `services`' stores and shows what happened, with what became of
/// the stream when one was removed too.
async fn drop_all(
    ctx: &Context,
    services: &[&Service],
    as_json: bool,
    stream: Option<&(String, Result<bool, EventsError>)>,
) -> CmdResult {
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
        let mut doc = json!({ "services": rows, "summary": { "failed": failed } });
        if let Some((name, removed)) = stream {
            doc["stream"] = json!({
                "name": name,
                "removed": removed.as_ref().is_ok_and(|r| *r),
                "error": removed.as_ref().err().map(describe),
            });
        }
        print_json(&doc);
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
        match stream {
            Some((name, Ok(true))) => outln!("stream {name}: removed, with its events"),
            Some((name, Ok(false))) => outln!("stream {name}: absent"),
            Some((name, Err(_))) => outln!("stream {name}: REFUSED or unreachable (below)"),
            None => {}
        }
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
