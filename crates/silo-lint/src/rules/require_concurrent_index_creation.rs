//! `require-concurrent-index-creation` (as squawk names it): `CREATE INDEX`
//! without `CONCURRENTLY` blocks writes to the table for the whole build.
//! An index on a table created in the same file is fine: nobody else can
//! be writing to it yet.

use pg_query::NodeEnum;

use super::{Context, Hit, Rule, created_tables};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct RequireConcurrentIndexCreation;

impl Rule for RequireConcurrentIndexCreation {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::RequireConcurrentIndexCreation
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let new_tables = created_tables(file);
        for s in &file.statements {
            let NodeEnum::IndexStmt(index) = &s.node else {
                continue;
            };
            let table = index
                .relation
                .as_ref()
                .map(|r| r.relname.as_str())
                .unwrap_or("");
            if index.concurrent || new_tables.iter().any(|t| t == table) {
                continue;
            }
            out.push(Hit {
                span: s.start..s.end,
                message: format!(
                    "CREATE INDEX on existing table `{table}` without CONCURRENTLY locks out writes while it builds"
                ),
                help: "use CREATE INDEX CONCURRENTLY (silo runs such a file outside a transaction)".into(),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "require-concurrent-index-creation";

    #[test]
    fn an_index_on_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\nCREATE UNIQUE INDEX uq_orders_code ON orders (code);",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                1,
                "CREATE INDEX on existing table `orders` without CONCURRENTLY locks out writes while it builds".into()
            )]
        );
    }

    #[test]
    fn concurrently_or_a_new_table_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE INDEX CONCURRENTLY idx_orders_code ON orders (code);",
        )
        .write(
            "orders",
            "V3__t.sql",
            "CREATE TABLE carts (id bigint);\nCREATE INDEX idx_carts_id ON carts (id);",
        );
        assert_eq!(p.found(RULE), []);
    }
}
