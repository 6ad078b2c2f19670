//! `silo events run`.

use crate::cli::EventsRunArgs;
use crate::context::{CmdResult, Context};

pub async fn run(_ctx: &Context, _args: &EventsRunArgs) -> CmdResult {
    super::not_yet("run")
}
