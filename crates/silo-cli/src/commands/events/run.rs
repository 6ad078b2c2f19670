//! `silo events run`.

use silo_manifest::Bus;

use crate::cli::EventsRunArgs;
use crate::context::{CmdResult, Context};

pub async fn run(ctx: &Context, args: &EventsRunArgs) -> CmdResult {
    match ctx.manifest.events.bus {
        Bus::Nats => super::run_nats::run(ctx, args).await,
        Bus::Embedded => super::not_yet("run"),
    }
}
