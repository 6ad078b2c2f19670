//! `silo events nats-config`.

use crate::cli::EventsNatsConfigArgs;
use crate::context::{CmdResult, Context};

pub fn nats_config(_ctx: &Context, _args: &EventsNatsConfigArgs) -> CmdResult {
    super::not_yet("nats-config")
}
