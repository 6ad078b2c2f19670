//! `duplicate-version`: two files of one service with the same version
//! and kind (`V1_0__a.sql` and `V1.0__b.sql` are both version 1.0). The
//! migrator refuses to run such a folder; this says so before a deploy.

use silo_migration_files::Kind;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct DuplicateVersion;

impl Rule for DuplicateVersion {
    meta!(DuplicateVersion, Integrity, Error);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let Ok(name) = &file.name else { return };
        let Some(version) = &name.version else { return };
        let Some(dir) = file.path.parent() else {
            return;
        };
        let twins: Vec<&&SourceFile> = ctx
            .versions
            .get(&(dir, name.kind, version.clone()))
            .into_iter()
            .flatten()
            .filter(|f| f.path != file.path)
            .collect();
        if let Some(first) = twins.first() {
            let kind = if name.kind == Kind::Undo {
                "undo"
            } else {
                "version"
            };
            out.push(Hit {
                span: 0..0,
                message: format!(
                    "{kind} {version} is also `{}`",
                    first.path.file_name().unwrap_or_default().to_string_lossy()
                ),
                help: "give one of them the next free version (`silo new` picks it)".into(),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn equal_versions_fire_on_both_files() {
        let p = Project::postgres();
        p.write("orders", "V1_0__a.sql", "SELECT 1;")
            .write("orders", "V1.0__b.sql", "SELECT 2;");
        let hits = p.hits("duplicate-version");
        assert_eq!(hits.len(), 2);
        assert!(
            hits[0].message.starts_with("version 1.0 is also"),
            "{}",
            hits[0].message
        );
    }

    #[test]
    fn a_version_and_its_undo_or_another_service_do_not() {
        let p = Project::postgres();
        p.write("orders", "V1__a.sql", "SELECT 1;")
            .write("orders", "U1__a.sql", "SELECT 1;")
            .write("orders", "V1.1__b.sql", "SELECT 2;")
            .write("billing", "V1__a.sql", "SELECT 3;");
        assert_eq!(p.places("duplicate-version"), []);
    }
}
