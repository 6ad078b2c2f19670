//! `adding-required-field` (squawk's name): adding a NOT NULL column without a default fails on a table that has rows, and breaks inserts from code that does not know it.

use pg_query::protobuf::{AlterTableType, ConstrType};

use super::ddl::{alter_cmds, has_constraint};
use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct AddingRequiredField;

impl Rule for AddingRequiredField {
    fn id(&self) -> &'static str {
        "adding-required-field"
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for a in alter_cmds(file) {
            if !a.is(AlterTableType::AtAddColumn) || !super::existing(file, a.table) {
                continue;
            }
            let Some(col) = a.column() else { continue };
            let not_null = col.is_not_null || has_constraint(col, ConstrType::ConstrNotnull);
            let has_default = col.raw_default.is_some()
                || has_constraint(col, ConstrType::ConstrDefault)
                || has_constraint(col, ConstrType::ConstrIdentity)
                || has_constraint(col, ConstrType::ConstrGenerated);
            if not_null && !has_default {
                out.push(Hit {
                    span: a.at..a.at,
                    message: format!("adding required column `{}.{}` without a default", a.table, col.colname),
                    help: "add it nullable (or with a default), backfill, then SET NOT NULL in a later migration".into(),
                });
            }
        }
    }
}
