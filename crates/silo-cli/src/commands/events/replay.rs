//! `silo events replay`.

use crate::cli::EventsReplayArgs;
use crate::context::{CmdResult, Context};

pub async fn replay(_ctx: &Context, _args: &EventsReplayArgs) -> CmdResult {
    super::not_yet("replay")
}
