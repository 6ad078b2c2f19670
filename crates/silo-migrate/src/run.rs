//! Applying, undoing, baselining and repairing: the operations that write
//! a store, all through [`Target`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde::Serialize;
use silo_manifest::Service;

use crate::error::{Cancelled, Failure, Location, MigrateError, PartialStop, Stopped};
use crate::file::{Kind, Migration};
use crate::history::{HistoryKind, HistoryRow, NewRow, Progress, StatementsChecksum, StopReason};
use crate::placeholders::{Substituted, substitute};
use crate::split::Statement;
use crate::state::{self, Entry, Partial, State};
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
    /// Go on with a file that ran outside a transaction and stopped part
    /// way, from its first statement not done, instead of refusing.
    pub resume: bool,
    /// Do not object to applied versions that have no file: a caller that
    /// sends only its new migrations (the gateway) knows no others.
    pub ignore_missing: bool,
}

/// Writes a caller makes beside each migration it applies, in that
/// migration's own transaction after its history row: they commit exactly
/// when the migration does and roll back with it (the gateway's events, a
/// given migration's undo). An error rolls the migration back.
#[async_trait::async_trait]
pub trait Applied: Send {
    async fn applied(
        &mut self,
        target: &mut dyn Target,
        migration: &Migration,
        step: &Step,
    ) -> Result<(), MigrateError>;
}

/// No writes beside migrations.
pub struct NoHook;

#[async_trait::async_trait]
impl Applied for NoHook {
    async fn applied(
        &mut self,
        _: &mut dyn Target,
        _: &Migration,
        _: &Step,
    ) -> Result<(), MigrateError> {
        Ok(())
    }
}

/// Options of [`undo_with`].
#[derive(Debug, Clone, Default)]
pub struct UndoOptions {
    /// Undo every applied version above this one; `None`: the newest only.
    pub to: Option<Version>,
    /// Go on with a U file that stopped part way, from its first statement
    /// not done, instead of refusing.
    pub resume: bool,
    /// The U files (scripts, in order) the user was shown and agreed to:
    /// when the plan made under the lock differs (another run migrated in
    /// between), nothing is undone.
    pub expect: Option<Vec<String>>,
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
    /// The statement a resumed file went on from (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<usize>,
}

/// A file that stopped part way, to go on with: its history row and how
/// far it got.
#[derive(Debug, Clone)]
struct Resume {
    installed_rank: i32,
    progress: Progress,
}

impl Resume {
    fn of(partial: &Partial) -> Self {
        Resume {
            installed_rank: partial.installed_rank,
            progress: partial.progress.clone(),
        }
    }
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
/// A file that stopped part way is refused, or (with `resume`) goes first
/// in its place, to go on from where it stopped.
fn pending<'p>(
    target: &dyn Target,
    prepared: &'p [Prepared],
    migrations: &[Migration],
    history: &[HistoryRow],
    options: &MigrateOptions,
) -> Result<Vec<(&'p Prepared, Option<Resume>)>, MigrateError> {
    let entries = state::entries(migrations, history);
    check(target, prepared, &entries, options)?;
    let runnable = |e: &Entry| match e.state {
        State::Pending => true,
        State::OutOfOrder => options.out_of_order,
        // `check` let it through: resuming.
        State::Partial => true,
        _ => false,
    };
    let by_script: std::collections::HashMap<&str, &Prepared> = prepared
        .iter()
        .map(|p| (p.migration.script.as_str(), p))
        .collect();
    let item = |e: &Entry| {
        (
            by_script[e.script.as_str()],
            e.partial.as_ref().map(Resume::of),
        )
    };
    let mut out: Vec<(&Prepared, Option<Resume>)> = entries
        .iter()
        .filter(|e| e.kind == HistoryKind::Versioned && runnable(e))
        .map(item)
        .take_while(|(p, _)| {
            options
                .target
                .as_ref()
                .is_none_or(|t| p.migration.version.as_ref().is_some_and(|v| v <= t))
        })
        .collect();
    // Out-of-order files come in version order too.
    out.sort_by(|a, b| a.0.migration.version.cmp(&b.0.migration.version));
    if options.target.is_none() {
        out.extend(
            entries
                .iter()
                .filter(|e| e.kind == HistoryKind::Repeatable && runnable(e))
                .map(item),
        );
    }
    Ok(out)
}

