//! `silo events replay`.

use std::process::ExitCode;

use serde_json::json;
use silo_events::relay::nats::replay::{ReplayRequest, replay as replay_type};
use silo_events::relay::nats::{NatsConfig, names};
use silo_manifest::Bus;
use time::format_description::well_known::Rfc3339;

use super::nats_failure;
use crate::cli::EventsReplayArgs;
use crate::context::{CmdResult, Context, Failure, print_json};

pub async fn replay(ctx: &Context, args: &EventsReplayArgs) -> CmdResult {
    if ctx.manifest.events.bus != Bus::Nats {
        return Err(Failure::usage(miette::miette!(
            help = "set `bus = \"nats\"` under [events] in silo.toml; on the embedded bus a consumer's cursor decides what it gets",
            "`silo events replay` reads the nats bus's stream, but [events] bus is `{}`",
            ctx.manifest.events.bus
        )));
    }
    let service = ctx.service(&args.service)?;
    let since = match &args.since {
        Some(s) => Some(time::OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            Failure::usage(miette::miette!(
                help = "write it like 2026-11-27T10:00:00Z",
                "--since {s:?} is not an RFC 3339 time: {e}"
            ))
        })?),
        None => None,
    };
    let config = NatsConfig::from_env(&ctx.manifest);
    let bus = config
        .connect(names::ADMIN_USER)
        .await
        .map_err(|e| nats_failure(e.into()))?;
    let request = ReplayRequest {
        event_type: args.event_type.clone(),
        since,
        reprocess: args.reprocess,
    };
    let done = replay_type(&ctx.stores, &bus, &ctx.manifest, service, &request)
        .await
        .map_err(nats_failure)?;
    if args.json {
        print_json(&json!({
            "service": service.name,
            "type": args.event_type,
            "read": done.read,
            "written": done.written,
            "skipped": done.skipped,
            "reprocess": args.reprocess,
        }));
    } else if args.reprocess {
        outln!(
            "replayed {} {} event(s) into {}'s inbox: {} new or pending again",
            done.read,
            args.event_type,
            service.name,
            done.written
        );
    } else {
        outln!(
            "replayed {} {} event(s) into {}'s inbox: {} new, {} already there",
            done.read,
            args.event_type,
            service.name,
            done.written,
            done.read - done.written
        );
    }
    if done.skipped > 0 {
        errln!(
            "{} message(s) on the subject were not silo events and were left out",
            done.skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}
