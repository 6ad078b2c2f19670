//! `ban-drop-database` (squawk's name): a migration never drops a database: that is `silo down`, with `--yes`.

use pg_query::NodeEnum;

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct BanDropDatabase;

impl Rule for BanDropDatabase {
    fn id(&self) -> &'static str {
        "ban-drop-database"
    }
    fn group(&self) -> Group {
        Group::Safety
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.statements {
            if let NodeEnum::DropdbStmt(d) = &s.node {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!("DROP DATABASE {} in a migration", d.dbname),
                    help: "stores are dropped with `silo down SERVICE --yes`, never by a migration"
                        .into(),
                });
            }
        }
    }
}
