//! Applying, undoing, baselining and repairing: the operations that write
//! a store, all through [`Target`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde::Serialize;
use silo_manifest::Service;

use crate::error::{Failure, Location, MigrateError};
use crate::file::{Kind, Migration};
use crate::history::{HistoryKind, HistoryRow, NewRow};
use crate::placeholders::{Substituted, substitute};
use crate::split::Statement;
use crate::state::{self, Entry, State};
use crate::target::{DbError, Target};
use crate::version::Version;

/// First-line marker of a file that must run outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = "-- silo:no-transaction";

/// A migration ready to run: placeholders replaced. Its statements are
/// split on first use, so files that are already applied cost nothing.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub migration: Migration,
    pub sql: Substituted,
    analysis: std::sync::OnceLock<Analysis>,
}

/// A file's statements and whether it can run in a transaction.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub statements: Vec<Statement>,
    /// Why it runs outside a transaction, if it does.
    pub no_transaction: Option<String>,
}

impl Prepared {
    /// Splits the file with the target's lexer (once).
    pub fn analysis(&self, target: &dyn Target) -> &Analysis {
        self.analysis.get_or_init(|| {
            let statements = target.split(&self.sql.text);
            let marked = self
                .migration
                .sql
                .lines()
                .next()
                .is_some_and(|l| l.trim().eq_ignore_ascii_case(NO_TRANSACTION_MARKER));
            let no_transaction = if marked {
                Some(format!("marked `{NO_TRANSACTION_MARKER}`"))
            } else {
                statements
                    .iter()
                    .find_map(|s| s.no_transaction)
                    .map(|why| format!("contains {why}"))
            };
            Analysis {
                statements,
                no_transaction,
            }
        })
    }
}

/// Options of [`migrate`].
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Stop after this version.
    pub target: Option<Version>,
    /// Show the plan; change nothing.
    pub dry_run: bool,
    /// Run even when applied files changed.
    pub ignore_mismatch: bool,
    /// Apply pending versions older than the newest applied one.
    pub out_of_order: bool,
}

/// One migration applied (or, in a dry run, to be applied).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub script: String,
    pub version: Option<String>,
    #[serde(rename = "type")]
    pub kind: HistoryKind,
    pub transactional: bool,
    /// Why not, when not transactional.
    pub no_transaction: Option<String>,
    pub execution_time_ms: i32,
    /// The SQL, in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// The values of `${...}` for a service: built-ins plus the manifest's.
pub fn placeholder_values(service: &Service) -> BTreeMap<String, String> {
    let mut values = service.placeholders.clone();
    values.insert("service".into(), service.name.clone());
    values.insert("database".into(), service.database.clone());
    values.insert("role".into(), service.role.clone());
    values
}

/// Replaces placeholders and splits, for every file: all errors surface
/// before a store is touched.
pub fn prepare(migrations: &[Migration], service: &Service) -> Result<Vec<Prepared>, MigrateError> {
    let values = placeholder_values(service);
    migrations
        .iter()
        .map(|m| {
            let sql = substitute(&m.sql, &values).map_err(|u| {
                let (line, column) = line_column(&m.sql, u.offset);
                MigrateError::UnknownPlaceholder {
                    location: Location {
                        path: m.path.clone(),
                        line,
                        column,
                    },
                    name: u.name,
                }
            })?;
            Ok(Prepared {
                migration: m.clone(),
                sql,
                analysis: std::sync::OnceLock::new(),
            })
        })
        .collect()
}

/// 1-based line and column (characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    silo_manifest::line_column(text, offset)
}

