//! `silo connect`: a client session as the service itself.

use std::os::unix::process::CommandExt;
use std::process::Command;

use silo_manifest::Engine;

use crate::cli::ConnectArgs;
use crate::context::{CmdResult, Context, Failure};

pub fn run(ctx: &Context, args: &ConnectArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    let creds = ctx.stores.credentials(service).map_err(Failure::store)?;
    let mut command = match creds.engine {
        Engine::Postgres => {
            let mut c = Command::new("psql");
            // libpq reads these; nothing secret appears in the argument list.
            c.env("PGHOST", creds.host.as_deref().unwrap_or("localhost"))
                .env("PGPORT", creds.port.unwrap_or(5432).to_string())
                .env("PGUSER", creds.user.as_deref().unwrap_or_default())
                .env("PGDATABASE", &creds.database)
                .env("PGAPPNAME", format!("silo connect {}", service.name));
            if let Some(p) = &creds.password {
                c.env("PGPASSWORD", p.expose());
            }
            c
        }
        Engine::Sqlite => {
            let mut c = Command::new("sqlite3");
            c.arg(&creds.database);
            c
        }
    };
    command.args(&args.client_args);
    let program = command.get_program().to_string_lossy().into_owned();
    let err = command.exec();
    Err(Failure::failed(miette::miette!(
        help = format!("install {program} or put it on PATH"),
        "cannot run {program}: {err}"
    )))
}
