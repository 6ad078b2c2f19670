//! What a file declares, independent of the parser that read it: tables,
//! columns, indexes and foreign keys. PostgreSQL files are read with
//! PostgreSQL's own grammar (pg_query), SQLite files with a SQLite-dialect
//! parser (sqlparser); the naming, index and boundary rules work on these
//! facts and so cover both engines. Lock-safety rules, which are about
//! PostgreSQL's locks, read the PostgreSQL tree directly.

use pg_query::NodeEnum;
use pg_query::protobuf::{self as pg, ConstrType};
use sqlparser::ast as sq;

/// A name as written, and the byte offset where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub name: String,
    pub at: usize,
}

/// A column that a file defines (`CREATE TABLE` or `ADD COLUMN`).
#[derive(Debug, Clone)]
pub struct ColumnFact {
    pub table: String,
    pub column: Name,
}

/// An index, or a constraint that builds one (primary key, unique).
#[derive(Debug, Clone)]
pub struct IndexFact {
    pub table: String,
    /// The index's own name (`CREATE INDEX name`, `CONSTRAINT name`).
    pub name: Option<Name>,
    /// Column names, in order; an expression counts as an empty name.
    pub columns: Vec<String>,
    pub unique: bool,
    /// `CREATE INDEX`, as opposed to a constraint's implicit index.
    pub explicit: bool,
    pub at: usize,
}

/// A foreign key: `table(columns)` references `target`.
#[derive(Debug, Clone)]
pub struct ForeignKeyFact {
    pub table: String,
    pub columns: Vec<String>,
    /// The referenced table's last name part.
    pub target: String,
    /// The referenced name's qualifiers (schema, database), if any.
    pub qualifiers: Vec<String>,
    pub at: usize,
}

/// Everything a file declares.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub tables: Vec<Name>,
    pub columns: Vec<ColumnFact>,
    pub indexes: Vec<IndexFact>,
    pub foreign_keys: Vec<ForeignKeyFact>,
    /// Names qualified with a schema or an attached database
    /// (`other.table`): last part, qualifiers, offset.
    pub qualified: Vec<(String, Vec<String>, usize)>,
}

fn offset(location: i32, fallback: usize) -> usize {
    usize::try_from(location).unwrap_or(fallback)
}

// ---------------------------------------------------------------- PostgreSQL

/// Facts of one PostgreSQL statement that starts at byte `start`.
pub fn from_postgres(node: &NodeEnum, start: usize, facts: &mut Facts) {
    match node {
        NodeEnum::CreateStmt(c) => {
            let Some(rel) = &c.relation else { return };
            let table = rel.relname.clone();
            facts.tables.push(Name {
                name: table.clone(),
                at: offset(rel.location, start),
            });
            for e in &c.table_elts {
                match &e.node {
                    Some(NodeEnum::ColumnDef(col)) => pg_column(&table, col, start, facts),
                    Some(NodeEnum::Constraint(con)) => {
                        pg_constraint(&table, con, &[], start, facts)
                    }
                    _ => {}
                }
            }
            for con in &c.constraints {
                if let Some(NodeEnum::Constraint(con)) = &con.node {
                    pg_constraint(&table, con, &[], start, facts);
                }
            }
        }
        // `CREATE TABLE ... AS SELECT` makes a new table too.
        NodeEnum::CreateTableAsStmt(c) => {
            if let Some(rel) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                facts.tables.push(Name {
                    name: rel.relname.clone(),
                    at: offset(rel.location, start),
                });
            }
        }
        NodeEnum::AlterTableStmt(a) => {
            let Some(rel) = &a.relation else { return };
            for cmd in &a.cmds {
                let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
                    continue;
                };
                match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(col))
                        if cmd.subtype == pg::AlterTableType::AtAddColumn as i32 =>
                    {
                        pg_column(&rel.relname, col, start, facts);
                    }
                    Some(NodeEnum::Constraint(con)) => {
                        pg_constraint(&rel.relname, con, &[], start, facts)
                    }
                    _ => {}
                }
            }
        }
        NodeEnum::IndexStmt(i) => {
            let Some(rel) = &i.relation else { return };
            let columns = i
                .index_params
                .iter()
                .map(|p| match &p.node {
                    Some(NodeEnum::IndexElem(e)) => e.name.clone(),
                    _ => String::new(),
                })
                .collect();
            facts.indexes.push(IndexFact {
                table: rel.relname.clone(),
                name: (!i.idxname.is_empty()).then(|| Name {
                    name: i.idxname.clone(),
                    at: start,
                }),
                columns,
                unique: i.unique,
                explicit: true,
                at: start,
            });
        }
        _ => {}
    }
    for (n, _, _, _) in node.nodes() {
        if let pg_query::NodeRef::RangeVar(rv) = n {
            let qualifiers: Vec<String> = [&rv.catalogname, &rv.schemaname]
                .into_iter()
                .filter(|q| !q.is_empty())
                .cloned()
                .collect();
            if !qualifiers.is_empty() {
                facts
                    .qualified
                    .push((rv.relname.clone(), qualifiers, offset(rv.location, start)));
            }
        }
    }
}

