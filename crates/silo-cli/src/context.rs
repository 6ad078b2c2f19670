//! What every command starts from: the manifest, the engines, and the
//! conventions for failures and output.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use miette::{MietteDiagnostic, Report};
use silo_manifest::{Engine, Manifest, Overrides, Service, find_manifest};
use silo_store::{StoreError, Stores, StoresConfig};

use crate::cli::{EngineArg, Global};

/// A command's failure and the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub report: Report,
}

pub type CmdResult = Result<ExitCode, Failure>;

impl Failure {
    /// Bad usage, bad manifest, unreachable server: exit 2.
    pub fn usage(report: Report) -> Self {
        Failure { code: 2, report }
    }

    /// An operation that failed: exit 1.
    pub fn failed(report: Report) -> Self {
        Failure { code: 1, report }
    }

    /// A store error, with its cause and hint.
    pub fn store(e: StoreError) -> Self {
        Failure {
            code: exit_code_of(&e),
            report: store_report("", &e),
        }
    }
}

/// The documented exit code of an error silo reports (README, "Exit
/// codes"): 2 for bad usage, a bad manifest, an unreachable server or a
/// manifest that does not match the stores; 1 for an operation that
/// failed. The one place that decides it: every command maps its errors
/// through here.
pub fn exit_code_of(e: &(dyn std::error::Error + 'static)) -> u8 {
    if let Some(e) = e.downcast_ref::<StoreError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<silo_migrate::MigrateError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<silo_audit::AuditError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<silo_events::EventsError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<silo_backup::BackupError>() {
        e.exit_code()
    } else if e.downcast_ref::<silo_manifest::ManifestError>().is_some()
        || e.downcast_ref::<silo_manifest::LoadError>().is_some()
    {
        2
    } else {
        1
    }
}

/// The exit code of a command run over many services: the highest of
/// their errors' codes, 0 when none failed.
pub fn exit_code_all<'a, E: std::error::Error + 'static>(
    errors: impl IntoIterator<Item = &'a E>,
) -> ExitCode {
    ExitCode::from(
        errors
            .into_iter()
            .map(|e| exit_code_of(e))
            .max()
            .unwrap_or(0),
    )
}

/// [`exit_code_all`] of the errors among `results`.
pub fn store_exit_code<'a, T: 'a, E: std::error::Error + 'static>(
    results: impl IntoIterator<Item = &'a Result<T, E>>,
) -> ExitCode {
    exit_code_all(results.into_iter().filter_map(|r| r.as_ref().err()))
}

/// A library error as the CLI shows it: `prefix` (the service, say), its
/// message and innermost cause on one line, and its own diagnostic code
/// and help. Every error is rendered through this one shape.
pub struct Shown<E> {
    prefix: String,
    error: E,
}

impl<E: std::error::Error + miette::Diagnostic + 'static> Shown<E> {
    pub fn new(prefix: impl Into<String>, error: E) -> Self {
        Shown {
            prefix: prefix.into(),
            error,
        }
    }
}

impl<E: std::error::Error + 'static> std::fmt::Display for Shown<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let top = self.error.to_string();
        let root = silo_store::root_cause(&self.error);
        if root == top || top.ends_with(&root) {
            write!(f, "{}{top}", self.prefix)
        } else {
            write!(f, "{}{top}: {root}", self.prefix)
        }
    }
}

impl<E: std::error::Error + 'static> std::fmt::Debug for Shown<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

// No `source()`: the message already ends with the innermost cause.
impl<E: std::error::Error + 'static> std::error::Error for Shown<E> {}

impl<E: std::error::Error + miette::Diagnostic + 'static> miette::Diagnostic for Shown<E> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.error.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.error.help()
    }
}

/// Renders a borrowed store error the way [`Shown`] renders an owned one:
/// `prefix`, message, innermost cause, and the error's own code and help.
pub fn store_report<E: std::error::Error + miette::Diagnostic + 'static>(
    prefix: &str,
    e: &E,
) -> Report {
    let mut diag = MietteDiagnostic::new(format!("{prefix}{}", describe(e)));
    if let Some(code) = miette::Diagnostic::code(e) {
        diag = diag.with_code(code.to_string());
    }
    if let Some(help) = miette::Diagnostic::help(e) {
        diag = diag.with_help(help.to_string());
    }
    Report::new(diag)
}

/// `message: innermost cause` on one line.
pub fn describe<E: std::error::Error + 'static>(e: &E) -> String {
    let top = e.to_string();
    let root = silo_store::root_cause(e);
    if root == top {
        top
    } else {
        format!("{top}: {root}")
    }
}

/// The loaded project.
pub struct Context {
    pub manifest: Manifest,
    /// Shared: long-running commands (the events worker) hand it to tasks.
    pub stores: std::sync::Arc<Stores>,
    /// How many services to work on at once.
    pub jobs: usize,
}

