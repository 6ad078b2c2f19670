//! `ban-drop-table` (squawk's name): dropping a table loses its data and breaks every reader still deployed.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct BanDropTable;

impl Rule for BanDropTable {
    fn id(&self) -> &'static str {
        "ban-drop-table"
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
                    });
            }
        }
    }
}