/// The refusal for a file that stopped part way, with the line of the
/// statement to go on from in the file as it is now.
fn partial_stop(target: &dyn Target, prepared: &[Prepared], partial: &Partial) -> MigrateError {
    let p = &partial.progress;
    let next_line = prepared
        .iter()
        .find(|f| f.migration.script == partial.script)
        .and_then(|f| {
            let s = f.analysis(target).statements.get(p.done)?;
            Some(line_column(&f.migration.sql, f.sql.to_original(s.start)).0)
        });
    MigrateError::Partial(Box::new(PartialStop {
        script: partial.script.clone(),
        kind: partial.kind.to_string(),
        done: p.done,
        total: p.statements,
        running: p.running,
        stopped: p.stopped.clone(),
        next_line,
        running_elsewhere: crate::history::is_running_elsewhere(&p.started_by)
            .then(|| p.started_by.clone()),
    }))
}

fn files_of(prepared: &[Prepared]) -> Vec<Migration> {
    prepared.iter().map(|p| p.migration.clone()).collect()
}

fn check(
    target: &dyn Target,
    prepared: &[Prepared],
    entries: &[Entry],
    options: &MigrateOptions,
) -> Result<(), MigrateError> {
    // A file half run outside a transaction: running it again from the
    // start would repeat what it did. A U file is finished by `undo`.
    if let Some(partial) = entries.iter().find_map(|e| e.partial.as_ref())
        && (!options.resume
            || partial.kind == HistoryKind::Undo
            || crate::history::is_running_elsewhere(&partial.progress.started_by))
    {
        return Err(partial_stop(target, prepared, partial));
    }
    let finished: Vec<Entry> = entries
        .iter()
        .filter(|e| e.state != State::Partial)
        .cloned()
        .collect();
    let mut problems = state::problems(&finished);
    if options.ignore_mismatch {
        problems.retain(|p| p.state() != State::ChecksumMismatch);
    }
    if options.ignore_missing {
        problems.retain(|p| p.state() != State::Missing);
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
    on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    migrate_with(target, prepared, options, on_step, &mut NoHook).await
}

/// [`migrate`], with `hook`'s writes in each migration's transaction.
pub async fn migrate_with(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &MigrateOptions,
    mut on_step: impl FnMut(&Step) + Send,
    hook: &mut dyn Applied,
) -> Result<Vec<Step>, MigrateError> {
    refuse_foreign_history(target).await?;
    if options.dry_run {
        return plan(target, prepared, options).await;
    }
    if let Err(e) = target.lock().await {
        return Err(settle(target, e).await);
    }
    let result = match apply_all(target, prepared, options, &mut on_step, hook).await {
        Err(e) => Err(settle(target, e).await),
        ok => ok,
    };
    let unlocked = target.unlock().await;
    let steps = result?;
    unlocked?;
    Ok(steps)
}

/// Completes a cancellation with the versions the store holds now that the
/// run has stopped (every transaction is closed by then). Other errors
/// pass through.
async fn settle(target: &mut dyn Target, e: MigrateError) -> MigrateError {
    let MigrateError::Cancelled(mut cancelled) = e else {
        return e;
    };
    if cancelled.applied.is_none()
        && let Ok(history) = target.history().await
    {
        let replayed = state::replay(&history);
        let mut versions: Vec<Version> = replayed
            .applied
            .values()
            .filter_map(|r| r.version.as_deref().and_then(|v| Version::parse(v).ok()))
            .collect();
        versions.sort();
        cancelled.applied = Some(versions.iter().map(Version::to_string).collect());
    }
    MigrateError::Cancelled(cancelled)
}

/// The error of a run that was called off at `stopped`.
pub(crate) fn cancelled(stopped: Stopped) -> MigrateError {
    MigrateError::Cancelled(Box::new(Cancelled::new(stopped)))
}

/// Takes the run lock for a change to the history alone: cancelled while
/// waiting, nothing changed.
pub(crate) async fn lock_for_history(target: &mut dyn Target) -> Result<(), MigrateError> {
    match target.lock().await {
        Err(e) if e.is_cancelled() => Err(cancelled(Stopped::HistoryUnchanged)),
        other => other,
    }
}

/// Fails with [`MigrateError::Cancelled`] once the run is cancelled: the
/// check before a commit of history-only changes (repair, baseline, adopt).
pub(crate) fn unless_cancelled(target: &dyn Target) -> Result<(), MigrateError> {
    if target.cancel().is_cancelled() {
        return Err(cancelled(Stopped::HistoryUnchanged));
    }
    Ok(())
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
    pending(&*target, prepared, &migrations, &history, options)?
        .into_iter()
        .map(|(p, resume)| {
            // A dry run promises only the resume the real run would make.
            if let Some(r) = &resume {
                check_resumable(p, &*target, r)?;
            }
            let mut step = step_of(p, target, 0, true);
            step.resumed_from = resume.map(|r| r.progress.done + 1);
            Ok(step)
        })
        .collect()
}

/// Whether a stopped file may go on from where it stopped: it still runs
/// outside a transaction, and the statements that ran are as they ran.
fn check_resumable(p: &Prepared, target: &dyn Target, r: &Resume) -> Result<(), MigrateError> {
    let analysis = p.analysis(target);
    if analysis.no_transaction.is_none() {
        return Err(MigrateError::Refused(format!(
            "{} ran outside a transaction and stopped part way, and would now run in one: --resume goes on statement by statement only; make `-- silo:no-transaction` its first line, or revert what it did by hand and `silo repair`",
            p.migration.script
        )));
    }
    let texts: Vec<&str> = analysis
        .statements
        .iter()
        .map(|s| s.text(&p.sql.text))
        .collect();
    resume_check(p, r, &texts)
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
        resumed_from: None,
    }
}

