//! `index-name`: `idx_<table>_<columns>`, or `uq_<table>_<columns>` for a
//! unique index (seed 002's checklist). An unnamed `CREATE INDEX` gets a
//! name PostgreSQL makes up, which the next migration cannot rely on.

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct IndexName;

impl Rule for IndexName {
    meta!(IndexName, Review, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for index in file.facts.indexes.iter().filter(|i| i.explicit) {
            let expressions = index.columns.iter().any(String::is_empty);
            let suffix = index.columns.join("_");
            let expected = format!("idx_{}_{suffix}", index.table);
            let unique = format!("uq_{}_{suffix}", index.table);
            let fits = |name: &str| {
                if expressions {
                    // An expression has no column name to spell out.
                    name.starts_with(&format!("idx_{}_", index.table))
                        || (index.unique && name.starts_with(&format!("uq_{}_", index.table)))
                } else {
                    name == expected || (index.unique && name == unique)
                }
            };
            let shown = if expressions {
                format!("idx_{}_<what it indexes>", index.table)
            } else if index.unique {
                format!("{unique}` or `{expected}")
            } else {
                expected.clone()
            };
            match &index.name {
                Some(name) if fits(&name.name) => {}
                Some(name) => out.push(Hit {
                    span: index.at..index.at,
                    message: format!(
                        "index `{}` does not follow the naming convention",
                        name.name
                    ),
                    help: format!("name it `{shown}`"),
                    other_service: None,
                }),
                None => out.push(Hit {
                    span: index.at..index.at,
                    message: format!(
                        "index on `{}` has no name; PostgreSQL would make one up",
                        index.table
                    ),
                    help: format!("name it `{shown}`"),
                    other_service: None,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn wrong_and_missing_names_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, customer_id bigint, placed_at timestamptz);\n\
             CREATE INDEX orders_customer ON orders (customer_id);\n\
             CREATE INDEX ON orders (placed_at);\n\
             CREATE UNIQUE INDEX idx_orders_id ON orders (id, customer_id);",
        );
        let hits = p.hits("index-name");
        assert_eq!(hits.len(), 3, "{hits:#?}");
        assert_eq!((hits[0].line, hits[0].column), (2, 1));
        assert_eq!(hits[0].help, "name it `idx_orders_customer_id`");
        assert_eq!(hits[1].help, "name it `idx_orders_placed_at`");
        assert_eq!(
            hits[2].help,
            "name it `uq_orders_id_customer_id` or `idx_orders_id_customer_id`"
        );
    }

    #[test]
    fn conventional_names_do_not() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, email TEXT);\n\
             CREATE INDEX idx_orders_customer_id ON orders (customer_id);\n\
             CREATE UNIQUE INDEX uq_orders_email ON orders (email);\n\
             CREATE INDEX idx_orders_lower_email ON orders (lower(email));",
        );
        assert_eq!(p.places("index-name"), []);
    }
}
