//! `foreign-data-access`: `dblink`, `postgres_fdw`, `CREATE SERVER`,
//! `CREATE FOREIGN TABLE` and `IMPORT FOREIGN SCHEMA` reach into other
//! stores behind the boundary's back (seed 000 rule 2). In SQLite the door
//! is `ATTACH DATABASE`.

use pg_query::{NodeEnum, NodeRef};

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct ForeignDataAccess;

const EXTENSIONS: [&str; 2] = ["dblink", "postgres_fdw"];

impl Rule for ForeignDataAccess {
    fn id(&self) -> &'static str {
        "foreign-data-access"
    }
    fn group(&self) -> Group {
        Group::Boundary
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.sqlite {
            if let sqlparser::ast::Statement::AttachDatabase { .. } = &s.node {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!(
                        "ATTACH DATABASE opens another store's file from service `{}`",
                        file.service
                    ),
                    help: "data crosses service boundaries as events (or API calls), never as a shared file".into(),
                });
            }
        }
        for s in &file.statements {
            let what = match &s.node {
                NodeEnum::CreateExtensionStmt(e) if EXTENSIONS.contains(&e.extname.as_str()) => {
                    Some(format!("the `{}` extension", e.extname))
                }
                NodeEnum::CreateForeignServerStmt(_) => Some("CREATE SERVER".into()),
                NodeEnum::CreateForeignTableStmt(_) => Some("CREATE FOREIGN TABLE".into()),
                NodeEnum::ImportForeignSchemaStmt(_) => Some("IMPORT FOREIGN SCHEMA".into()),
                NodeEnum::CreateUserMappingStmt(_) => Some("CREATE USER MAPPING".into()),
                node => node.nodes().into_iter().find_map(|(n, _, _, _)| match n {
                    NodeRef::FuncCall(f) => f.funcname.iter().find_map(|part| match &part.node {
                        Some(NodeEnum::String(name)) if name.sval.starts_with("dblink") => {
                            Some(format!("`{}()`", name.sval))
                        }
                        _ => None,
                    }),
                    _ => None,
                }),
            };
            if let Some(what) = what {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!(
                        "{what} reaches into another store from service `{}`",
                        file.service
                    ),
                    help: "data crosses service boundaries as events (or API calls), never as foreign data".into(),
                });
            }
        }
    }
}