async fn apply_all(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &MigrateOptions,
    on_step: &mut (dyn FnMut(&Step) + Send),
    hook: &mut dyn Applied,
) -> Result<Vec<Step>, MigrateError> {
    let migrations = files_of(prepared);
    let mut steps = Vec::new();
    // Under a run lock (PostgreSQL) the plan made once stays true. Without
    // one (SQLite) each step plans again inside its own write transaction,
    // so concurrent runs never apply a file twice.
    let mut queue: Option<VecDeque<(&Prepared, Option<Resume>)>> = None;
    let mut first = true;
    loop {
        if target.cancel().is_cancelled() {
            return Err(cancelled(Stopped::BetweenFiles));
        }
        target.begin().await?;
        let next = async {
            if first {
                target.ensure_history().await?;
            }
            match (&mut queue, target.run_lock()) {
                (Some(q), true) => Ok(q.pop_front()),
                _ => {
                    let history = target.history().await?;
                    let mut q: VecDeque<(&Prepared, Option<Resume>)> =
                        pending(&*target, prepared, &migrations, &history, options)?.into();
                    let next = q.pop_front();
                    queue = Some(q);
                    Ok::<_, MigrateError>(next)
                }
            }
        }
        .await;
        first = false;
        let (p, resume) = match next {
            Ok(Some(next)) => next,
            Ok(None) => {
                target.commit().await?;
                return Ok(steps);
            }
            Err(e) => {
                let _ = target.rollback().await;
                return Err(e);
            }
        };
        steps.push(run_file(target, p, resume, hook).await?);
        on_step(steps.last().expect("just pushed"));
    }
}

