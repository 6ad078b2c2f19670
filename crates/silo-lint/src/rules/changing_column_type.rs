//! `changing-column-type` (squawk's name): changing a column type rewrites the table under an ACCESS EXCLUSIVE lock.

use pg_query::protobuf::AlterTableType;

use super::ddl::alter_cmds;
use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct ChangingColumnType;

impl Rule for ChangingColumnType {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::ChangingColumnType
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for a in alter_cmds(file) {
            if a.is(AlterTableType::AtAlterColumnType) && super::existing(file, a.table) {
                out.push(Hit {
                    span: a.at..a.at,
                    message: format!("changing the type of `{}.{}` rewrites the table under an exclusive lock", a.table, a.cmd.name),
                    help: "add a column of the new type, backfill it in batches, switch readers, then drop the old one".into(),
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "changing-column-type";

    #[test]
    fn retyping_a_column_of_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\nALTER TABLE orders ALTER COLUMN total TYPE numeric(12, 2);",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                1,
                "changing the type of `orders.total` rewrites the table under an exclusive lock"
                    .into()
            )]
        );
    }

    #[test]
    fn a_new_table_or_another_alter_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE TABLE carts (id bigint, n int);\nALTER TABLE carts ALTER COLUMN n TYPE bigint;\n\
             ALTER TABLE orders ALTER COLUMN total SET DEFAULT 0;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