impl Context {
    /// Finds and loads the manifest, applying flags and environment.
    pub fn load(global: &Global) -> Result<Self, Failure> {
        let path = match &global.manifest {
            Some(path) => path.clone(),
            None => {
                let cwd = std::env::current_dir().map_err(|e| {
                    Failure::usage(miette::miette!("cannot read the current folder: {e}"))
                })?;
                let found = find_manifest(&cwd).map_err(|e| Failure::usage(Report::new(e)))?;
                // Shown in errors: keep it short when it is below us.
                found
                    .strip_prefix(&cwd)
                    .map(Path::to_path_buf)
                    .unwrap_or(found)
            }
        };
        let overrides = Overrides {
            engine: global.engine.map(|e| match e {
                EngineArg::Sqlite => Engine::Sqlite,
                EngineArg::Postgres => Engine::Postgres,
            }),
            data_dir: global.data_dir.as_ref().map(|d| absolute(d)),
        };
        let mut manifest =
            Manifest::load(&path, &overrides).map_err(|e| Failure::usage(Report::new(e)))?;
        manifest.data_dir = absolute(&manifest.data_dir);
        manifest.root = absolute(&manifest.root);
        // silo.toml's own `data_dir` is checked with its line and column
        // when the manifest loads; this catches --data-dir and SILO_DATA_DIR.
        if manifest.data_dir_holds_manifest() {
            return Err(Failure::usage(miette::miette!(
                help =
                    "give stores and secrets a folder of their own, such as .silo beside silo.toml",
                "the data dir {} (from --data-dir or SILO_DATA_DIR) holds the project folder and {}; silo keeps a data dir private (mode 0700) and out of git, which would hide the project",
                manifest.data_dir.display(),
                manifest.path.display()
            )));
        }
        let stores = std::sync::Arc::new(Stores::new(StoresConfig {
            project: Some(manifest.project.clone()),
            data_dir: manifest.data_dir.clone(),
            admin_url: global.admin_url.clone(),
            concurrency: usize::from(global.jobs),
        }));
        Ok(Context {
            manifest,
            stores,
            jobs: usize::from(global.jobs),
        })
    }

    /// The named services, or all of them; unknown names are a usage error.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>, Failure> {
        self.manifest.select(names).map_err(|unknown| {
            let known: Vec<&str> = self
                .manifest
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            Failure::usage(miette::miette!(
                help = format!(
                    "services in {}: {}",
                    self.manifest.path.display(),
                    known.join(", ")
                ),
                "unknown service{} {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// One service by name.
    pub fn service(&self, name: &str) -> Result<&Service, Failure> {
        Ok(self.select(std::slice::from_ref(&name.to_string()))?[0])
    }
}

fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A progress bar on stderr for work over many services; invisible when
/// stderr is not a terminal.
pub fn progress(len: usize, verb: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(verb.to_string());
    bar
}

/// The JSON document of a command that failed before it had a result:
/// `{"error": {"code", "message", "help", "exit_code"}}`.
pub fn error_json(failure: &Failure) -> serde_json::Value {
    use miette::Diagnostic;
    let report: &dyn Diagnostic = failure.report.as_ref();
    serde_json::json!({
        "error": {
            "code": report.code().map(|c| c.to_string()),
            "message": failure.report.to_string(),
            "help": report.help().map(|h| h.to_string()),
            "exit_code": failure.code,
        }
    })
}

/// Prints a JSON document on stdout.
pub fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// A table in the house style.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

/// Human-readable bytes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// Refuses destruction without `--yes`.
pub fn require_yes(yes: bool, what: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    Err(Failure::usage(miette::miette!(
        help = "run again with --yes to confirm",
        "refusing to {what} without --yes"
    )))
}

/// Whether a person can be asked: stdin and stderr are both terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The refusal of a destructive command run without `--yes` and without a
/// terminal to ask on (exit 2, before anything changed).
pub fn refuse_without_terminal(what: &str, help: &str) -> Failure {
    Failure::usage(miette::miette!(
        help = help.to_string(),
        "refusing to {what} without --yes: no terminal to ask on"
    ))
}

/// Asks `question` on the terminal; true only on an explicit yes.
pub fn ask(question: &str) -> bool {
    err!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::exit_code_of;
    use silo_migrate::MigrateError;
    use silo_store::StoreError;

    #[test]
    fn exit_codes_follow_the_contract() {
        let unreachable = || StoreError::Connect {
            target: "PostgreSQL at 127.0.0.1:1".into(),
            source: sqlx::Error::PoolTimedOut,
        };
        let mismatch = || StoreError::EngineMismatch {
            service: "orders".into(),
            recorded: silo_manifest::Engine::Postgres,
            configured: silo_manifest::Engine::Sqlite,
        };
        let foreign = StoreError::NotServiceStore {
            service: "orders".into(),
            kind: "SQLite file",
            name: "x".into(),
            found: Some("billing".into()),
        };
        assert_eq!(exit_code_of(&unreachable()), 2);
        assert_eq!(exit_code_of(&mismatch()), 2);
        assert_eq!(exit_code_of(&foreign), 1);
        assert_eq!(exit_code_of(&MigrateError::Store(unreachable())), 2);
        assert_eq!(exit_code_of(&MigrateError::Store(mismatch())), 2);
        assert_eq!(
            exit_code_of(&MigrateError::LockTimeout(std::time::Duration::from_secs(
                1
            ))),
            1
        );
        assert_eq!(
            exit_code_of(&silo_audit::AuditError::Privilege("x".into())),
            2
        );
        assert_eq!(exit_code_of(&std::io::Error::other("x")), 1);
    }
}
