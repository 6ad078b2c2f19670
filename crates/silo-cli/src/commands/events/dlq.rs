//! `silo events dlq`: list, retry and drop dead letters, each store read
//! and changed as its own service.

use std::process::ExitCode;

use serde_json::json;
use silo_events::EventsError;
use silo_events::dlq::{self, DeadLetter, Selection};
use silo_manifest::Service;

use super::event_services;
use crate::cli::{DlqAction, DlqDropArgs, DlqRetryArgs, EventsDlqArgs};
use crate::context::{
    CmdResult, Context, Failure, ask, describe, exit_code_all, exit_code_of, interactive,
    print_json, progress, refuse_without_terminal, store_report, table,
};

pub async fn dlq(ctx: &Context, args: &EventsDlqArgs) -> CmdResult {
    match &args.action {
        None => list(ctx, args).await,
        Some(DlqAction::Retry(a)) => retry(ctx, a).await,
        Some(DlqAction::Drop(a)) => drop_one(ctx, a).await,
    }
}

type Results<'c, T> = Vec<(&'c Service, Result<T, EventsError>)>;

/// Runs `op` on each service after making sure its event tables exist.
async fn each<'c, T, F, Fut>(
    ctx: &'c Context,
    services: &[&'c Service],
    verb: &str,
    op: F,
) -> Results<'c, T>
where
    F: Fn(&'c Service) -> Fut,
    Fut: Future<Output = Result<T, EventsError>>,
{
    let bar = progress(services.len(), verb);
    let op = &op;
    let results = ctx
        .stores
        .for_each(
            services,
            |_, service| async move {
                silo_events::ensure(&ctx.stores, service).await?;
                op(service).await
            },
            |_, _| bar.inc(1),
        )
        .await;
    bar.finish_and_clear();
    results
}

fn names(service: Option<&String>) -> Vec<String> {
    service.cloned().into_iter().collect()
}

async fn list(ctx: &Context, args: &EventsDlqArgs) -> CmdResult {
    let services = event_services(ctx, &names(args.service.as_ref()))?;
    let results = each(ctx, &services, "reading", |s| dlq::list(&ctx.stores, s)).await;
    let letters: Vec<(&Service, &DeadLetter)> = results
        .iter()
        .filter_map(|(s, r)| r.as_ref().ok().map(|l| (*s, l)))
        .flat_map(|(s, l)| l.iter().map(move |d| (s, d)))
        .collect();
    if args.json {
        print_json(&json!({
            "dead_letters": letters.iter().map(|(s, d)| json!({
                "service": s.name,
                "side": d.side.as_str(),
                "id": d.id,
                "type": d.event_type,
                "key": d.key,
                "source": d.source,
                "attempts": d.attempts,
                "error": d.error,
                "time": d.time,
            })).collect::<Vec<_>>(),
            "errors": errors_json(&results),
        }));
    } else {
        if letters.is_empty() {
            outln!("no dead letters");
        } else {
            let mut t = table(&["service", "side", "id", "type", "key", "attempts", "error"]);
            for (s, d) in &letters {
                t.add_row(vec![
                    s.name.clone(),
                    d.side.as_str().to_string(),
                    d.id.clone(),
                    d.event_type.clone(),
                    d.key.clone(),
                    d.attempts.map_or("-".into(), |a| a.to_string()),
                    d.error.clone().unwrap_or_default(),
                ]);
            }
            outln!("{t}");
            outln!(
                "`silo events dlq retry ID` makes an inbox dead letter pending again; `silo events dlq drop ID --yes` deletes one."
            );
        }
        print_errors(&results);
    }
    Ok(exit_code_all(
        results.iter().filter_map(|(_, r)| r.as_ref().err()),
    ))
}

async fn retry(ctx: &Context, args: &DlqRetryArgs) -> CmdResult {
    let services = event_services(ctx, &names(args.service.as_ref()))?;
    let selection = match &args.id {
        Some(id) => Selection::One(id),
        None => Selection::All,
    };
    let results = each(ctx, &services, "retrying", |s| {
        dlq::retry(&ctx.stores, s, selection)
    })
    .await;
    let total: u64 = results.iter().filter_map(|(_, r)| r.as_ref().ok()).sum();
    if args.json {
        print_json(&json!({
            "retried": results.iter().filter_map(|(s, r)| match r {
                Ok(n) if *n > 0 => Some(json!({"service": s.name, "events": n})),
                _ => None,
            }).collect::<Vec<_>>(),
            "errors": errors_json(&results),
        }));
    } else {
        for (s, r) in &results {
            if let Ok(n) = r
                && *n > 0
            {
                outln!("{}: {n} dead letter(s) pending again", s.name);
            }
        }
        print_errors(&results);
    }
    let code = exit_code_all(results.iter().filter_map(|(_, r)| r.as_ref().err()));
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    match (&args.id, total) {
        (Some(id), 0) => Err(not_found(id, args.service.as_deref())),
        (None, 0) if !args.json => {
            outln!("no dead letters to retry");
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

async fn drop_one(ctx: &Context, args: &DlqDropArgs) -> CmdResult {
    let what = format!("drop dead letter {}", args.id);
    // Refuse before connecting: nothing is read or changed.
    if !args.yes && !interactive() {
        return Err(refuse_without_terminal(
            &what,
            "run again with --yes to delete it for good",
        ));
    }
    let services = event_services(ctx, &names(args.service.as_ref()))?;
    let results = each(ctx, &services, "looking", |s| dlq::list(&ctx.stores, s)).await;
    let id = args.id.to_ascii_lowercase();
    let found: Vec<(&Service, &DeadLetter)> = results
        .iter()
        .filter_map(|(s, r)| r.as_ref().ok().map(|l| (*s, l)))
        .flat_map(|(s, l)| l.iter().map(move |d| (s, d)))
        .filter(|(_, d)| d.id.to_ascii_lowercase() == id)
        .collect();
    let unread = results
        .iter()
        .find_map(|(s, r)| r.as_ref().err().map(|e| (s, e)));
    let (service, letter) = match found.as_slice() {
        [] => {
            print_errors(&results);
            return Err(match unread {
                // It may be in a store that could not be read.
                Some((s, e)) => Failure {
                    code: exit_code_of(e),
                    report: store_report(&format!("{}: ", s.name), e),
                },
                None => not_found(&args.id, args.service.as_deref()),
            });
        }
        [one] => *one,
        many => {
            let names: Vec<&str> = many.iter().map(|(s, _)| s.name.as_str()).collect();
            return Err(Failure::usage(miette::miette!(
                help = format!("name one with --service ({})", names.join(", ")),
                "dead letter {} is in the stores of {}",
                args.id,
                names.join(" and ")
            )));
        }
    };
    if !args.yes
        && !ask(&format!(
            "drop {}'s dead {} event {} ({} {}: {})? it is gone for good",
            service.name,
            letter.side.as_str(),
            letter.id,
            letter.event_type,
            letter.key,
            letter.error.as_deref().unwrap_or("no error kept"),
        ))
    {
        errln!("nothing changed");
        return Ok(ExitCode::from(1));
    }
    let dropped = dlq::drop(&ctx.stores, service, &letter.id)
        .await
        .map_err(|e| Failure {
            code: exit_code_of(&e),
            report: store_report(&format!("{}: ", service.name), &e),
        })?;
    if args.json {
        print_json(&json!({
            "dropped": dropped.map(|side| json!({
                "service": service.name,
                "side": side.as_str(),
                "id": letter.id,
            })),
        }));
    } else if let Some(side) = dropped {
        outln!(
            "{}: dropped dead {} event {}",
            service.name,
            side.as_str(),
            letter.id
        );
    }
    if dropped.is_none() {
        // Retried or dropped by someone else in between.
        return Err(not_found(&args.id, Some(&service.name)));
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(id: &str, service: Option<&str>) -> Failure {
    let place = service.map_or("any store".to_string(), |s| format!("{s}'s store"));
    Failure::failed(miette::miette!(
        help = "`silo events dlq` lists the dead letters and their ids",
        "no dead letter {id} in {place}"
    ))
}

fn errors_json<T>(results: &Results<'_, T>) -> Vec<serde_json::Value> {
    results
        .iter()
        .filter_map(|(s, r)| {
            r.as_ref()
                .err()
                .map(|e| json!({"service": s.name, "error": describe(e)}))
        })
        .collect()
}

fn print_errors<T>(results: &Results<'_, T>) {
    for (s, r) in results {
        if let Err(e) = r {
            errln!("{:?}", store_report(&format!("{}: ", s.name), e));
        }
    }
}
