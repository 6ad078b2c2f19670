//! `renaming-column` (squawk's name): renaming a column breaks every deployed reader and writer that uses the old name.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct RenamingColumn;

impl Rule for RenamingColumn {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::RenamingColumn
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
                && r.rename_type == ObjectType::ObjectColumn as i32
                && super::existing(file, r.relation.as_ref().map_or("", |t| t.relname.as_str()))
            {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!(
                        "renaming column `{}` to `{}` breaks code that uses the old name",
                        r.subname, r.newname
                    ),
                    help: "add the new column, write both, move readers, then drop the old one"
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

    const RULE: &str = "renaming-column";

    #[test]
    fn renaming_a_column_of_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\nALTER TABLE orders RENAME COLUMN note TO memo;",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                1,
                "renaming column `note` to `memo` breaks code that uses the old name".into()
            )]
        );
    }

    #[test]
    fn a_new_table_or_a_renamed_table_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE TABLE carts (id bigint, n text);\nALTER TABLE carts RENAME COLUMN n TO name;\n\
             ALTER TABLE orders RENAME TO purchases;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
