//! `ban-concurrent-index-creation-in-transaction` (squawk's name):
//! `CREATE INDEX CONCURRENTLY` cannot run in a transaction block. silo runs
//! a file that needs it outside a transaction, so the file's other
//! statements lose their all-or-nothing guarantee: a failure halfway
//! leaves the migration half-applied. An explicit `BEGIN` around it fails
//! outright.

use pg_query::NodeEnum;
use pg_query::protobuf::TransactionStmtKind;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct BanConcurrentIndexCreationInTransaction;

impl Rule for BanConcurrentIndexCreationInTransaction {
    meta!(BanConcurrentIndexCreationInTransaction, Safety, Error);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let in_block = |at: usize| {
            let mut open = false;
            for s in file.statements.iter().take_while(|s| s.start < at) {
                if let NodeEnum::TransactionStmt(t) = &s.node {
                    let kind = t.kind;
                    if kind == TransactionStmtKind::TransStmtBegin as i32
                        || kind == TransactionStmtKind::TransStmtStart as i32
                    {
                        open = true;
                    } else if kind == TransactionStmtKind::TransStmtCommit as i32
                        || kind == TransactionStmtKind::TransStmtRollback as i32
                    {
                        open = false;
                    }
                }
            }
            open
        };
        let others = file
            .statements
            .iter()
            .filter(|s| !matches!(&s.node, NodeEnum::IndexStmt(i) if i.concurrent))
            .filter(|s| !matches!(&s.node, NodeEnum::VariableSetStmt(_)))
            .count();
        for s in &file.statements {
            let NodeEnum::IndexStmt(index) = &s.node else {
                continue;
            };
            if !index.concurrent {
                continue;
            }
            let (message, help) = if in_block(s.start) {
                (
                    "CREATE INDEX CONCURRENTLY inside BEGIN ... COMMIT fails: it cannot run in a transaction block",
                    "remove the BEGIN/COMMIT; silo runs this file outside a transaction",
                )
            } else if others > 0 {
                (
                    "CREATE INDEX CONCURRENTLY makes silo run this whole file outside a transaction, so its other statements can be half-applied",
                    "move the concurrent index into a migration file of its own",
                )
            } else {
                continue;
            };
            out.push(Hit {
                span: s.start..s.end,
                message: message.into(),
                help: help.into(),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn concurrent_index_beside_other_statements_or_in_a_block_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__i.sql",
            "ALTER TABLE orders ADD COLUMN ref text;\nCREATE INDEX CONCURRENTLY idx_orders_ref ON orders (ref);",
        )
        .write(
            "orders",
            "V3__i.sql",
            "BEGIN;\nCREATE INDEX CONCURRENTLY idx_orders_at ON orders (at);\nCOMMIT;",
        );
        let hits = p.hits("ban-concurrent-index-creation-in-transaction");
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].line, 2);
        assert!(hits[1].message.contains("inside BEGIN"));
    }

    #[test]
    fn a_concurrent_index_alone_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__i.sql",
            "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY idx_orders_ref ON orders (ref);\n\
             CREATE INDEX CONCURRENTLY idx_orders_at ON orders (at);",
        );
        assert_eq!(p.places("ban-concurrent-index-creation-in-transaction"), []);
    }
}
