//! `renaming-table` (squawk's name): renaming a table breaks every deployed reader and writer that uses the old name.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct RenamingTable;

impl Rule for RenamingTable {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::RenamingTable
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.statements {
            if let NodeEnum::RenameStmt(r) = &s.node
                && r.rename_type == ObjectType::ObjectTable as i32
                && let old = r.relation.as_ref().map_or("", |t| t.relname.as_str())
                && super::existing(file, old)
            {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!(
                        "renaming table `{old}` to `{}` breaks code that uses the old name",
                        r.newname
                    ),
                    help:
                        "create the new table (or a view under the old name) and move readers first"
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

    const RULE: &str = "renaming-table";

    #[test]
    fn renaming_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\n  ALTER TABLE orders RENAME TO purchases;",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                3,
                "renaming table `orders` to `purchases` breaks code that uses the old name".into()
            )]
        );
    }

    #[test]
    fn a_new_table_or_a_renamed_column_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE TABLE carts (id bigint);\nALTER TABLE carts RENAME TO baskets;\n\
             ALTER TABLE orders RENAME COLUMN note TO memo;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
