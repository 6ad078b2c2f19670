//! `migration-file-name`: every `.sql` file in a migrations folder follows
//! `V<version>__<snake_case_description>.sql` (or `U...`, `R__...`), so it
//! runs in the order its author meant (seed 004's naming convention).

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct MigrationFileName;

impl Rule for MigrationFileName {
    fn id(&self) -> &'static str {
        "migration-file-name"
    }
    fn group(&self) -> Group {
        Group::Integrity
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        match &file.name {
            Err(reason) => out.push(Hit {
                span: 0..0,
                message: format!("not a migration file name: {reason}"),
                help: "rename it V<version>__<description>.sql, e.g. V003__add_user_roles.sql"
                    .into(),
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
                                silo_migrate::Kind::Versioned => "V",
                                silo_migrate::Kind::Undo => "U",
                                silo_migrate::Kind::Repeatable => "R",
                            },
                            name.version
                                .as_ref()
                                .map(|v| v.to_string())
                                .unwrap_or_default()
                        ),
                    });
                }
            }
        }
    }
}