/// Everything to run, in order, given the history: pending versioned files
/// up to the target, then (without a target) new or changed repeatables.
fn pending<'p>(
    prepared: &'p [Prepared],
    migrations: &[Migration],
    history: &[HistoryRow],
    options: &MigrateOptions,
) -> Result<Vec<&'p Prepared>, MigrateError> {
    let entries = state::entries(migrations, history);
    check(&entries, options)?;
    let runnable = |e: &Entry| match e.state {
        State::Pending => true,
        State::OutOfOrder => options.out_of_order,
        _ => false,
    };
    let by_script: std::collections::HashMap<&str, &Prepared> = prepared
        .iter()
        .map(|p| (p.migration.script.as_str(), p))
        .collect();
    let mut out: Vec<&Prepared> = entries
        .iter()
        .filter(|e| e.kind == HistoryKind::Versioned && runnable(e))
        .map(|e| by_script[e.script.as_str()])
        .take_while(|p| {
            options
                .target
                .as_ref()
                .is_none_or(|t| p.migration.version.as_ref().is_some_and(|v| v <= t))
        })
        .collect();
    // Out-of-order files come in version order too.
    out.sort_by(|a, b| a.migration.version.cmp(&b.migration.version));
    if options.target.is_none() {
        out.extend(
            entries
                .iter()
                .filter(|e| e.kind == HistoryKind::Repeatable && runnable(e))
                .map(|e| by_script[e.script.as_str()]),
        );
    }
    Ok(out)
}

fn files_of(prepared: &[Prepared]) -> Vec<Migration> {
    prepared.iter().map(|p| p.migration.clone()).collect()
}

fn check(entries: &[Entry], options: &MigrateOptions) -> Result<(), MigrateError> {
    let mut problems = state::problems(entries);
    if options.ignore_mismatch {
        problems.retain(|p| p.state() != State::ChecksumMismatch);
    }
    if let Some(first) = problems.first() {
        let more = if problems.len() > 1 {
            format!(" (and {} more)", problems.len() - 1)
        } else {
            String::new()
        };
        return Err(MigrateError::Validation(format!("{first}{more}")));
    }
    let late: Vec<&str> = entries
        .iter()
        .filter(|e| e.state == State::OutOfOrder)
        .map(|e| e.script.as_str())
        .collect();
    if !late.is_empty() && !options.out_of_order {
        return Err(MigrateError::Refused(format!(
            "{} {} older than the newest applied version; pass --out-of-order to apply {}",
            late.join(", "),
            if late.len() == 1 { "is" } else { "are" },
            if late.len() == 1 { "it" } else { "them" }
        )));
    }
    Ok(())
}

/// Applies pending migrations in order, each in its own transaction
/// (or statement by statement when it cannot run in one). Calls `on_step`
/// after each.
pub async fn migrate(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &MigrateOptions,
    mut on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    refuse_foreign_history(target).await?;
    if options.dry_run {
        return plan(target, prepared, options).await;
    }
    target.lock().await?;
    let result = apply_all(target, prepared, options, &mut on_step).await;
    let unlocked = target.unlock().await;
    let steps = result?;
    unlocked?;
    Ok(steps)
}

/// A store that another tool migrated and silo never did: running the
/// files would apply again what that tool applied (and, with Flyway's
/// `baselineOnMigrate`, what was there before it). Refused until the
/// history is adopted or the store baselined.
async fn refuse_foreign_history(target: &mut dyn Target) -> Result<(), MigrateError> {
    if !target.history().await?.is_empty() {
        return Ok(());
    }
    match crate::adopt::detect(target)
        .await?
        .into_iter()
        .find(|f| f.rows != Some(0))
    {
        Some(found) => Err(MigrateError::ForeignHistory {
            tool: found.tool,
            table: found.table,
            rows: found.rows,
        }),
        None => Ok(()),
    }
}

async fn plan(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &MigrateOptions,
) -> Result<Vec<Step>, MigrateError> {
    let history = target.history().await?;
    let migrations = files_of(prepared);
    Ok(pending(prepared, &migrations, &history, options)?
        .into_iter()
        .map(|p| step_of(p, target, 0, true))
        .collect())
}

fn step_of(p: &Prepared, target: &dyn Target, ms: i32, with_sql: bool) -> Step {
    let no_transaction = p.analysis(target).no_transaction.clone();
    Step {
        script: p.migration.script.clone(),
        version: p.migration.version.as_ref().map(|v| v.to_string()),
        kind: p.migration.kind.into(),
        transactional: no_transaction.is_none(),
        no_transaction,
        execution_time_ms: ms,
        sql: with_sql.then(|| p.sql.text.clone()),
    }
}

