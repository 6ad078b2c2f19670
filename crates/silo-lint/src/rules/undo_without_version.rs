//! `undo-without-version`: a `U` file whose version has no `V` file in the
//! same folder. `silo undo` only runs the undo of an applied version, so
//! this file never runs; usually its version or its `V` file's was mistyped
//! or renamed.

use silo_migration_files::Kind;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct UndoWithoutVersion;

impl Rule for UndoWithoutVersion {
    meta!(UndoWithoutVersion, Integrity, Error);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let Ok(name) = &file.name else { return };
        if name.kind != Kind::Undo {
            return;
        }
        let (Some(version), Some(dir)) = (&name.version, file.path.parent()) else {
            return;
        };
        if ctx
            .versions
            .contains_key(&(dir, Kind::Versioned, version.clone()))
        {
            return;
        }
        out.push(Hit {
            span: 0..0,
            message: format!(
                "undo of version {version}, which has no V{version}__*.sql file: `silo undo` never runs it"
            ),
            help: format!(
                "give it the version of the V file it reverts, or remove it if V{version} is gone for good"
            ),
            other_service: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn an_undo_without_its_version_fires() {
        let p = Project::postgres();
        p.write("orders", "V1__a.sql", "CREATE TABLE a (id bigint);")
            .write("orders", "U2__a.sql", "DROP TABLE a;");
        let hits = p.hits("undo-without-version");
        assert_eq!(p.places("undo-without-version"), [(1, 1)]);
        assert!(hits[0].file.ends_with("U2__a.sql"));
        assert_eq!(
            hits[0].message,
            "undo of version 2, which has no V2__*.sql file: `silo undo` never runs it"
        );
    }

    /// Versions compare by value (`U01` undoes `V1`), per folder.
    #[test]
    fn an_undo_of_an_existing_version_does_not() {
        let p = Project::sqlite();
        p.write("orders", "V1__a.sql", "CREATE TABLE a (id INTEGER);")
            .write("orders", "U01__a.sql", "DROP TABLE a;")
            .write("billing", "V2__b.sql", "CREATE TABLE b (id INTEGER);");
        assert_eq!(p.places("undo-without-version"), []);
    }
}
