//! `silo events nats-config`.

use std::process::ExitCode;

use serde_json::json;
use silo_events::relay::nats::auth::authorization_block;
use silo_events::relay::nats::run::set_up;
use silo_events::relay::nats::{NatsConfig, names};
use silo_manifest::Service;

use super::nats_failure;
use crate::cli::EventsNatsConfigArgs;
use crate::context::{CmdResult, Context, Failure, print_json};

pub async fn nats_config(ctx: &Context, args: &EventsNatsConfigArgs) -> CmdResult {
    let block = authorization_block(&ctx.manifest).map_err(|e| nats_failure(e.into()))?;
    let secrets = ctx.stores.secrets();
    let mut written = None;
    if let Some(out) = &args.out {
        let unchanged = std::fs::read_to_string(out).is_ok_and(|old| old == block.text);
        if !unchanged {
            silo_store::files::write_private_atomic(out, block.text.as_bytes()).map_err(|e| {
                Failure::failed(miette::miette!(
                    help = "pick a folder you can write to with --out",
                    "writing {} failed: {e}",
                    out.display()
                ))
            })?;
        }
        written = Some(!unchanged);
    }
    let mut applied = Vec::new();
    if args.apply {
        let mut config = NatsConfig::from_env(&ctx.manifest);
        // The admin sets the bus up; without auth anyone may.
        config.auth = ctx.manifest.events.nats_auth;
        let all: Vec<&Service> = ctx.manifest.services.iter().collect();
        applied = set_up(&config, &ctx.manifest, &all, true)
            .await
            .map_err(|e| nats_failure(e.into()))?;
    }
    if args.json {
        let mut doc = json!({
            "users": block.users,
            "generated": block.generated,
            "credentials_dir": secrets.nats_path(names::ADMIN_USER).parent(),
        });
        match (&args.out, written) {
            (Some(out), Some(changed)) => {
                doc["out"] = json!(out);
                doc["changed"] = json!(changed);
            }
            _ => doc["block"] = json!(block.text),
        }
        if args.apply {
            doc["applied"] = json!(applied);
        }
        print_json(&doc);
        return Ok(ExitCode::SUCCESS);
    }
    match (&args.out, written) {
        (Some(out), Some(true)) => errln!("wrote the authorization block to {}", out.display()),
        (Some(out), _) => errln!("{} is up to date", out.display()),
        (None, _) => out!("{}", block.text),
    }
    if !block.generated.is_empty() {
        errln!(
            "generated credentials for {} in {}",
            block.generated.join(", "),
            secrets
                .nats_path(names::ADMIN_USER)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    if args.apply {
        if applied.is_empty() {
            errln!("the stream and the consumers were up to date");
        }
        for change in &applied {
            errln!("{change}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