async fn apply_all(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &MigrateOptions,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Result<Vec<Step>, MigrateError> {
    let migrations = files_of(prepared);
    let mut steps = Vec::new();
    // Under a run lock (PostgreSQL) the plan made once stays true. Without
    // one (SQLite) each step plans again inside its own write transaction,
    // so concurrent runs never apply a file twice.
    let mut queue: Option<VecDeque<&Prepared>> = None;
    let mut first = true;
    loop {
        target.begin().await?;
        let next = async {
            if first {
                target.ensure_history().await?;
            }
            match (&mut queue, target.run_lock()) {
                (Some(q), true) => Ok(q.pop_front()),
                _ => {
                    let history = target.history().await?;
                    let mut q: VecDeque<&Prepared> =
                        pending(prepared, &migrations, &history, options)?.into();
                    let next = q.pop_front();
                    queue = Some(q);
                    Ok::<_, MigrateError>(next)
                }
            }
        }
        .await;
        first = false;
        let p = match next {
            Ok(Some(p)) => p,
            Ok(None) => {
                target.commit().await?;
                return Ok(steps);
            }
            Err(e) => {
                let _ = target.rollback().await;
                return Err(e);
            }
        };
        steps.push(run_file(target, p).await?);
        on_step(steps.last().expect("just pushed"));
    }
}

/// Runs one file (V, U or R) and records it in the history. The caller has
/// begun a transaction (the one it planned in); it is closed on return.
/// A transactional file runs and is recorded in that transaction. A file
/// that cannot run in one runs statement by statement after it commits,
/// and is then recorded, as failed if a statement failed.
async fn run_file(target: &mut dyn Target, p: &Prepared) -> Result<Step, MigrateError> {
    if let Some(f) = refusal(p, &*target) {
        let _ = target.rollback().await;
        return Err(MigrateError::failed(f));
    }
    let analysis = p.analysis(&*target);
    let started = Instant::now();
    if analysis.no_transaction.is_none() {
        if let Err(e) = target.execute(&p.sql.text).await {
            target.rollback().await?;
            return Err(MigrateError::failed(locate(target, p, e, true).await));
        }
        let ms = elapsed_ms(started);
        target.record(&new_row(p, ms, true)).await?;
        target.commit().await?;
        return Ok(step_of(p, &*target, ms, false));
    }
    // Whatever the planning step began must not stay open: an open
    // transaction would stall a concurrent index build.
    target.commit().await?;
    let mut failure = None;
    for s in &analysis.statements {
        if let Err(e) = target.execute(s.text(&p.sql.text)).await {
            failure = Some(failure_at(p, s, e, false));
            break;
        }
    }
    let ms = elapsed_ms(started);
    target.begin().await?;
    target.record(&new_row(p, ms, failure.is_none())).await?;
    target.commit().await?;
    if let Some(f) = failure {
        return Err(MigrateError::failed(f));
    }
    Ok(step_of(p, &*target, ms, false))
}

/// Why a file must not run at all, found before any of it runs: it ends
/// inside a comment, string or trigger body (the engine would skip or
/// refuse the rest), it runs outside a transaction and does not parse, or
/// it holds a `COMMIT` or `ROLLBACK` that would end
/// silo's transaction early, so the rest would run outside it and the file
/// be recorded as applied whatever happened.
fn refusal(p: &Prepared, target: &dyn Target) -> Option<Failure> {
    if let Some(incomplete) = crate::split::incomplete(&p.sql.text, target.engine()) {
        let e = DbError {
            message: format!("{incomplete}; nothing of this file was run"),
            code: None,
            offset: None,
        };
        return Some(failure(p, Some(incomplete.offset), None, e, true));
    }
    // Outside a transaction, a syntax error late in the file would leave
    // the statements before it applied: check the whole file first.
    if p.analysis(target).no_transaction.is_some()
        && let Some(bad) = crate::split::syntax_error(&p.sql.text, target.engine())
    {
        let e = DbError {
            message: format!(
                "{}; the file runs outside a transaction, so nothing of it was run",
                bad.message
            ),
            code: None,
            offset: None,
        };
        return Some(failure(p, Some(bad.offset), None, e, true));
    }
    let s = p
        .analysis(target)
        .statements
        .iter()
        .find(|s| s.transaction_control.is_some())?;
    let what = s.transaction_control.unwrap_or("transaction control");
    let e = DbError {
        message: format!(
            "{what} in a migration: silo runs each file in a transaction of its own; remove it (a file with statements that cannot run in a transaction runs outside one by itself)"
        ),
        code: None,
        offset: None,
    };
    Some(failure_at(p, s, e, true))
}

fn elapsed_ms(started: Instant) -> i32 {
    i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)
}

