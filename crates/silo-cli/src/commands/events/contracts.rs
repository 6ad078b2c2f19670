//! `silo events contracts`.

use crate::cli::EventsContractsArgs;
use crate::context::{CmdResult, Context};

pub fn contracts(_ctx: &Context, _args: &EventsContractsArgs) -> CmdResult {
    super::not_yet("contracts")
}
