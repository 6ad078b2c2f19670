//! The operations of the CLI for one service: find its files, connect as
//! it, and run.

use silo_manifest::{Manifest, Service};
use silo_store::Stores;

use crate::adopt;
use crate::connect;
use crate::error::MigrateError;
use crate::file::{Migration, discover};
use crate::run::{self, MigrateOptions, Prepared, Step, UndoOptions};
use crate::state::{self, Entry};
use crate::target::LockPolicy;
use crate::target::Target;
use crate::version::Version;

/// The service's migrations for its engine.
pub fn migrations(manifest: &Manifest, service: &Service) -> Result<Vec<Migration>, MigrateError> {
    Ok(discover(&manifest.migrations_dir(service), service.engine)?)
}

/// Connects as the service and prepares its files.
async fn open_prepared(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<(Box<dyn Target>, Vec<Prepared>), MigrateError> {
    let mut files = migrations(manifest, service)?;
    let mut target = connect::open(stores, service, policy).await?;
    // Migrations given through the gateway keep their undo in the store.
    let stored = crate::given::stored_undos(target.as_mut(), &files).await?;
    files.extend(stored);
    let prepared = run::prepare(&files, service)?;
    Ok((target, prepared))
}

/// `silo migrate` for one service.
pub async fn migrate(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    options: &MigrateOptions,
    policy: LockPolicy,
    on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    let (mut target, prepared) = open_prepared(manifest, stores, service, policy).await?;
    run::migrate(target.as_mut(), &prepared, options, on_step).await
}

/// What `silo info` shows for one service.
#[derive(Debug, Clone)]
pub struct Info {
    pub entries: Vec<Entry>,
    /// Other tools' history tables in a store that has no silo history
    /// (`silo migrations adopt` takes them in; `migrate` refuses until then).
    pub foreign: Vec<adopt::Found>,
}

/// `silo info` for one service.
pub async fn info(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Info, MigrateError> {
    let mut files = migrations(manifest, service)?;
    let mut target = connect::open(stores, service, policy).await?;
    let stored = crate::given::stored_undos(target.as_mut(), &files).await?;
    files.extend(stored);
    let history = target.history().await?;
    let foreign = if history.is_empty() {
        adopt::detect(target.as_mut()).await?
    } else {
        Vec::new()
    };
    Ok(Info {
        entries: state::entries(&files, &history),
        foreign,
    })
}

/// `silo migrations adopt` for one service: connects as the service and
/// adopts another tool's history against the service's files.
pub async fn adopt(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    options: &adopt::Options,
    policy: LockPolicy,
) -> Result<adopt::Adoption, MigrateError> {
    let (mut target, prepared) = open_prepared(manifest, stores, service, policy).await?;
    adopt::adopt(target.as_mut(), &prepared, options).await
}

/// `silo undo` for one service.
pub async fn undo(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    options: &UndoOptions,
    policy: LockPolicy,
    on_step: impl FnMut(&Step) + Send,
) -> Result<Vec<Step>, MigrateError> {
    let (mut target, prepared) = open_prepared(manifest, stores, service, policy).await?;
    run::undo_with(target.as_mut(), &prepared, options, on_step).await
}

/// `silo undo --dry-run` for one service: the U files `undo` would run,
/// in order, with their SQL. Changes nothing.
pub async fn undo_plan(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    to: Option<&Version>,
    policy: LockPolicy,
) -> Result<Vec<Step>, MigrateError> {
    let (mut target, prepared) = open_prepared(manifest, stores, service, policy).await?;
    run::undo_plan(target.as_mut(), &prepared, to).await
}

/// `silo repair` for one service.
pub async fn repair(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Vec<String>, MigrateError> {
    let files = migrations(manifest, service)?;
    let mut target = connect::open(stores, service, policy).await?;
    run::repair(target.as_mut(), &files).await
}

/// `silo baseline` for one service.
pub async fn baseline(
    stores: &Stores,
    service: &Service,
    version: &Version,
    policy: LockPolicy,
) -> Result<(), MigrateError> {
    let mut target = connect::open(stores, service, policy).await?;
    run::baseline(target.as_mut(), version).await
}

/// `silo new`: writes the next `V` file and its `U` file. Returns their
/// paths, V before U.
///
/// A folder with engine subfolders (`postgres/`, `sqlite/`) gets the pair
/// in every engine subfolder it has, under one version (the next after the
/// newest in any of them), so that the engines stay in step: a version
/// that exists for one engine only would leave the other behind. The
/// service's own engine must have its folder, as `migrate` requires.
pub fn new_migration(
    manifest: &Manifest,
    service: &Service,
    description: &str,
) -> Result<Vec<std::path::PathBuf>, MigrateError> {
    let slug = slug(description);
    if slug.is_empty() {
        return Err(MigrateError::Refused(format!(
            "the description `{description}` has no letters or digits to name a file with"
        )));
    }
    let root = manifest.migrations_dir(service);
    // The service's own folder first; this also refuses a layout without it.
    let own = crate::file::engine_dir(&root, service.engine)?;
    let mut targets = vec![(own, service.engine)];
    targets.extend(
        crate::file::engine_folders(&root)
            .into_iter()
            .filter(|(engine, _)| *engine != service.engine)
            .map(|(engine, dir)| (dir, engine)),
    );
    let next = targets
        .iter()
        .flat_map(|(_, engine)| discover(&root, *engine).unwrap_or_default())
        .filter_map(|m| m.version)
        .max()
        .map_or_else(|| Version::parse("001").expect("valid"), |v| v.next());
    let v_name = format!("V{next}__{slug}.sql");
    let u_name = format!("U{next}__{slug}.sql");
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| MigrateError::Io { path, source }
    };
    // Nothing is written unless every file can be.
    for (dir, _) in &targets {
        for name in [&v_name, &u_name] {
            let path = dir.join(name);
            if path.exists() {
                return Err(MigrateError::Refused(format!(
                    "{} exists already",
                    path.display()
                )));
            }
        }
    }
    let mut written = Vec::new();
    for (dir, engine) in &targets {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // A new migration closes the earlier ones: record them in silo.sum
        // so any later edit to them is caught (the new files are recorded
        // by the next `silo lint --update-sum`, once they are written).
        crate::sum::update(dir).map_err(io(&dir.join(crate::sum::SUM_FILE)))?;
        let engine_note = if targets.len() > 1 {
            format!("-- Engine: {engine} (each engine folder has its own V{next})\n")
        } else {
            String::new()
        };
        let v_text = format!(
            "-- {v_name}\n-- Description: {description}\n{engine_note}-- Rollback: {u_name}\n\n"
        );
        let u_text =
            format!("-- {u_name}\n-- Description: undo V{next}: {description}\n{engine_note}\n");
        for (name, text) in [(&v_name, v_text), (&u_name, u_text)] {
            let path = dir.join(name);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io(&path))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// `Add user roles!` -> `add_user_roles`.
fn slug(description: &str) -> String {
    let mut out = String::new();
    for c in description.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::slug("Add user roles!"), "add_user_roles");
        assert_eq!(super::slug("  --- "), "");
    }
}