fn new_row(p: &Prepared, ms: i32, success: bool) -> NewRow {
    NewRow {
        version: p.migration.version.as_ref().map(|v| v.to_string()),
        description: p.migration.description.clone(),
        kind: p.migration.kind.into(),
        script: p.migration.script.clone(),
        checksum: Some(p.migration.checksum.clone()),
        execution_time_ms: ms,
        success,
    }
}

/// Places a failure in the file. When the server gave no position, the
/// statements are replayed one by one in a transaction that is rolled back,
/// to find the one that fails.
async fn locate(target: &mut dyn Target, p: &Prepared, e: DbError, rolled_back: bool) -> Failure {
    if let Some(offset) = e.offset {
        let statement = p
            .analysis(&*target)
            .statements
            .iter()
            .find(|s| s.start <= offset && offset <= s.end)
            .map(|s| s.text(&p.sql.text).to_string());
        return failure(p, Some(offset), statement, e, rolled_back);
    }
    if target.begin().await.is_ok() {
        for s in &p.analysis(&*target).statements {
            if let Err(inner) = target.execute(s.text(&p.sql.text)).await {
                let _ = target.rollback().await;
                let mut f = failure_at(p, s, inner, rolled_back);
                // Keep the first run's message: it is what really happened.
                f.message = e.message.clone();
                f.code = e.code.clone().or(f.code);
                return f;
            }
        }
        let _ = target.rollback().await;
    }
    failure(p, None, None, e, rolled_back)
}

fn failure_at(p: &Prepared, s: &Statement, e: DbError, rolled_back: bool) -> Failure {
    let offset = e.offset.map_or(s.start, |o| s.start + o);
    failure(
        p,
        Some(offset),
        Some(s.text(&p.sql.text).to_string()),
        e,
        rolled_back,
    )
}

fn failure(
    p: &Prepared,
    offset: Option<usize>,
    statement: Option<String>,
    e: DbError,
    rolled_back: bool,
) -> Failure {
    let location = offset.map(|o| {
        let original = p.sql.to_original(o);
        let (line, column) = line_column(&p.migration.sql, original);
        Location {
            path: p.migration.path.clone(),
            line,
            column,
        }
    });
    Failure {
        script: p.migration.script.clone(),
        location,
        statement,
        message: e.message,
        code: e.code,
        rolled_back,
    }
}

/// Undoes applied versions newest first, down to (not including) `to`, or
/// only the newest when `to` is `None`. Refuses before running anything
/// when an undo file is missing. Each U file runs as a V file does: in a
/// transaction of its own, or statement by statement when it cannot run in
/// one (`DROP INDEX CONCURRENTLY`, `-- silo:no-transaction`).
pub async fn undo(
    target: &mut dyn Target,
    prepared: &[Prepared],
    to: Option<&Version>,
    mut on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    target.lock().await?;
    let result = undo_locked(target, prepared, to, &mut on_step).await;
    let unlocked = target.unlock().await;
    let steps = result?;
    unlocked?;
    Ok(steps)
}

/// What [`undo`] would run, in order, each step with its SQL; reads the
/// history and changes nothing.
pub async fn undo_plan(
    target: &mut dyn Target,
    prepared: &[Prepared],
    to: Option<&Version>,
) -> Result<Vec<Step>, MigrateError> {
    let history = target.history().await?;
    Ok(undo_files(prepared, &history, to)?
        .into_iter()
        .map(|u| step_of(u, &*target, 0, true))
        .collect())
}

