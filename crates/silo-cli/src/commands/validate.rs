//! `silo validate`: check that every applied migration matches its file.

use std::process::ExitCode;

use serde_json::json;

use super::info::{infos, print_foreign_notes};
use super::migrations_common::{exit_code, report};
use crate::cli::InfoArgs;
use crate::context::{CmdResult, Context, print_json};

pub async fn validate(ctx: &Context, args: &InfoArgs) -> CmdResult {
    let services = ctx.select(&args.services)?;
    let results = infos(ctx, &services, args.lock.lock_timeout).await;
    let code = exit_code(&results);
    let all_read = results.iter().all(|(_, r)| r.is_ok());
    let count = results.len();
    let mut any = false;
    let mut rows = Vec::new();
    let mut read = Vec::new();
    for (s, r) in results {
        match r {
            Ok(info) => {
                let problems = silo_migrate::state::problems(&info.entries);
                any |= !problems.is_empty();
                if !args.json {
                    for p in &problems {
                        outln!("{}: {p}", s.name);
                    }
                }
                rows.push(
                    json!({"service": s.name, "valid": problems.is_empty(), "problems": problems}),
                );
                read.push((s, info));
            }
            Err(e) => {
                rows.push(json!({"service": s.name, "valid": false, "error": e.describe()}));
                if !args.json {
                    errln!("{:?}", report(&s.name, e));
                }
            }
        }
    }
    if args.json {
        print_json(&json!({ "services": rows }));
    } else {
        if !any && all_read {
            outln!("{count} service(s) valid: every applied migration matches its file");
        }
        print_foreign_notes(&read);
    }
    Ok(if code == ExitCode::SUCCESS && any {
        ExitCode::from(1)
    } else {
        code
    })
}
