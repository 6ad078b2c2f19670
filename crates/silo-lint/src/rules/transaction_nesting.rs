//! `transaction-nesting` (squawk's name): silo runs each migration file in
//! a transaction of its own. A `BEGIN` inside it only warns, but a
//! `COMMIT` or `ROLLBACK` ends silo's transaction early, so a failure
//! after it leaves the migration half-applied.

use pg_query::NodeEnum;
use pg_query::protobuf::TransactionStmtKind;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct TransactionNesting;

impl Rule for TransactionNesting {
    meta!("transaction-nesting", Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.statements {
            let NodeEnum::TransactionStmt(t) = &s.node else {
                continue;
            };
            let kind = t.kind;
            let begins = kind == TransactionStmtKind::TransStmtBegin as i32
                || kind == TransactionStmtKind::TransStmtStart as i32;
            let ends = kind == TransactionStmtKind::TransStmtCommit as i32
                || kind == TransactionStmtKind::TransStmtRollback as i32;
            if begins || ends {
                out.push(Hit {
                    span: s.start..s.end,
                    message: "transaction control inside a migration: silo already runs the file in a transaction".into(),
                    help: "remove BEGIN/COMMIT/ROLLBACK; for statements that cannot run in a transaction, put them in a file of their own".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn begin_and_commit_fire_savepoints_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "BEGIN;\nALTER TABLE orders ADD COLUMN a text;\nCOMMIT;",
        )
        .write(
            "orders",
            "V3__t.sql",
            "SAVEPOINT s;\nALTER TABLE orders ADD COLUMN b text;\nRELEASE SAVEPOINT s;",
        );
        assert_eq!(p.places("transaction-nesting"), [(1, 1), (3, 1)]);
    }
}