fn pg_column(table: &str, col: &pg::ColumnDef, start: usize, facts: &mut Facts) {
    facts.columns.push(ColumnFact {
        table: table.to_string(),
        column: Name {
            name: col.colname.clone(),
            at: offset(col.location, start),
        },
    });
    for con in &col.constraints {
        if let Some(NodeEnum::Constraint(con)) = &con.node {
            pg_constraint(table, con, std::slice::from_ref(&col.colname), start, facts);
        }
    }
}

fn strings(nodes: &[pg::Node]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| match &n.node {
            Some(NodeEnum::String(s)) => s.sval.clone(),
            _ => String::new(),
        })
        .collect()
}

/// A table or column constraint; `column` is the column a column
/// constraint stands on (its key list is empty).
fn pg_constraint(
    table: &str,
    con: &pg::Constraint,
    column: &[String],
    start: usize,
    facts: &mut Facts,
) {
    let at = offset(con.location, start);
    let kind = con.contype;
    let name = (!con.conname.is_empty()).then(|| Name {
        name: con.conname.clone(),
        at,
    });
    if kind == ConstrType::ConstrPrimary as i32 || kind == ConstrType::ConstrUnique as i32 {
        let keys = strings(&con.keys);
        facts.indexes.push(IndexFact {
            table: table.to_string(),
            name,
            columns: if keys.is_empty() {
                column.to_vec()
            } else {
                keys
            },
            unique: true,
            explicit: false,
            at,
        });
    } else if kind == ConstrType::ConstrForeign as i32
        && let Some(target) = &con.pktable
    {
        let keys = strings(&con.fk_attrs);
        facts.foreign_keys.push(ForeignKeyFact {
            table: table.to_string(),
            columns: if keys.is_empty() {
                column.to_vec()
            } else {
                keys
            },
            target: target.relname.clone(),
            qualifiers: [&target.catalogname, &target.schemaname]
                .into_iter()
                .filter(|q| !q.is_empty())
                .cloned()
                .collect(),
            at: offset(target.location, at),
        });
    }
}

// -------------------------------------------------------------------- SQLite

/// Maps sqlparser's 1-based line and column inside one statement's text
/// (which starts at byte `start` of the file) to a byte offset in the file.
pub struct Locator<'t> {
    pub text: &'t str,
    pub start: usize,
}

impl Locator<'_> {
    pub fn at(&self, location: sqlparser::tokenizer::Location) -> usize {
        if location.line == 0 {
            return self.start;
        }
        let body = &self.text[self.start..];
        let mut line_start = 0;
        for _ in 1..location.line {
            match body[line_start..].find('\n') {
                Some(i) => line_start += i + 1,
                None => return self.start,
            }
        }
        let column = body[line_start..]
            .char_indices()
            .nth(location.column.saturating_sub(1) as usize)
            .map_or(body.len() - line_start, |(i, _)| i);
        self.start + line_start + column
    }

    fn ident(&self, ident: &sq::Ident) -> Name {
        Name {
            name: ident.value.clone(),
            at: self.at(ident.span.start),
        }
    }
}

fn last_part(name: &sq::ObjectName) -> Option<&sq::Ident> {
    match name.0.last()? {
        sq::ObjectNamePart::Identifier(i) => Some(i),
        _ => None,
    }
}

