//! `table-name`: tables are plural and snake_case (seed 002's checklist).
//! silo's own tables (`silo_*`) are exempt.

use super::naming::{as_written, is_snake_case, plural, snake_case};
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct TableName;

impl Rule for TableName {
    meta!(TableName, Review, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for t in &file.facts.tables {
            if t.name.starts_with("silo_") {
                continue;
            }
            let name = as_written(&file.text, t.at, &t.name);
            let snake = if is_snake_case(&name) {
                name.clone()
            } else {
                snake_case(&name)
            };
            let expected = plural(&snake).unwrap_or(snake);
            if expected != name {
                out.push(Hit {
                    span: t.at..t.at + t.name.len(),
                    message: format!("table `{name}` should be plural and snake_case"),
                    help: format!("name it `{expected}`"),
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
    fn singular_or_camel_case_tables_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE order_item (id bigint);\nCREATE TABLE \"OrderLines\" (id bigint);",
        );
        let hits = p.hits("table-name");
        assert_eq!(hits.len(), 2);
        assert_eq!((hits[0].line, hits[0].column), (1, 14));
        assert_eq!(hits[0].help, "name it `order_items`");
        assert_eq!(hits[1].help, "name it `order_lines`");
    }

    #[test]
    fn unquoted_camel_case_is_caught_before_folding() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE OrderLines (id bigint);",
        );
        assert_eq!(p.hits("table-name")[0].help, "name it `order_lines`");
    }

    #[test]
    fn plural_snake_case_tables_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE order_items (id bigint);\nCREATE TABLE categories (id bigint);",
        );
        assert_eq!(p.places("table-name"), []);
    }

    #[test]
    fn sqlite_tables_are_checked_too() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE customer (id INTEGER PRIMARY KEY);",
        );
        assert_eq!(p.places("table-name"), [(1, 14)]);
    }
}
