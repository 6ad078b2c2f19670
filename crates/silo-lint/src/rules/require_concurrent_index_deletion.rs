//! `require-concurrent-index-deletion` (squawk's name): `DROP INDEX` takes
//! ACCESS EXCLUSIVE on the index's table, blocking reads and writes;
//! `DROP INDEX CONCURRENTLY` waits for running queries instead.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct RequireConcurrentIndexDeletion;

impl Rule for RequireConcurrentIndexDeletion {
    meta!("require-concurrent-index-deletion", Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.statements {
            if let NodeEnum::DropStmt(d) = &s.node
                && d.remove_type == ObjectType::ObjectIndex as i32
                && !d.concurrent
            {
                out.push(Hit {
                    span: s.start..s.end,
                    message: "DROP INDEX without CONCURRENTLY blocks reads and writes on its table"
                        .into(),
                    help:
                        "use DROP INDEX CONCURRENTLY (silo runs such a file outside a transaction)"
                            .into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

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
