//! `foreign-data-access`: `dblink`, `postgres_fdw`, `CREATE SERVER`,
//! `CREATE FOREIGN TABLE` and `IMPORT FOREIGN SCHEMA` reach into other
//! stores behind the boundary's back (seed 000 rule 2). In SQLite the doors
//! are `ATTACH DATABASE`, which opens another file, and `VACUUM INTO`,
//! which writes a copy of the store to a file of the author's choosing.
//! SQLite statements are read as `silo migrate` splits them, so a form the
//! dialect parser does not know still counts.

use pg_query::{NodeEnum, NodeRef};

use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::{SourceFile, first_word};

pub struct ForeignDataAccess;

const EXTENSIONS: [&str; 2] = ["dblink", "postgres_fdw"];

impl Rule for ForeignDataAccess {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::ForeignDataAccess
    }
    fn group(&self) -> Group {
        Group::Boundary
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        if file.engine == silo_manifest::Engine::Sqlite {
            for s in &file.raw {
                let text = s.text(&file.text);
                let what = if first_word(text).eq_ignore_ascii_case("attach") {
                    "ATTACH DATABASE opens another store's file".to_string()
                } else if let Some(target) = vacuum_into(text) {
                    format!("VACUUM INTO writes a copy of the store to {target}")
                } else {
                    continue;
                };
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!("{what} from service `{}`", file.service),
                    help: "data crosses service boundaries as events (or API calls), never as a shared file; backups are `silo`'s job, not a migration's".into(),
                    other_service: None,
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
                    other_service: None,
                });
            }
        }
    }
}

/// The target of `VACUUM [schema] INTO target`, if the statement has one.
fn vacuum_into(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("vacuum") {
        return None;
    }
    let mut rest = text.trim_start()["vacuum".len()..].trim_start();
    for _ in 0..2 {
        let word = rest.split_whitespace().next()?;
        rest = rest[word.len()..].trim_start();
        if word.eq_ignore_ascii_case("into") {
            return Some(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn sqlite_attach_and_vacuum_into_fire() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V1__a.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n\
             ATTACH 'billing.db' AS billing;\n\
             VACUUM INTO '/elsewhere/orders.db';\n  vacuum main into '/tmp/x.db'",
        );
        let hits = p.hits("foreign-data-access");
        let found: Vec<_> = hits
            .iter()
            .map(|f| (f.line, f.column, f.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    2,
                    1,
                    "ATTACH DATABASE opens another store's file from service `orders`"
                ),
                (
                    3,
                    1,
                    "VACUUM INTO writes a copy of the store to '/elsewhere/orders.db' from service `orders`"
                ),
                (
                    4,
                    3,
                    "VACUUM INTO writes a copy of the store to '/tmp/x.db' from service `orders`"
                ),
            ]
        );
        // VACUUM INTO is SQLite's own grammar, not a parse error.
        assert_eq!(p.places(crate::PARSE_ERROR.as_str()), []);
    }

    #[test]
    fn plain_vacuum_and_a_column_named_attach_do_not() {
        let p = Project::sqlite();
        p.write(
            "orders",
            "V1__a.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, attach TEXT);\nVACUUM;\nVACUUM main;\n\
             INSERT INTO orders (attach) VALUES ('VACUUM INTO x');",
        );
        assert_eq!(p.places("foreign-data-access"), []);
    }

    #[test]
    fn postgres_dblink_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__a.sql",
            "SELECT 1;\nCREATE EXTENSION dblink;\nCREATE EXTENSION pgcrypto;",
        );
        let hits = p.hits("foreign-data-access");
        assert_eq!(p.places("foreign-data-access"), [(2, 1)]);
        assert_eq!(
            hits[0].message,
            "the `dblink` extension reaches into another store from service `orders`"
        );
    }
}
