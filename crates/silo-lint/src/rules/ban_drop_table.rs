//! `ban-drop-table` (squawk's name): dropping a table loses its data and breaks every reader still deployed.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct BanDropTable;

impl Rule for BanDropTable {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::BanDropTable
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
        for s in &file.statements {
            if let NodeEnum::DropStmt(d) = &s.node
                && d.remove_type == ObjectType::ObjectTable as i32
            {
                out.push(Hit {
                        span: s.start..s.end,
                        message: "DROP TABLE loses the data and breaks code that still reads the table".into(),
                        help: "stop using the table in a release first; drop it in a later migration marked `-- silo:breaking <reason>`".into(),
                        other_service: None,
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "ban-drop-table";

    #[test]
    fn drop_table_fires() {
        let p = Project::postgres();
        p.write("orders", "V2__t.sql", "SELECT 1;\nDROP TABLE carts;");
        assert_eq!(
            p.found(RULE),
            [(
                2,
                1,
                "DROP TABLE loses the data and breaks code that still reads the table".into()
            )]
        );
    }

    /// An undo file drops what its V file made; a view is not a table.
    #[test]
    fn an_undo_file_or_a_view_do_not() {
        let p = Project::postgres();
        p.write("orders", "U2__t.sql", "DROP TABLE carts;").write(
            "orders",
            "V2__t.sql",
            "DROP VIEW cart_totals;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
