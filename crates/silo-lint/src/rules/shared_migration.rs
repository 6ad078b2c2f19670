//! `shared-migration`: one migration file used by two services, through
//! the same path, a symlink to the same file, or identical content. Seed
//! 000: no shared migration scripts; each service owns its schema.

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct SharedMigration;

/// Whether a file has any SQL at all (two empty templates are not shared).
fn has_sql(file: &SourceFile) -> bool {
    !file.statements.is_empty() || !file.sqlite.is_empty() || file.parse_error.is_some()
}

impl Rule for SharedMigration {
    meta!(SharedMigration, Boundary, Error);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let real = std::fs::canonicalize(&file.path).ok();
        let checksum = silo_migration_files::file::checksum(file.text.as_bytes());
        for other in ctx.files.iter().filter(|f| f.service != file.service) {
            let how = if real.is_some() && std::fs::canonicalize(&other.path).ok() == real {
                "is the same file as"
            } else if has_sql(file)
                && silo_migration_files::file::checksum(other.text.as_bytes()) == checksum
            {
                "has the same content as"
            } else {
                continue;
            };
            out.push(Hit {
                span: 0..0,
                message: format!(
                    "{} {how} `{}` of service `{}`",
                    file.display.display(),
                    other.display.display(),
                    other.service
                ),
                help: format!(
                    "each service keeps its own migration scripts: give `{}` its own copy and let the two evolve apart",
                    file.service
                ),
                other_service: None,
            });
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn identical_content_and_symlinks_fire_for_both_services() {
        let p = Project::postgres();
        let sql = "CREATE TABLE audit_logs (id bigint PRIMARY KEY);";
        p.write("orders", "V1__audit.sql", sql)
            .write("billing", "V1__audit.sql", sql)
            .write("orders", "V2__x.sql", "CREATE TABLE xs (id bigint);");
        std::os::unix::fs::symlink(
            p.folder("orders").join("V2__x.sql"),
            p.folder("billing").join("V2__x.sql"),
        )
        .unwrap();
        let hits = p.hits("shared-migration");
        let files: Vec<_> = hits.iter().map(|f| f.file.display().to_string()).collect();
        assert_eq!(files.len(), 4, "{files:?}");
        assert!(
            hits.iter()
                .any(|h| h.message.contains("is the same file as"))
        );
        assert!(
            hits.iter()
                .any(|h| h.message.contains("has the same content as"))
        );
    }

    #[test]
    fn similar_files_and_empty_templates_do_not() {
        let p = Project::postgres();
        p.write("orders", "V1__a.sql", "CREATE TABLE orders (id bigint);")
            .write("billing", "V1__a.sql", "CREATE TABLE invoices (id bigint);")
            .write("orders", "V2__b.sql", "-- nothing yet\n")
            .write("billing", "V2__b.sql", "-- nothing yet\n");
        assert_eq!(p.places("shared-migration"), []);
    }
}
