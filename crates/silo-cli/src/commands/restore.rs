//! `silo restore SERVICE`.

use std::process::ExitCode;

use serde_json::json;
use silo_backup::restore::{self, Request, Target};
use silo_backup::{BackupId, Destination};
use silo_manifest::{Engine, Service};

use crate::cli::RestoreArgs;
use crate::commands::backup::parse_id;
use crate::context::{
    CmdResult, Context, Failure, exit_code_of, print_json, require_yes, store_report,
};

pub async fn run(ctx: &Context, args: &RestoreArgs) -> CmdResult {
    let service = ctx.service(&args.service)?;
    if args.to_time.is_some() || crate::commands::restore_pitr::is_pitr(service) {
        return crate::commands::restore_pitr::restore(ctx, args).await;
    }
    let from = args.from_service.as_deref().unwrap_or(&service.name);
    let mut backup = parse_id(args.backup.as_deref())?;
    if args.replace {
        require_yes(
            args.yes,
            &format!("replace the live store of service `{}`", service.name),
        )?;
    }
    if args.keep_credentials && service.engine == Engine::Sqlite {
        return Err(Failure::usage(miette::miette!(
            help =
                "leave out --keep-credentials: a SQLite store is a file the service opens by path",
            "service `{}` is on SQLite, whose stores have no credentials to keep",
            service.name
        )));
    }
    let failed = |e: silo_backup::BackupError| Failure {
        code: exit_code_of(&e),
        report: store_report(&format!("{}: ", service.name), &e),
    };
    // A service no longer in silo.toml still has its backups in the
    // default folder.
    let destination = Destination::of(&ctx.manifest, from).map_err(failed)?;
    let into = match (&args.into, args.replace) {
        (Some(name), _) => Target::New(name.clone()),
        (None, true) => Target::Replace,
        (None, false) => {
            // The new store is named after the backup: choose it now.
            let meta = restore::choose(&destination, backup.as_ref(), from, service)
                .await
                .map_err(failed)?;
            let name = default_name(service, &meta.id);
            backup = Some(meta.id);
            Target::New(name)
        }
    };
    let request = Request {
        backup,
        from_service: from,
        into,
        data_dir: &ctx.manifest.data_dir,
        keep_credentials: args.keep_credentials,
        terminate: args.terminate,
        jobs: args
            .restore_jobs
            .map_or_else(silo_backup::postgres::default_restore_jobs, usize::from),
    };
    let restored = restore::restore(&ctx.stores, service, &destination, &request)
        .await
        .map_err(failed)?;
    if args.json {
        print_json(&json!({ "restored": restored }));
    } else {
        outln!(
            "restored backup {} of `{}` into {}",
            restored.backup,
            restored.from_service,
            restored.store
        );
        let tables = restored.tables.len();
        let rows = restored.tables.values().sum::<u64>();
        outln!(
            "checked: every file's SHA-256, then {tables} {} ({rows} {}) and the schema match the backup",
            if tables == 1 { "table" } else { "tables" },
            if rows == 1 { "row" } else { "rows" },
        );
        if let Some(credentials) = &restored.credentials {
            outln!("its credentials are in {credentials}");
        }
        if restored.terminated > 0 {
            outln!(
                "ended {} session(s) of `{}` on the live store",
                restored.terminated,
                service.name
            );
        }
        match (&restored.previous, service.engine) {
            (Some(previous), Engine::Postgres) => outln!(
                "the previous store is kept as database {previous}; drop it once the service runs well"
            ),
            (Some(previous), Engine::Sqlite) => outln!(
                "the previous store is kept at {previous}; remove it once the service runs well"
            ),
            (None, _) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The store a restore without --into or --replace makes: SQLite's file
/// `restored-<id>`; PostgreSQL's database `<database>_restored_<time>`
/// (lower snake case, within 63 bytes with its role's `_svc`).
fn default_name(service: &Service, id: &BackupId) -> String {
    match service.engine {
        Engine::Sqlite => format!("restored-{id}"),
        Engine::Postgres => {
            let stamp = id.as_str().to_ascii_lowercase().replace('-', "_");
            let tail = format!("_restored_{stamp}");
            let base: String = service.database.chars().take(63 - 4 - tail.len()).collect();
            format!("{base}{tail}")
        }
    }
}
