//! `ban-drop-column` (squawk's name): dropping a column breaks every deployed reader that still selects it.

use pg_query::protobuf::AlterTableType;

use super::ddl::alter_cmds;
use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct BanDropColumn;

impl Rule for BanDropColumn {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::BanDropColumn
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        if super::is_undo(file) {
            return;
        }
        for a in alter_cmds(file) {
            if a.is(AlterTableType::AtDropColumn) && super::existing(file, a.table) {
                out.push(Hit {
                    span: a.at..a.at,
                    message: format!("dropping column `{}.{}` breaks code that still reads it", a.table, a.cmd.name),
                    help: "stop reading the column in a release first, then drop it in a later migration marked `-- silo:breaking <reason>`".into(),
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "ban-drop-column";

    #[test]
    fn dropping_a_column_of_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\nALTER TABLE orders DROP COLUMN note;",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                1,
                "dropping column `orders.note` breaks code that still reads it".into()
            )]
        );
    }

    /// An undo file's job is to drop what its V file added; a table made in
    /// the same file has no readers yet.
    #[test]
    fn an_undo_file_or_a_new_table_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "U2__t.sql",
            "ALTER TABLE orders DROP COLUMN note;",
        )
        .write(
            "orders",
            "V2__t.sql",
            "CREATE TABLE carts (id bigint, n text);\nALTER TABLE carts DROP COLUMN n;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
