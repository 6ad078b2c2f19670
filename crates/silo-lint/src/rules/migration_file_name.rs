//! `migration-file-name`: every `.sql` file in a migrations folder follows
//! `V<version>__<snake_case_description>.sql` (or `U...`, `R__...`), so it
//! runs in the order its author meant (seed 004's naming convention). A
//! `.SQL` file and a folder named like a migration are flagged too: silo
//! would never run them, and nobody would be told.

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct MigrationFileName;

impl Rule for MigrationFileName {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::MigrationFileName
    }
    fn group(&self) -> Group {
        Group::Integrity
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let file_name = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file.folder {
            out.push(Hit {
                span: 0..0,
                message: format!("`{file_name}` is a folder: silo runs only the files of a migrations folder, so nothing in it ever runs"),
                help: "move the migration out of the folder (one file per version), or rename the folder so it does not end in .sql".into(),
                other_service: None,
            });
            return;
        }
        if let Some((stem, extension)) = file_name.rsplit_once('.')
            && extension != "sql"
            && extension.eq_ignore_ascii_case("sql")
        {
            out.push(Hit {
                span: 0..0,
                message: format!("the extension `.{extension}` is not `.sql`: `silo migrate` never runs this file"),
                help: format!("rename it {stem}.sql"),
                other_service: None,
            });
            return;
        }
        match &file.name {
            Err(reason) => out.push(Hit {
                span: 0..0,
                message: format!("not a migration file name: {reason}"),
                help: "rename it V<version>__<description>.sql, e.g. V003__add_user_roles.sql"
                    .into(),
                other_service: None,
            }),
            Ok(name) => {
                let raw = file
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let description = raw.split_once("__").map_or("", |(_, d)| d);
                let snake = description
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !snake {
                    let suggestion: String = description
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() {
                                c.to_ascii_lowercase()
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    out.push(Hit {
                        span: 0..0,
                        message: format!("the description `{description}` is not snake_case"),
                        help: format!(
                            "rename it {}{}__{suggestion}.sql",
                            match name.kind {
                                silo_migration_files::Kind::Versioned => "V",
                                silo_migration_files::Kind::Undo => "U",
                                silo_migration_files::Kind::Repeatable => "R",
                            },
                            name.version
                                .as_ref()
                                .map(|v| v.to_string())
                                .unwrap_or_default()
                        ),
                        other_service: None,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn a_misnamed_file_fires_a_good_name_does_not() {
        let p = Project::postgres();
        p.write("orders", "V1_init.sql", "SELECT 1;")
            .write("orders", "V2__Add-Notes.sql", "SELECT 1;")
            .write("orders", "V3__add_notes.sql", "SELECT 1;")
            .write("orders", "README.md", "not a migration");
        let hits = p.hits("migration-file-name");
        let found: Vec<_> = hits
            .iter()
            .map(|f| {
                (
                    f.file.file_name().unwrap().to_str().unwrap(),
                    f.line,
                    f.column,
                )
            })
            .collect();
        assert_eq!(found, [("V1_init.sql", 1, 1), ("V2__Add-Notes.sql", 1, 1)]);
        assert!(
            hits[0]
                .message
                .starts_with("not a migration file name: no `__`"),
            "{}",
            hits[0].message
        );
        assert_eq!(
            hits[1].message,
            "the description `Add-Notes` is not snake_case"
        );
        assert_eq!(hits[1].help, "rename it V2__add_notes.sql");
    }

    /// Both would be skipped by `silo migrate` without a word.
    #[test]
    fn an_upper_case_extension_and_a_folder_named_like_a_migration_fire() {
        let p = Project::sqlite();
        p.write("orders", "V8__x.SQL", "SELECT 1;");
        std::fs::create_dir(p.folder("orders").join("V1__dir.sql")).unwrap();
        let hits = p.hits("migration-file-name");
        let found: Vec<_> = hits
            .iter()
            .map(|f| {
                (
                    f.file.file_name().unwrap().to_str().unwrap(),
                    f.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "V1__dir.sql",
                    "`V1__dir.sql` is a folder: silo runs only the files of a migrations folder, so nothing in it ever runs"
                ),
                (
                    "V8__x.SQL",
                    "the extension `.SQL` is not `.sql`: `silo migrate` never runs this file"
                ),
            ]
        );
        assert_eq!(hits[1].help, "rename it V8__x.sql");
    }
}
