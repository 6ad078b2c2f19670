//! Migrations given as text instead of files (the gateway's `/v1/schema`).
//!
//! Each one is run as the file it stands for, `V<version>__<description>.sql`
//! with its `up` as the file's text: the same checksum, the same history
//! row, through the same engine as `silo migrate` (lock, history, one
//! transaction per migration, the same refusals). So a migration sent this
//! way and the same file run by `silo migrate` are one thing, and either
//! tool sees what the other applied.
//!
//! A caller has no files on disk, so its `down` is kept in the store, in
//! `silo_schema_undo`, written in the migration's own transaction: the
//! `U<version>__<description>.sql` that `silo undo` runs for that version
//! when the folder has no U file of its own (see [`stored_undos`]).

use std::path::PathBuf;

use silo_manifest::Service;

use crate::error::MigrateError;
use crate::file::{Kind, Migration, checksum, parse_file_name};
use crate::history::HistoryRow;
use crate::run::{self, Applied, MigrateOptions, Step};
use crate::state::{self, Entry};
use crate::target::Target;
use crate::version::Version;

/// The table that keeps each given migration's `down`, by version.
pub const UNDO_TABLE: &str = "silo_schema_undo";

/// The description of a migration that names none.
pub const DEFAULT_DESCRIPTION: &str = "gateway";

/// Where a given migration's text is said to come from in diagnostics: it
/// has no path on disk.
const ORIGIN: &str = "<given>";

/// One migration given as text.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// Its version; the one after the previous migration's (or after the
    /// store's newest, for the first) when absent.
    pub version: Option<String>,
    /// Its description ([`DEFAULT_DESCRIPTION`] when absent).
    pub description: Option<String>,
    /// The SQL that applies it.
    pub up: String,
    /// The SQL that reverts it, kept as its undo.
    pub down: Option<String>,
}

/// What is wrong with the given migrations themselves, before any store is
/// touched (a caller's mistake: the gateway answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GivenError(pub String);

/// The V files (and the U files of those with a `down`) that `given`
/// stands for. A migration without a version takes the one after the
/// migration before it; the first, the one after `newest` (`1` for a store
/// with none).
pub fn files(given: &[Given], newest: Option<&Version>) -> Result<Vec<Migration>, GivenError> {
    if given.is_empty() {
        return Err(GivenError("no migrations were given".into()));
    }
    let mut out = Vec::new();
    let mut previous: Option<Version> = newest.cloned();
    let mut seen: Vec<String> = Vec::new();
    for (i, g) in given.iter().enumerate() {
        let n = i + 1;
        let version = match &g.version {
            Some(v) => Version::parse(v).map_err(|e| GivenError(format!("migration {n}: {e}")))?,
            None => previous
                .as_ref()
                .map_or_else(|| Version::parse("1").expect("valid"), Version::next),
        };
        if seen.contains(&version.canonical()) {
            return Err(GivenError(format!(
                "migration {n}: version {version} is given twice"
            )));
        }
        seen.push(version.canonical());
        if g.up.trim().is_empty() {
            return Err(GivenError(format!("migration {n}: `up` is empty")));
        }
        let description = g.description.as_deref().unwrap_or(DEFAULT_DESCRIPTION);
        let stem = file_stem(description).map_err(|e| GivenError(format!("migration {n}: {e}")))?;
        out.push(file(&format!("V{version}__{stem}.sql"), &g.up)?);
        if let Some(down) = g.down.as_deref().filter(|d| !d.trim().is_empty()) {
            out.push(file(&format!("U{version}__{stem}.sql"), down)?);
        }
        previous = Some(version);
    }
    Ok(out)
}

/// A description as a file name's part: spaces become underscores (the
/// history turns them back), and nothing that could not be in a file
/// name.
fn file_stem(description: &str) -> Result<String, String> {
    let d = description.trim();
    if d.is_empty() {
        return Err("the description is empty".into());
    }
    if let Some(c) = d
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.')))
    {
        return Err(format!(
            "the description may hold letters, digits, spaces, `_`, `-` and `.` only, not `{c}`"
        ));
    }
    Ok(d.replace(' ', "_"))
}

/// A migration read from `script` as a file holding `sql` would be.
fn file(script: &str, sql: &str) -> Result<Migration, GivenError> {
    let name = parse_file_name(script)
        .map_err(GivenError)?
        .ok_or_else(|| GivenError(format!("{script} is not a migration name")))?;
    Ok(Migration {
        kind: name.kind,
        version: name.version,
        description: name.description,
        script: script.to_string(),
        path: PathBuf::from(ORIGIN).join(script),
        sql: sql.strip_prefix('\u{feff}').unwrap_or(sql).to_string(),
        checksum: checksum(sql.as_bytes()),
    })
}

/// The newest version the store holds (after undos), if any.
pub async fn newest(target: &mut dyn Target) -> Result<Option<Version>, MigrateError> {
    let history = target.history().await?;
    Ok(state::replay(&history).newest())
}