fn qualifiers(name: &sq::ObjectName) -> Vec<String> {
    let n = name.0.len().saturating_sub(1);
    name.0[..n]
        .iter()
        .filter_map(|p| match p {
            sq::ObjectNamePart::Identifier(i) => Some(i.value.clone()),
            _ => None,
        })
        .collect()
}

fn index_columns(columns: &[sq::IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            sq::Expr::Identifier(i) => i.value.clone(),
            _ => String::new(),
        })
        .collect()
}

/// Facts of one SQLite statement.
pub fn from_sqlite(statement: &sq::Statement, loc: &Locator, facts: &mut Facts) {
    match statement {
        sq::Statement::CreateTable(c) => {
            let Some(table) = last_part(&c.name) else {
                return;
            };
            let qualified = qualifiers(&c.name);
            if !qualified.is_empty() {
                facts
                    .qualified
                    .push((table.value.clone(), qualified, loc.at(table.span.start)));
            }
            facts.tables.push(loc.ident(table));
            for col in &c.columns {
                sqlite_column(&table.value, col, loc, facts);
            }
            for con in &c.constraints {
                sqlite_constraint(&table.value, con, loc, facts);
            }
        }
        sq::Statement::AlterTable(a) => {
            let Some(table) = last_part(&a.name) else {
                return;
            };
            for op in &a.operations {
                if let sq::AlterTableOperation::AddColumn { column_def, .. } = op {
                    sqlite_column(&table.value, column_def, loc, facts);
                }
            }
        }
        sq::Statement::CreateIndex(i) => {
            let Some(table) = last_part(&i.table_name) else {
                return;
            };
            facts.indexes.push(IndexFact {
                table: table.value.clone(),
                name: i.name.as_ref().and_then(last_part).map(|n| loc.ident(n)),
                columns: index_columns(&i.columns),
                unique: i.unique,
                explicit: true,
                at: loc.start,
            });
        }
        _ => {}
    }
}

fn sqlite_column(table: &str, col: &sq::ColumnDef, loc: &Locator, facts: &mut Facts) {
    facts.columns.push(ColumnFact {
        table: table.to_string(),
        column: loc.ident(&col.name),
    });
    for option in &col.options {
        let at = loc.at(col.name.span.start);
        match &option.option {
            sq::ColumnOption::PrimaryKey(_) | sq::ColumnOption::Unique(_) => {
                facts.indexes.push(IndexFact {
                    table: table.to_string(),
                    name: None,
                    columns: vec![col.name.value.clone()],
                    unique: true,
                    explicit: false,
                    at,
                })
            }
            sq::ColumnOption::ForeignKey(fk) => push_sqlite_fk(
                table,
                vec![col.name.value.clone()],
                &fk.foreign_table,
                loc,
                facts,
            ),
            _ => {}
        }
    }
}

fn push_sqlite_fk(
    table: &str,
    columns: Vec<String>,
    target: &sq::ObjectName,
    loc: &Locator,
    facts: &mut Facts,
) {
    let Some(last) = last_part(target) else {
        return;
    };
    facts.foreign_keys.push(ForeignKeyFact {
        table: table.to_string(),
        columns,
        target: last.value.clone(),
        qualifiers: qualifiers(target),
        at: loc.at(last.span.start),
    });
}

fn sqlite_constraint(table: &str, con: &sq::TableConstraint, loc: &Locator, facts: &mut Facts) {
    let (name, columns) = match con {
        sq::TableConstraint::PrimaryKey(pk) => (&pk.name, &pk.columns),
        sq::TableConstraint::Unique(u) => (&u.name, &u.columns),
        sq::TableConstraint::ForeignKey(fk) => {
            let columns = fk.columns.iter().map(|c| c.value.clone()).collect();
            push_sqlite_fk(table, columns, &fk.foreign_table, loc, facts);
            return;
        }
        _ => return,
    };
    facts.indexes.push(IndexFact {
        table: table.to_string(),
        name: name.as_ref().map(|n| loc.ident(n)),
        columns: index_columns(columns),
        unique: true,
        explicit: false,
        at: loc.start,
    });
}
