//! `silo events contracts`: the event map.

use std::process::ExitCode;

use silo_contracts::{Catalog, EventMap};

use crate::cli::EventsContractsArgs;
use crate::context::{CmdResult, Context, print_json, table};

pub fn contracts(ctx: &Context, args: &EventsContractsArgs) -> CmdResult {
    let catalog = Catalog::load(&ctx.manifest);
    let map = EventMap::build(&ctx.manifest, &catalog);
    if args.json {
        print_json(&serde_json::to_value(&map).expect("the event map serializes"));
        return Ok(ExitCode::SUCCESS);
    }
    if map.types.is_empty() {
        outln!("no service publishes or consumes an event type");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "type",
        "publisher",
        "consumers",
        "contract",
        "compatibility",
        "note",
    ]);
    for e in &map.types {
        let contract = match &e.contract {
            Some(c) => format!("v{} {}", c.version, c.file.display()),
            None => "-".into(),
        };
        let notes: Vec<String> = e
            .flags
            .iter()
            .map(|f| match *f {
                "no-publisher" => "no service publishes it".to_string(),
                "published-twice" => "published by more than one service".to_string(),
                "no-contract" => "no contract".to_string(),
                "contract-unusable" => format!(
                    "newest contract unusable: {}",
                    e.problem.as_deref().unwrap_or("")
                ),
                other => other.to_string(),
            })
            .collect();
        t.add_row(vec![
            e.event_type.clone(),
            or_dash(e.publishers.join(", ")),
            or_dash(e.consumers.join(", ")),
            contract,
            e.compatibility.to_string(),
            notes.join("; "),
        ]);
    }
    outln!("{t}");
    let flagged = map.types.iter().filter(|e| !e.flags.is_empty()).count();
    if flagged > 0 {
        errln!(
            "{flagged} of {} type(s) flagged; `silo lint` reports them with where to fix each",
            map.types.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}