/// The U files that undo the applied versions above `to` (or the newest
/// one), newest first.
fn undo_files<'p>(
    prepared: &'p [Prepared],
    history: &[HistoryRow],
    to: Option<&Version>,
) -> Result<Vec<&'p Prepared>, MigrateError> {
    let replayed = state::replay(history);
    let mut applied: Vec<Version> = replayed
        .applied
        .values()
        .filter_map(|r| r.version.as_deref().and_then(|v| Version::parse(v).ok()))
        .collect();
    applied.sort();
    applied.reverse();
    let chosen: Vec<Version> = match to {
        Some(to) => applied.into_iter().filter(|v| v > to).collect(),
        None => applied.into_iter().take(1).collect(),
    };
    chosen
        .iter()
        .map(|v| {
            prepared
                .iter()
                .find(|p| p.migration.kind == Kind::Undo && p.migration.version.as_ref() == Some(v))
                .ok_or_else(|| MigrateError::Undo {
                    version: v.to_string(),
                    reason: format!("there is no U{v}__*.sql file; nothing was undone"),
                })
        })
        .collect()
}

async fn undo_locked(
    target: &mut dyn Target,
    prepared: &[Prepared],
    to: Option<&Version>,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Result<Vec<Step>, MigrateError> {
    let history = target.history().await?;
    let plan = undo_files(prepared, &history, to)?;
    let mut steps = Vec::new();
    for u in plan {
        target.begin().await?;
        steps.push(run_file(target, u).await?);
        on_step(steps.last().expect("just pushed"));
    }
    Ok(steps)
}

/// Records `version` as the baseline of a store whose history is empty:
/// files up to it never run.
pub async fn baseline(target: &mut dyn Target, version: &Version) -> Result<(), MigrateError> {
    target.lock().await?;
    let result = async {
        target.begin().await?;
        target.ensure_history().await?;
        if !target.history().await?.is_empty() {
            target.rollback().await?;
            return Err(MigrateError::Refused(
                "the store already has a migration history; baseline adopts stores that have none"
                    .into(),
            ));
        }
        target
            .record(&NewRow {
                version: Some(version.to_string()),
                description: "baseline".into(),
                kind: HistoryKind::Baseline,
                script: "<< silo baseline >>".into(),
                checksum: None,
                execution_time_ms: 0,
                success: true,
            })
            .await?;
        target.commit().await
    }
    .await;
    let unlocked = target.unlock().await;
    result?;
    unlocked
}

/// Removes failed rows and realigns recorded checksums with the files.
/// Returns each change in words.
pub async fn repair(
    target: &mut dyn Target,
    migrations: &[Migration],
) -> Result<Vec<String>, MigrateError> {
    target.lock().await?;
    let result = async {
        target.begin().await?;
        let history = target.history().await?;
        let mut changes = Vec::new();
        for row in history.iter().filter(|r| !r.success) {
            target.delete_row(row.installed_rank).await?;
            changes.push(format!("removed the failed row of {}", row.script));
        }
        let replayed = state::replay(&history);
        for m in migrations {
            let row = match m.kind {
                Kind::Versioned => m
                    .version
                    .as_ref()
                    .and_then(|v| replayed.applied.get(&v.canonical()).copied()),
                Kind::Repeatable | Kind::Undo => None,
            };
            if let Some(row) = row
                && row.checksum.as_deref() != Some(m.checksum.as_str())
            {
                target.set_checksum(row.installed_rank, &m.checksum).await?;
                changes.push(format!(
                    "realigned the checksum of {}: {} -> {}",
                    m.script,
                    row.checksum.as_deref().unwrap_or("none"),
                    m.checksum
                ));
            }
        }
        target.commit().await?;
        Ok::<_, MigrateError>(changes)
    }
    .await;
    let unlocked = target.unlock().await;
    let changes = result?;
    unlocked?;
    Ok(changes)
}
