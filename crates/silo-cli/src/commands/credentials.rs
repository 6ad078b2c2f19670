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
            let creds = ctx.stores.credentials(service).map_err(Failure::store)?;
            let v = creds.view(*reveal);
            let token = ctx
                .stores
                .secrets()
                .gateway_token(&service.name)
                .map_err(Failure::store)?;
            let token = token.as_ref().map(|t| {
                if *reveal {
                    t.expose()
                } else {
                    silo_store::MASK
                }
            });
            if *json {
                let mut doc = serde_json::to_value(&v).expect("serializable");
                doc["gateway_token"] = json!(token);
                print_json(&doc);
            } else {
                let dash = |o: Option<&str>| o.unwrap_or("-").to_string();
                outln!("service   {}", v.service);
                outln!("engine    {}", v.engine);
                outln!("host      {}", dash(v.host));
                outln!("port      {}", v.port.map_or("-".into(), |p| p.to_string()));
                outln!("database  {}", v.database);
                outln!("user      {}", dash(v.user));
                match (v.password, reveal) {
                    (None, _) => outln!("password  -"),
                    (Some(p), true) => outln!("password  {p}"),
                    (Some(p), false) => outln!("password  {p} (--reveal to show)"),
                }
                outln!("url       {}", v.url);
                match (token, reveal) {
                    (None, _) => outln!("gateway   - (`silo up` makes one)"),
                    (Some(t), true) => outln!("gateway   {t}"),
                    (Some(t), false) => outln!("gateway   {t} (--reveal to show)"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::Rotate {
            service,
            gateway: true,
            json,
        } => {
            let service = ctx.service(service)?;
            let secrets = ctx.stores.secrets();
            // The store's own credentials file is where the token lives:
            // without it (no `silo up` yet) there is nothing to rotate.
            secrets.require(service).map_err(Failure::store)?;
            secrets
                .replace_gateway_token(&service.name)
                .map_err(Failure::store)?;
            let file = secrets.path(&service.name);
            if *json {
                print_json(&json!({
                    "service": service.name,
                    "rotated": "gateway_token",
                    "credentials_file": file
                }));
            } else {
                outln!(
                    "rotated the gateway token of `{}`; a running `silo gateway` takes it on SIGHUP or at its next start. New token in {}",
                    service.name,
                    file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::Rotate {
            service,
            gateway: false,
            json,
        } => {
            let service = ctx.service(service)?;
            let engine = ctx.stores.engine(service).map_err(Failure::store)?;
            engine.rotate(service).await.map_err(Failure::store)?;
            let file = ctx.stores.secrets().path(&service.name);
            if *json {
                print_json(
                    &json!({"service": service.name, "rotated": true, "credentials_file": file}),
                );
            } else {
                outln!(
                    "rotated the password of `{}`; the old one no longer works. New credentials: {}",
                    service.name,
                    file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
