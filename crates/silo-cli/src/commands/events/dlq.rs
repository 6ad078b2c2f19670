//! `silo events dlq`.

use crate::cli::EventsDlqArgs;
use crate::context::{CmdResult, Context};

pub async fn dlq(_ctx: &Context, _args: &EventsDlqArgs) -> CmdResult {
    super::not_yet("dlq")
}
