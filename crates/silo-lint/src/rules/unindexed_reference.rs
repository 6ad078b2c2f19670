//! `unindexed-reference`: a foreign-key column, or a column named `<x>_id`,
//! without an index that leads with it (seed 002: "Foreign key columns
//! indexed (even if not FK)"). Every file of the service counts: the index
//! may come in a later migration. A primary key or unique constraint
//! leading with the column is an index too.

use std::collections::BTreeMap;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct UnindexedReference;

impl Rule for UnindexedReference {
    meta!(UnindexedReference, Review, Warning);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let indexed = |table: &str, column: &str| {
            ctx.service_files(&file.service).any(|f| {
                f.facts
                    .indexes
                    .iter()
                    .any(|i| i.table == table && i.columns.first().is_some_and(|c| c == column))
            })
        };
        // (table, column) -> where it is declared; a column that is both
        // `<x>_id` and a foreign key is reported once.
        let mut references: BTreeMap<(String, String), (usize, usize, bool)> = BTreeMap::new();
        for fk in &file.facts.foreign_keys {
            if let Some(first) = fk.columns.first() {
                references
                    .entry((fk.table.clone(), first.clone()))
                    .or_insert((fk.at, first.len(), true));
            }
        }
        for c in &file.facts.columns {
            let name = &c.column.name;
            if name.len() > 3 && name.ends_with("_id") {
                references
                    .entry((c.table.clone(), name.clone()))
                    .or_insert((c.column.at, name.len(), false));
            }
        }
        for ((table, column), (at, len, is_fk)) in references {
            if indexed(&table, &column) {
                continue;
            }
            let what = if is_fk { "foreign key" } else { "reference" };
            out.push(Hit {
                span: at..at + len,
                message: format!("{what} column `{table}.{column}` has no index"),
                help: format!(
                    "add `CREATE INDEX idx_{table}_{column} ON {table} ({column});` (CONCURRENTLY on an existing table)"
                ),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn foreign_keys_and_id_columns_without_index_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE customers (id bigint PRIMARY KEY);\n\
             CREATE TABLE orders (\n  id bigint PRIMARY KEY,\n  customer_id bigint REFERENCES customers (id),\n  coupon_id bigint\n);",
        );
        let hits = p.hits("unindexed-reference");
        let found: Vec<_> = hits.iter().map(|h| (h.line, h.message.as_str())).collect();
        assert_eq!(
            found,
            [
                (4, "foreign key column `orders.customer_id` has no index"),
                (5, "reference column `orders.coupon_id` has no index"),
            ]
        );
    }

    #[test]
    fn an_index_in_a_later_file_or_a_leading_key_column_counts() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER);\n\
             CREATE TABLE order_tags (order_id INTEGER, tag TEXT, PRIMARY KEY (order_id, tag));",
        )
        .write(
            "orders",
            "V2__idx.sql",
            "CREATE INDEX idx_orders_customer_id ON orders (customer_id);",
        );
        assert_eq!(p.places("unindexed-reference"), []);
    }
}
