//! `silo init`: a commented manifest and the service folders, or one of
//! the bundled example systems.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use include_dir::{Dir, include_dir};
use silo_manifest::names::{check_identifier, suggest_identifier};
use silo_manifest::{MANIFEST_FILE, Manifest, Overrides};

use crate::cli::{Example, InitArgs};
use crate::context::{CmdResult, Failure};

static BATTLESCOPE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/battlescope");
static ORION: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/orion");
static CAPSULE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/capsule");
static DND: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/dnd");

fn example_dir(example: Example) -> &'static Dir<'static> {
    match example {
        Example::Battlescope => &BATTLESCOPE,
        Example::Orion => &ORION,
        Example::Capsule => &CAPSULE,
        Example::Dnd => &DND,
    }
}

/// Every file of an embedded folder, with its path inside it.
fn files<'a>(dir: &'a Dir<'a>, out: &mut Vec<(&'a Path, &'a [u8])>) {
    for file in dir.files() {
        out.push((file.path(), file.contents()));
    }
    for sub in dir.dirs() {
        files(sub, out);
    }
}

/// `engine` is the global `--engine` (or SILO_ENGINE): `init` writes it
/// into the manifest, where a store's engine belongs.
pub fn run(args: &InitArgs, engine: Option<&str>) -> CmdResult {
    let target = &args.dir;
    let mut plan: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    match args.example {
        Some(example) => {
            let mut all = Vec::new();
            files(example_dir(example), &mut all);
            plan.extend(all.into_iter().map(|(p, c)| {
                let mut contents = c.to_vec();
                if let Some(engine) = engine
                    && p == Path::new(MANIFEST_FILE)
                {
                    contents = set_engine(&String::from_utf8_lossy(&contents), engine).into_bytes();
                }
                (target.join(p), contents)
            }));
        }
        None => {
            let project = match &args.name {
                Some(n) => n.clone(),
                None => folder_name(target),
            };
            let services = if args.services.is_empty() {
                vec!["app".to_string()]
            } else {
                args.services.clone()
            };
            let mut seen = std::collections::HashSet::new();
            for s in &services {
                if let Err(problem) = check_identifier(s) {
                    let help = suggest_identifier(s)
                        .map(|x| format!("try `{x}`"))
                        .unwrap_or_else(|| "use lower snake_case".into());
                    return Err(Failure::usage(miette::miette!(
                        help = help,
                        "invalid service name `{s}`: {problem}"
                    )));
                }
                if !seen.insert(s.as_str()) {
                    return Err(Failure::usage(miette::miette!(
                        help = "name each service once",
                        "--service `{s}` is given twice; every service needs a name of its own"
                    )));
                }
                folders.push(target.join("services").join(s).join("migrations"));
            }
            let mut text = template(&project, &services);
            if let Some(engine) = engine {
                text = set_engine(&text, engine);
            }
            // Whatever else the names break (a role name over PostgreSQL's
            // 63 bytes, say) is found here, before anything is written.
            let manifest_path = target.join(MANIFEST_FILE);
            if let Err(e) = Manifest::from_str(&text, &manifest_path, &Overrides::default()) {
                let problems: Vec<String> = e.problems().map(|p| p.message.clone()).collect();
                return Err(Failure::usage(miette::miette!(
                    help = "choose other names with --service and --name",
                    "these names would make an invalid silo.toml: {}",
                    problems.join("; ")
                )));
            }
            plan.push((manifest_path, text.into_bytes()));
        }
    }

    let existing: Vec<&PathBuf> = plan.iter().map(|(p, _)| p).filter(|p| p.exists()).collect();
    if !existing.is_empty() && !args.force {
        return Err(Failure::usage(miette::miette!(
            help = "pass --force to overwrite them",
            "refusing to overwrite {} existing file{}: {}",
            existing.len(),
            if existing.len() == 1 { "" } else { "s" },
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for (path, contents) in &plan {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| write_failure(parent, e))?;
        }
        std::fs::write(path, contents).map_err(|e| write_failure(path, e))?;
    }
    for folder in &folders {
        std::fs::create_dir_all(folder).map_err(|e| write_failure(folder, e))?;
    }
    // What we wrote must load: catch a broken template or example early.
    let manifest_path = target.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path, &Overrides::default())
        .map_err(|e| Failure::failed(miette::Report::new(e)))?;
    outln!(
        "wrote {} ({} service{}: {})",
        manifest_path.display(),
        manifest.services.len(),
        if manifest.services.len() == 1 {
            ""
        } else {
            "s"
        },
        manifest
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    outln!("next: `silo up` to provision a store per service, then `silo status`");
    Ok(ExitCode::SUCCESS)
}

fn write_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::failed(miette::miette!("cannot write {}: {e}", path.display()))
}

fn folder_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "my_system".into())
}

/// The manifest with its `[defaults]` engine set to `engine`.
fn set_engine(manifest: &str, engine: &str) -> String {
    let mut done = false;
    manifest
        .split_inclusive('\n')
        .map(|line| {
            if !done && line.starts_with("engine = ") {
                done = true;
                format!("engine = \"{engine}\"\n")
            } else {
                line.to_string()
            }
        })
        .collect()
}

fn template(project: &str, services: &[String]) -> String {
    // A TOML string: quotes and backslashes in a folder's name stay inert.
    let project = toml::Value::String(project.to_string());
    let mut out = format!(
        r#"# silo.toml: one isolated store per service.
# Every field is documented in docs/manifest.md.

[project]
name = {project}

[defaults]
# "sqlite" keeps one file per service under data_dir (zero setup);
# "postgres" gives each service a database and a login role on the server
# named by SILO_PG_ADMIN_URL. Choose before `silo up`: a store stays on the
# engine it was made on.
engine = "sqlite"
# SQLite stores and the secrets/ folder of credentials live here (mode 0700).
data_dir = ".silo"
# PostgreSQL only: "database" (one server, a database + role per service)
# or "instance" (one server per service; set each service's url_env).
isolation = "database"
"#
    );
    for s in services {
        out.push_str(&format!(
            r#"
[services.{s}]
# database = "{s}"                      # default: the service name
# role = "{s}_svc"                      # default: <service>_svc
# engine = "postgres"                    # this service's own choice
# url_env = "{upper}_PG_URL"             # instance isolation: its server's admin URL
# migrations = "services/{s}/migrations" # default shown
# connection_limit = 20
# owner = "team name"
# publishes = ["{s}.created"]           # event types it emits
# consumes = []                          # event types it reads
"#,
            upper = s.to_uppercase()
        ));
    }
    out
}
