//! `require-concurrent-index-deletion` (squawk's name): `DROP INDEX` takes
//! ACCESS EXCLUSIVE on the index's table, blocking reads and writes;
//! `DROP INDEX CONCURRENTLY` waits for running queries instead. An index
//! whose table the same file drops goes with it anyway.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct RequireConcurrentIndexDeletion;

/// The last part of a dropped object's name (`schema.name` -> `name`).
fn last_name(object: &pg_query::protobuf::Node) -> Option<&str> {
    match &object.node {
        Some(NodeEnum::List(l)) => l.items.last().and_then(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        }),
        _ => None,
    }
}

impl Rule for RequireConcurrentIndexDeletion {
    meta!(RequireConcurrentIndexDeletion, Safety, Warning);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let dropped_tables: Vec<&str> = file
            .statements
            .iter()
            .filter_map(|s| match &s.node {
                NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectTable as i32 => Some(d),
                _ => None,
            })
            .flat_map(|d| d.objects.iter().filter_map(last_name))
            .collect();
        // The table of a named index, from any of the service's files.
        let table_of = |index: &str| {
            ctx.service_files(&file.service).find_map(|f| {
                f.facts
                    .indexes
                    .iter()
                    .find(|i| i.name.as_ref().is_some_and(|n| n.name == index))
                    .map(|i| i.table.clone())
            })
        };
        for s in &file.statements {
            if let NodeEnum::DropStmt(d) = &s.node
                && d.remove_type == ObjectType::ObjectIndex as i32
                && !d.concurrent
                && !d.objects.iter().filter_map(last_name).all(|index| {
                    table_of(index).is_some_and(|t| dropped_tables.contains(&t.as_str()))
                })
            {
                out.push(Hit {
                    span: s.start..s.end,
                    message: "DROP INDEX without CONCURRENTLY blocks reads and writes on its table"
                        .into(),
                    help:
                        "use DROP INDEX CONCURRENTLY (silo runs such a file outside a transaction)"
                            .into(),
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
    fn an_index_dropped_with_its_table_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE carts (id bigint, n bigint);\nCREATE INDEX idx_carts_n ON carts (n);",
        )
        .write(
            "orders",
            "U1__t.sql",
            "DROP INDEX idx_carts_n;\nDROP TABLE carts;",
        );
        assert_eq!(p.places("require-concurrent-index-deletion"), []);
    }

    #[test]
    fn drop_index_fires_and_concurrently_does_not() {
        let p = Project::postgres();
        p.write("orders", "V2__d.sql", "DROP INDEX idx_orders_ref;")
            .write(
                "orders",
                "V3__d.sql",
                "DROP INDEX CONCURRENTLY IF EXISTS idx_orders_at;",
            );
        let hits = p.hits("require-concurrent-index-deletion");
        assert_eq!(hits.len(), 1);
        assert!(hits[0].file.ends_with("V2__d.sql"));
    }
}