/// Runs one file (V, U or R) and records it in the history. The caller has
/// begun a transaction (the one it planned in); it is closed on return.
///
/// A transactional file runs and is recorded in that transaction; when the
/// run is cancelled meanwhile, it is rolled back, whether or not its SQL
/// had finished. A file that cannot run in one is recorded as started in
/// that transaction (a history row that is not successful, and a progress
/// row), then runs statement by statement, each recorded before it starts
/// and after it ends, and is recorded as applied after its last one. So a
/// kill at any point leaves it partly applied with its progress (at worst,
/// one statement that may or may not have run), never pending or applied.
/// `resume` goes on with such a file from its first statement not done.
async fn run_file(
    target: &mut dyn Target,
    p: &Prepared,
    resume: Option<Resume>,
    hook: &mut dyn Applied,
) -> Result<Step, MigrateError> {
    if let Some(f) = refusal(p, &*target) {
        let _ = target.rollback().await;
        return Err(MigrateError::failed(f));
    }
    let analysis = p.analysis(&*target);
    let started = Instant::now();
    tracing::info!("running {}", p.migration.script);
    if analysis.no_transaction.is_none() {
        if let Some(r) = &resume
            && let Err(e) = check_resumable(p, &*target, r)
        {
            let _ = target.rollback().await;
            return Err(e);
        }
        let result = target.execute(&p.sql.text).await;
        if target.cancel().is_cancelled() {
            target.rollback().await?;
            return Err(cancelled(Stopped::RolledBack {
                script: p.migration.script.clone(),
            }));
        }
        if let Err(e) = result {
            target.rollback().await?;
            return Err(MigrateError::failed(locate(target, p, e, true).await));
        }
        let ms = elapsed_ms(started);
        target.record(&new_row(p, ms, true)).await?;
        let step = step_of(p, &*target, ms, false);
        if let Err(e) = hook.applied(target, &p.migration, &step).await {
            target.rollback().await?;
            return Err(e);
        }
        target.commit().await?;
        return Ok(step);
    }
    let texts: Vec<&str> = analysis
        .statements
        .iter()
        .map(|s| s.text(&p.sql.text))
        .collect();
    let total = texts.len();
    // Record the start in the planning transaction: a concurrent SQLite run
    // re-plans after it commits and finds the file started, not pending.
    let started_at = match &resume {
        Some(r) => match resume_check(p, r, &texts) {
            // Two `--resume` at once: only the one that claims the stopped
            // file goes on; the other would run its rest a second time.
            Ok(()) => match target
                .claim_progress(r.installed_rank, &r.progress.started_by)
                .await
            {
                Ok(true) => Ok((r.installed_rank, r.progress.done)),
                Ok(false) => Err(MigrateError::Refused(format!(
                    "{} is being resumed right now by another silo; wait for it, then run `silo info`",
                    p.migration.script
                ))),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        None => {
            let progress = Progress {
                statements: total,
                done: 0,
                running: None,
                stopped: None,
                done_checksum: StatementsChecksum::default().hex(),
                started_by: crate::history::this_process(),
            };
            target
                .start_progress(&new_row(p, 0, false), &progress)
                .await
                .map(|rank| (rank, 0))
        }
    };
    let (rank, from) = match started_at {
        Ok(at) => at,
        Err(e) => {
            let _ = target.rollback().await;
            return Err(e);
        }
    };
    // Whatever the planning step began must not stay open: an open
    // transaction would stall a concurrent index build.
    target.commit().await?;
    let mut done = from;
    let mut sum = StatementsChecksum::default();
    texts[..from].iter().for_each(|t| sum.push(t));
    // One record between two statements: the one before is done, the next
    // one starts. Before the first, it starts.
    if from < total {
        target
            .set_progress(rank, done, Some(from + 1), None, &sum.hex())
            .await?;
    }
    for (i, s) in analysis.statements.iter().enumerate().skip(from) {
        if target.cancel().is_cancelled() {
            return Err(stop_cancelled(target, p, rank, done, total, &sum.hex()).await);
        }
        match target.execute(texts[i]).await {
            Ok(()) => {
                done = i + 1;
                sum.push(texts[i]);
                let next = (done < total).then_some(done + 1);
                target
                    .set_progress(rank, done, next, None, &sum.hex())
                    .await?;
            }
            Err(_) if target.cancel().is_cancelled() => {
                return Err(stop_cancelled(target, p, rank, done, total, &sum.hex()).await);
            }
            Err(e) => {
                let failure = failure_at(p, s, e, false);
                let why = StopReason::Failed(failure.message.clone());
                target
                    .set_progress(rank, done, None, Some(&why), &sum.hex())
                    .await?;
                return Err(MigrateError::failed(failure));
            }
        }
    }
    let ms = elapsed_ms(started);
    target.begin_record().await?;
    target
        .finish_progress(rank, Some(&p.migration.checksum), ms)
        .await?;
    let mut step = step_of(p, &*target, ms, false);
    step.resumed_from = resume.map(|_| from + 1);
    if let Err(e) = hook.applied(target, &p.migration, &step).await {
        target.rollback().await?;
        return Err(e);
    }
    target.commit().await?;
    Ok(step)
}

/// A file outside a transaction was cancelled after `done` statements.
/// When none of it ran, its records go: it is pending again.
async fn stop_cancelled(
    target: &mut dyn Target,
    p: &Prepared,
    rank: i32,
    done: usize,
    total: usize,
    done_checksum: &str,
) -> MigrateError {
    let recorded = if done == 0 {
        async {
            target.begin_record().await?;
            target.delete_row(rank).await?;
            target.commit().await
        }
        .await
    } else {
        let why = Some(&StopReason::Cancelled);
        target
            .set_progress(rank, done, None, why, done_checksum)
            .await
    };
    if let Err(e) = recorded {
        let _ = target.rollback().await;
        return e;
    }
    cancelled(Stopped::Partial {
        script: p.migration.script.clone(),
        undo: p.migration.kind == Kind::Undo,
        done,
        total,
    })
}

/// `--resume` goes on only from where the file stopped: its statements
/// done must still be its first ones.
fn resume_check(p: &Prepared, r: &Resume, texts: &[&str]) -> Result<(), MigrateError> {
    let done = r.progress.done;
    let same = done <= texts.len() && {
        let mut sum = StatementsChecksum::default();
        texts[..done].iter().for_each(|t| sum.push(t));
        sum.hex() == r.progress.done_checksum
    };
    if same {
        return Ok(());
    }
    Err(MigrateError::Refused(format!(
        "{} changed in its first {done} statement(s), the ones that ran before it stopped: --resume goes on only when they are as they ran; restore them, or revert what ran by hand and `silo repair`",
        p.migration.script
    )))
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
    // Cancelled: no replay; the statement that was running is unknown.
    if e.offset.is_none() && target.cancel().is_cancelled() {
        return failure(p, None, None, e, rolled_back);
    }
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
        source: Some(miette::NamedSource::new(
            p.migration.path.display().to_string(),
            p.migration.sql.clone(),
        )),
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
    on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    let options = UndoOptions {
        to: to.cloned(),
        resume: false,
        expect: None,
    };
    undo_with(target, prepared, &options, on_step).await
}

/// [`undo`] with every option: `resume` goes on with a U file that stopped
/// part way.
pub async fn undo_with(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &UndoOptions,
    mut on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    if let Err(e) = target.lock().await {
        return Err(settle(target, e).await);
    }
    let result = match undo_locked(target, prepared, options, &mut on_step).await {
        Err(e) => Err(settle(target, e).await),
        ok => ok,
    };
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
    let partial = undo_partial(&*target, prepared, &history, true)?;
    Ok(undo_files(prepared, &history, to)?
        .into_iter()
        .map(|u| {
            let mut step = step_of(u, &*target, 0, true);
            step.resumed_from = partial
                .as_ref()
                .filter(|p| p.script == u.migration.script)
                .map(|p| p.progress.done + 1);
            step
        })
        .collect())
}

/// A file that stopped part way, before an undo: a U file may be resumed
/// (`resume`); anything else is refused.
fn undo_partial(
    target: &dyn Target,
    prepared: &[Prepared],
    history: &[HistoryRow],
    resume: bool,
) -> Result<Option<Partial>, MigrateError> {
    let entries = state::entries(&files_of(prepared), history);
    let Some(partial) = entries.iter().find_map(|e| e.partial.as_ref()) else {
        return Ok(None);
    };
    if resume
        && partial.kind == HistoryKind::Undo
        && !crate::history::is_running_elsewhere(&partial.progress.started_by)
    {
        return Ok(Some(partial.clone()));
    }
    Err(partial_stop(target, prepared, partial))
}

/// The U files that undo the applied versions above `to` (or the newest
/// one), newest first.
fn undo_files<'p>(
    prepared: &'p [Prepared],
    history: &[HistoryRow],
    to: Option<&Version>,
) -> Result<Vec<&'p Prepared>, MigrateError> {
    let replayed = state::replay(history);
    // Undone in the reverse order they were applied (as Flyway does): after
    // an out-of-order migration the most recent one may not be the highest
    // version, and it may depend on what the higher one made.
    let mut applied: Vec<(i32, Version)> = replayed
        .applied
        .values()
        .filter_map(|r| {
            let v = Version::parse(r.version.as_deref()?).ok()?;
            Some((r.installed_rank, v))
        })
        .collect();
    applied.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    let chosen: Vec<Version> = match to {
        Some(to) => {
            // A version kept (at or below `to`) that was applied after one
            // being undone may depend on it: refuse rather than break it.
            let first_undone = applied
                .iter()
                .filter(|(_, v)| v > to)
                .map(|(r, _)| *r)
                .min();
            if let Some(first) = first_undone
                && let Some((_, kept)) = applied.iter().find(|(r, v)| *r > first && v <= to)
            {
                return Err(MigrateError::Undo {
                    version: kept.to_string(),
                    reason: format!(
                        "V{kept} was applied after versions above {to} (out of order) and may depend on them; undo to below {kept} first, or undo one version at a time"
                    ),
                });
            }
            applied
                .into_iter()
                .filter(|(_, v)| v > to)
                .map(|(_, v)| v)
                .collect()
        }
        None => applied.into_iter().take(1).map(|(_, v)| v).collect(),
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
    options: &UndoOptions,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Result<Vec<Step>, MigrateError> {
    let history = target.history().await?;
    let partial = undo_partial(&*target, prepared, &history, options.resume)?;
    if options.resume && partial.is_none() {
        // `--resume` finishes what stopped; it never starts undoing more.
        return Err(MigrateError::Refused(
            "nothing to resume: no undo stopped part way; run `silo undo` without --resume to undo the next version".into(),
        ));
    }
    let plan = undo_files(prepared, &history, options.to.as_ref())?;
    if let Some(expected) = &options.expect {
        let now: Vec<&str> = plan.iter().map(|p| p.migration.script.as_str()).collect();
        if now != expected.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(MigrateError::Refused(format!(
                "the store changed since the plan was shown: it would now undo {}, not {}; nothing was undone, run `silo undo` again to see the new plan",
                if now.is_empty() {
                    "nothing".to_string()
                } else {
                    now.join(", ")
                },
                if expected.is_empty() {
                    "nothing".to_string()
                } else {
                    expected.join(", ")
                },
            )));
        }
    }
    let mut steps = Vec::new();
    for u in plan {
        if target.cancel().is_cancelled() {
            return Err(cancelled(Stopped::BetweenFiles));
        }
        let resume = partial
            .as_ref()
            .filter(|p| p.script == u.migration.script)
            .map(Resume::of);
        target.begin().await?;
        steps.push(run_file(target, u, resume, &mut NoHook).await?);
        on_step(steps.last().expect("just pushed"));
    }
    Ok(steps)
}

/// Records `version` as the baseline of a store whose history is empty:
/// files up to it never run.
pub async fn baseline(target: &mut dyn Target, version: &Version) -> Result<(), MigrateError> {
    lock_for_history(target).await?;
    let result = async {
        target.begin().await?;
        if let Err(e) = target.ensure_history().await {
            let _ = target.rollback().await;
            return Err(e);
        }
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
        if let Err(e) = unless_cancelled(&*target) {
            target.rollback().await?;
            return Err(e);
        }
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
    lock_for_history(target).await?;
    let result = async {
        target.begin().await?;
        let changes = repair_rows(target, migrations).await;
        let changes = match changes.and_then(|c| unless_cancelled(&*target).map(|()| c)) {
            Ok(changes) => changes,
            Err(e) => {
                let _ = target.rollback().await;
                return Err(e);
            }
        };
        target.commit().await?;
        Ok::<_, MigrateError>(changes)
    }
    .await;
    let unlocked = target.unlock().await;
    let changes = result?;
    unlocked?;
    Ok(changes)
}

/// The changes of [`repair`], in its transaction.
async fn repair_rows(
    target: &mut dyn Target,
    migrations: &[Migration],
) -> Result<Vec<String>, MigrateError> {
    let history = target.history().await?;
    let mut changes = Vec::new();
    for row in history.iter().filter(|r| !r.success) {
        target.delete_row(row.installed_rank).await?;
        let now = if row.kind == HistoryKind::Undo {
            "its version counts as applied again".to_string()
        } else {
            "it is pending again and runs from the start".to_string()
        };
        changes.push(match &row.progress {
            Some(p) => format!(
                "removed the record of {}, which had stopped after statement {} of {}: {now}",
                row.script, p.done, p.statements
            ),
            None => format!("removed the failed row of {}", row.script),
        });
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
    Ok(changes)
}
