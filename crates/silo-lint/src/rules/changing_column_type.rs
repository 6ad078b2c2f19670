//! `changing-column-type` (squawk's name): changing a column type rewrites the table under an ACCESS EXCLUSIVE lock.

use pg_query::protobuf::AlterTableType;

use super::ddl::alter_cmds;
use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct ChangingColumnType;

impl Rule for ChangingColumnType {
    fn id(&self) -> &'static str {
        "changing-column-type"
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
                });
            }
        }
    }
}