/// Applies the given `files` (from [`files`]) to `target`'s store as
/// `silo migrate` applies files: only those pending, each in its own
/// transaction, `hook`'s writes in it. Applied versions the caller did not
/// send are not objected to: it sends only what it adds.
pub async fn migrate(
    target: &mut dyn Target,
    service: &Service,
    files: &[Migration],
    hook: &mut dyn Applied,
) -> Result<Vec<Step>, MigrateError> {
    let prepared = run::prepare(files, service)?;
    let options = MigrateOptions {
        ignore_missing: true,
        ..MigrateOptions::default()
    };
    let mut keep = KeepUndo { files, then: hook };
    run::migrate_with(target, &prepared, &options, |_| {}, &mut keep).await
}

/// The state of each given file against `history`, as `silo info` would
/// show it had the files been in the folder: the history's other rows are
/// left out.
pub fn validate(files: &[Migration], history: &[HistoryRow]) -> Vec<Entry> {
    state::entries(files, history)
        .into_iter()
        .filter(|e| files.iter().any(|f| f.script == e.script))
        .collect()
}

/// Keeps each applied migration's U file in [`UNDO_TABLE`], in the
/// migration's transaction, then runs the caller's hook.
struct KeepUndo<'a> {
    files: &'a [Migration],
    then: &'a mut dyn Applied,
}

#[async_trait::async_trait]
impl Applied for KeepUndo<'_> {
    async fn applied(
        &mut self,
        target: &mut dyn Target,
        migration: &Migration,
        step: &Step,
    ) -> Result<(), MigrateError> {
        let undo = self
            .files
            .iter()
            .find(|f| f.kind == Kind::Undo && f.version == migration.version);
        if let (Some(u), Some(v)) = (undo, &migration.version) {
            target
                .query_text(
                    &format!(
                        "CREATE TABLE IF NOT EXISTS {UNDO_TABLE} (
                            version TEXT PRIMARY KEY,
                            script TEXT NOT NULL,
                            checksum TEXT NOT NULL,
                            sql TEXT NOT NULL)"
                    ),
                    &[],
                    "creating the table of given undos",
                )
                .await?;
            target
                .query_text(
                    &format!(
                        "INSERT INTO {UNDO_TABLE} (version, script, checksum, sql)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (version) DO UPDATE SET script = excluded.script,
                           checksum = excluded.checksum, sql = excluded.sql"
                    ),
                    &[&v.canonical(), &u.script, &u.checksum, &u.sql],
                    "keeping the migration's undo",
                )
                .await?;
        }
        self.then.applied(target, migration, step).await
    }
}

/// The U files kept in the store for versions that `files` has no U file
/// of: what `silo undo` runs to undo a migration given as text.
pub async fn stored_undos(
    target: &mut dyn Target,
    files: &[Migration],
) -> Result<Vec<Migration>, MigrateError> {
    let exists = match target.engine() {
        silo_manifest::Engine::Postgres => {
            format!("SELECT to_regclass('public.{UNDO_TABLE}')::text")
        }
        silo_manifest::Engine::Sqlite => {
            format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{UNDO_TABLE}'")
        }
    };
    let found = target
        .query_text(&exists, &[], "looking for the table of given undos")
        .await?;
    if !found
        .first()
        .is_some_and(|row| row.first().is_some_and(Option::is_some))
    {
        return Ok(Vec::new());
    }
    let rows = target
        .query_text(
            &format!("SELECT script, sql FROM {UNDO_TABLE} ORDER BY version"),
            &[],
            "reading the given undos",
        )
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let (Some(Some(script)), Some(Some(sql))) = (row.first(), row.get(1)) else {
            continue;
        };
        let Ok(u) = file(script, sql) else { continue };
        let has_file = files
            .iter()
            .any(|f| f.kind == Kind::Undo && f.version == u.version);
        if u.kind == Kind::Undo && !has_file {
            out.push(u);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(version: Option<&str>, description: Option<&str>) -> Given {
        Given {
            version: version.map(str::to_string),
            description: description.map(str::to_string),
            up: "CREATE TABLE t (id int);".into(),
            down: Some("DROP TABLE t;".into()),
        }
    }

    /// A given migration is the file it stands for: name, description and
    /// checksum as discovery would read them.
    #[test]
    fn given_migrations_are_their_files() {
        let newest = Version::parse("2").unwrap();
        let files = files(
            &[given(None, Some("add users")), given(None, None)],
            Some(&newest),
        )
        .unwrap();
        let scripts: Vec<&str> = files.iter().map(|f| f.script.as_str()).collect();
        assert_eq!(
            scripts,
            [
                "V3__add_users.sql",
                "U3__add_users.sql",
                "V4__gateway.sql",
                "U4__gateway.sql"
            ]
        );
        assert_eq!(files[0].description, "add users");
        assert_eq!(files[0].checksum, checksum(b"CREATE TABLE t (id int);"));
        assert_eq!(files[1].kind, Kind::Undo);
    }

    #[test]
    fn bad_given_migrations_are_refused() {
        for (bad, why) in [
            (vec![], "no migrations"),
            (
                vec![given(Some("2"), None), given(Some("2.0"), None)],
                "given twice",
            ),
            (vec![given(Some("x"), None)], "digit groups"),
            (vec![given(None, Some("../etc"))], "not `/`"),
            (
                vec![Given {
                    up: " ".into(),
                    ..Given::default()
                }],
                "empty",
            ),
        ] {
            let e = files(&bad, None).unwrap_err();
            assert!(e.0.contains(why), "{e}");
        }
    }
}
