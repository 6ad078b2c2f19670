//! `missing-undo`: every `V` file has its `U` file (seed 002: "Migration is
//! reversible"), unless its header says `-- silo:irreversible <reason>`.

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;
use silo_migration_files::Kind;

pub struct MissingUndo;

impl Rule for MissingUndo {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::MissingUndo
    }
    fn group(&self) -> Group {
        Group::Review
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let Ok(name) = &file.name else { return };
        if name.kind != Kind::Versioned {
            return;
        }
        let excused = file
            .text
            .lines()
            .take_while(|l| l.trim_start().starts_with("--") || l.trim().is_empty())
            .any(|l| {
                l.trim()
                    .strip_prefix("-- silo:irreversible")
                    .is_some_and(|reason| !reason.trim().is_empty())
            });
        if excused {
            return;
        }
        let has_undo = ctx.files.iter().any(|f| {
            f.service == file.service
                && f.path.parent() == file.path.parent()
                && f.name
                    .as_ref()
                    .is_ok_and(|n| n.kind == Kind::Undo && n.version == name.version)
        });
        if !has_undo {
            let version = name
                .version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push(Hit {
                span: 0..0,
                message: format!("version {version} has no undo file"),
                help: format!(
                    "add U{version}__<description>.sql that reverts it, or state why it cannot be undone with `-- silo:irreversible <reason>` in its header"
                ),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "missing-undo";

    #[test]
    fn a_version_without_its_undo_fires() {
        let p = Project::postgres();
        p.write("orders", "V1_2__t.sql", "SELECT 1;");
        assert_eq!(
            p.found(RULE),
            [(1, 1, "version 1_2 has no undo file".into())]
        );
    }

    /// An undo file of the same version (by value), or a reason in the
    /// header; a repeatable file has no undo.
    #[test]
    fn an_undo_or_a_stated_reason_do_not() {
        let p = Project::postgres();
        p.write("orders", "V1__t.sql", "SELECT 1;")
            .write("orders", "U001__t.sql", "SELECT 1;")
            .write(
                "orders",
                "V2__t.sql",
                "-- header\n-- silo:irreversible the data is gone\nSELECT 1;",
            )
            .write("orders", "R__views.sql", "SELECT 1;");
        assert_eq!(p.found(RULE), []);
    }
}
