//! `renaming-table` (squawk's name): renaming a table breaks every deployed reader and writer that uses the old name.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct RenamingTable;

impl Rule for RenamingTable {
    fn id(&self) -> &'static str {
        "renaming-table"
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
                });
            }
        }
    }
}
