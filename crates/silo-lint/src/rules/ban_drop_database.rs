//! `ban-drop-database` (squawk's name): a migration never drops a database: that is `silo down`, with `--yes`.

use pg_query::NodeEnum;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct BanDropDatabase;

impl Rule for BanDropDatabase {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::BanDropDatabase
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.statements {
            if let NodeEnum::DropdbStmt(d) = &s.node {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!("DROP DATABASE {} in a migration", d.dbname),
                    help: "stores are dropped with `silo down SERVICE --yes`, never by a migration"
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

    const RULE: &str = "ban-drop-database";

    #[test]
    fn drop_database_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\n  DROP DATABASE IF EXISTS billing;",
        );
        assert_eq!(
            p.found(RULE),
            [(2, 3, "DROP DATABASE billing in a migration".into())]
        );
    }

    #[test]
    fn drop_table_and_drop_schema_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "DROP TABLE carts;\nDROP SCHEMA billing;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
