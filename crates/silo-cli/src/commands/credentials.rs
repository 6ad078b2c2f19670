//! `silo credentials show|rotate`.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::CredentialsCommand;
use crate::context::{CmdResult, Context, Failure, print_json};

pub async fn run(ctx: &Context, command: &CredentialsCommand) -> CmdResult {
    match command {
        CredentialsCommand::Show {
            service,
            reveal,
            json,
        } => {
            let service = ctx.service(service)?;
            let engine = ctx.stores.engine(service).map_err(Failure::store)?;
            let creds = engine.credentials(service).map_err(Failure::store)?;
            if *json {
                print_json(&serde_json::to_value(creds.view()).expect("serializable"));
            } else {
                let v = creds.view();
                let dash = |o: Option<&str>| o.unwrap_or("-").to_string();
                println!("service   {}", v.service);
                println!("engine    {}", v.engine);
                println!("host      {}", dash(v.host));
                println!("port      {}", v.port.map_or("-".into(), |p| p.to_string()));
                println!("database  {}", v.database);
                println!("user      {}", dash(v.user));
                match (v.password, reveal) {
                    (None, _) => println!("password  -"),
                    (Some(p), true) => println!("password  {p}"),
                    (Some(_), false) => println!("password  *** (--reveal or --json to show)"),
                }
                println!(
                    "url       {}",
                    if *reveal {
                        creds.url()
                    } else {
                        creds.redacted_url()
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::Rotate { service, json } => {
            let service = ctx.service(service)?;
            let engine = ctx.stores.engine(service).map_err(Failure::store)?;
            engine.rotate(service).await.map_err(Failure::store)?;
            let file = ctx
                .manifest
                .secrets_dir()
                .join(format!("{}.env", service.name));
            if *json {
                print_json(
                    &json!({"service": service.name, "rotated": true, "credentials_file": file}),
                );
            } else {
                println!(
                    "rotated the password of `{}`; the old one no longer works. New credentials: {}",
                    service.name,
                    file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
