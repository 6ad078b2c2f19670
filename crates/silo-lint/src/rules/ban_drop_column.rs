//! `ban-drop-column` (squawk's name): dropping a column breaks every deployed reader that still selects it.

use pg_query::protobuf::AlterTableType;

use super::ddl::alter_cmds;
use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct BanDropColumn;

impl Rule for BanDropColumn {
    fn id(&self) -> &'static str {
        "ban-drop-column"
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
                });
            }
        }
    }
}
