//! `transaction-nesting` (squawk's name): silo runs each migration file in
//! a transaction of its own, and `silo migrate` refuses a file that holds
//! `BEGIN`, `COMMIT`, `ROLLBACK` (or `END`, `ABORT`, `PREPARE TRANSACTION`):
//! a `COMMIT` would end silo's transaction early, so a failure after it
//! would leave the migration half-applied. The statements are found the way
//! `silo migrate` finds them, on both engines, so the two always agree.

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct TransactionNesting;

impl Rule for TransactionNesting {
    meta!(TransactionNesting, Safety, Error);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.raw {
            let Some(what) = s.transaction_control else {
                continue;
            };
            out.push(Hit {
                span: s.start..s.end,
                message: format!(
                    "{what} inside a migration: silo already runs the file in a transaction, and `silo migrate` refuses it"
                ),
                help: "remove BEGIN/COMMIT/ROLLBACK; for statements that cannot run in a transaction, put them in a file of their own".into(),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Severity;
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
        )
        .write(
            "orders",
            "V4__t.sql",
            "SELECT 1;\n  PREPARE TRANSACTION 'x';",
        );
        assert_eq!(p.places("transaction-nesting"), [(1, 1), (3, 1), (2, 3)]);
        let hits = p.hits("transaction-nesting");
        assert!(hits.iter().all(|f| f.severity == Severity::Error));
        assert_eq!(
            hits[1].message,
            "COMMIT inside a migration: silo already runs the file in a transaction, and `silo migrate` refuses it"
        );
    }

    /// `silo migrate` refuses these on SQLite too: lint says so, as an
    /// error. `ROLLBACK TO` a savepoint and a trigger's `BEGIN ... END`
    /// stay inside the transaction.
    #[test]
    fn sqlite_transaction_control_is_an_error_too() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V2__t.sql",
            "BEGIN TRANSACTION;\nCREATE TABLE a (id INTEGER);\nEND;\nROLLBACK;",
        )
        .write(
            "orders",
            "V3__t.sql",
            "SAVEPOINT s;\nROLLBACK TO s;\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  DELETE FROM a;\nEND;",
        );
        let hits = p.hits("transaction-nesting");
        let found: Vec<_> = hits
            .iter()
            .map(|f| {
                (
                    f.line,
                    f.column,
                    f.severity,
                    f.message.split(' ').next().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (1, 1, Severity::Error, "BEGIN"),
                (3, 1, Severity::Error, "COMMIT"),
                (4, 1, Severity::Error, "ROLLBACK")
            ]
        );
    }
}
