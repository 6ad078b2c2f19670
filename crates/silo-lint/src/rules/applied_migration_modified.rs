//! `applied-migration-modified`: a file whose content no longer matches
//! the checksum in its folder's committed `silo.sum` (seed 004: "Never
//! modify existing migrations"), a recorded file that is gone, or a new
//! file slipped in below recorded versions. Folders without `silo.sum`
//! are not checked; `silo lint --update-sum` or `silo new` starts one.

use silo_migration_files::sum::{Mismatch, SUM_FILE};

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct AppliedMigrationModified;

impl Rule for AppliedMigrationModified {
    meta!(AppliedMigrationModified, Integrity, Error);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let Some(dir) = file.path.parent() else {
            return;
        };
        let Some(checked) = ctx.sums.of(dir) else {
            return;
        };
        let file_name = file.path.file_name().unwrap_or_default().to_string_lossy();
        // Folder-wide problems are reported once, on the folder's first file.
        let first_in_folder = ctx
            .service_files(&file.service)
            .find(|f| f.path.parent() == Some(dir))
            .is_some_and(|f| f.path == file.path);
        let mismatches = match checked {
            Ok(m) => m,
            Err(why) => {
                if first_in_folder {
                    out.push(Hit {
                        span: 0..0,
                        message: format!("cannot check {SUM_FILE}: {why}"),
                        help: format!(
                            "fix {SUM_FILE}, or rewrite it with `silo lint --update-sum`"
                        ),
                        other_service: None,
                    });
                }
                return;
            }
        };
        for m in mismatches {
            let message = match m {
                Mismatch::Modified { name } if *name == file_name => format!(
                    "`{name}` changed after {SUM_FILE} recorded it; an applied migration must never change"
                ),
                Mismatch::Inserted { name } if *name == file_name => format!(
                    "`{name}` is not in {SUM_FILE} but later versions are: it was added below migrations that may be applied already"
                ),
                Mismatch::Missing { name, line } if first_in_folder => format!(
                    "{SUM_FILE}:{line} records `{name}`, which is gone; an applied migration must stay"
                ),
                _ => continue,
            };
            out.push(Hit {
                span: 0..0,
                message,
                help: "restore the file as recorded and put the change in a new migration (`silo new`); if no database has applied it yet, run `silo lint --update-sum`".into(),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn an_edited_recorded_file_fires() {
        let p = Project::postgres();
        p.write("orders", "V1__a.sql", "CREATE TABLE orders (id bigint);")
            .write("orders", "V2__b.sql", "CREATE TABLE carts (id bigint);");
        silo_migration_files::sum::update(&p.folder("orders")).unwrap();
        p.write(
            "orders",
            "V1__a.sql",
            "CREATE TABLE orders (id bigint, note text);",
        );
        let hits = p.hits("applied-migration-modified");
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert!(hits[0].file.ends_with("V1__a.sql"));
        assert!(
            hits[0]
                .message
                .contains("changed after silo.sum recorded it")
        );
    }

    #[test]
    fn unchanged_files_new_files_and_folders_without_sum_do_not() {
        let p = Project::postgres();
        p.write("orders", "V1__a.sql", "CREATE TABLE orders (id bigint);");
        silo_migration_files::sum::update(&p.folder("orders")).unwrap();
        p.write("orders", "V2__b.sql", "CREATE TABLE carts (id bigint);")
            .write("billing", "V1__a.sql", "CREATE TABLE invoices (id bigint);");
        assert_eq!(p.places("applied-migration-modified"), []);
    }
}
