//! `silo events status`.

use crate::cli::EventsStatusArgs;
use crate::context::{CmdResult, Context};

pub async fn status(_ctx: &Context, _args: &EventsStatusArgs) -> CmdResult {
    super::not_yet("status")
}
