//! `column-name`: columns are snake_case (seed 002's checklist).

use super::naming::{as_written, is_snake_case, snake_case};
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct ColumnName;

impl Rule for ColumnName {
    meta!(ColumnName, Review, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for c in &file.facts.columns {
            let name = &as_written(&file.text, c.column.at, &c.column.name);
            if !is_snake_case(name) {
                out.push(Hit {
                    span: c.column.at..c.column.at + name.len(),
                    message: format!("column `{}.{name}` is not snake_case", c.table),
                    help: format!("name it `{}`", snake_case(name)),
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn camel_case_columns_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, \"createdAt\" timestamptz, updatedAt timestamptz);\n\
             ALTER TABLE orders ADD COLUMN \"Total\" bigint;",
        );
        let hits = p.hits("column-name");
        assert_eq!(hits.len(), 3);
        assert_eq!((hits[0].line, hits[0].column), (1, 33));
        assert_eq!(hits[0].help, "name it `created_at`");
        assert_eq!(hits[1].help, "name it `updated_at`");
        assert_eq!(hits[2].help, "name it `total`");
    }

    #[test]
    fn snake_case_columns_do_not() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, created_at TEXT, total_2 INTEGER);",
        );
        assert_eq!(p.places("column-name"), []);
    }
}
