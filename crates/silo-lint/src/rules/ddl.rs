//! Views of DDL that several rules share: the commands of `ALTER TABLE`
//! and the type of every column a file declares.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, ColumnDef, ConstrType};

use crate::source::SourceFile;

/// One `ALTER TABLE` subcommand.
pub struct AlterCmd<'a> {
    pub table: &'a str,
    pub cmd: &'a AlterTableCmd,
    /// Where its statement starts.
    pub at: usize,
}

impl<'a> AlterCmd<'a> {
    pub fn is(&self, kind: AlterTableType) -> bool {
        self.cmd.subtype == kind as i32
    }

    /// The column it adds (`ADD COLUMN`) or retypes (`ALTER COLUMN TYPE`).
    pub fn column(&self) -> Option<&'a ColumnDef> {
        match self.cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::ColumnDef(c)) => Some(c),
            _ => None,
        }
    }
}

/// Every `ALTER TABLE` subcommand of a file, in order.
pub fn alter_cmds(file: &SourceFile) -> Vec<AlterCmd<'_>> {
    let mut out = Vec::new();
    for s in &file.statements {
        let NodeEnum::AlterTableStmt(a) = &s.node else {
            continue;
        };
        let table = a.relation.as_ref().map_or("", |r| r.relname.as_str());
        for cmd in &a.cmds {
            if let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node {
                out.push(AlterCmd {
                    table,
                    cmd,
                    at: s.start,
                });
            }
        }
    }
    out
}

/// A column a file declares (CREATE TABLE, ADD COLUMN) or retypes (ALTER
/// COLUMN TYPE), with its type's last name part (`varchar`, `int4`, ...).
pub struct ColumnType<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub type_name: String,
    pub at: usize,
}

/// A column's type: its last name part and where it is. A `varchar`
/// without a length is `text` under another name, and is named so.
fn type_of(c: &ColumnDef) -> Option<(String, usize)> {
    let t = c.type_name.as_ref()?;
    let last = t.names.iter().rev().find_map(|n| match &n.node {
        Some(NodeEnum::String(s)) => Some(s.sval.to_lowercase()),
        _ => None,
    })?;
    let name = if last == "varchar" && t.typmods.is_empty() {
        "text".to_string()
    } else {
        last
    };
    Some((name, usize::try_from(t.location).unwrap_or(0)))
}

/// Every column type a file declares.
pub fn column_types(file: &SourceFile) -> Vec<ColumnType<'_>> {
    let mut out = Vec::new();
    for s in &file.statements {
        if let NodeEnum::CreateStmt(c) = &s.node {
            let table = c.relation.as_ref().map_or("", |r| r.relname.as_str());
            for e in &c.table_elts {
                if let Some(NodeEnum::ColumnDef(col)) = &e.node
                    && let Some((type_name, at)) = type_of(col)
                {
                    out.push(ColumnType {
                        table,
                        column: &col.colname,
                        type_name,
                        at,
                    });
                }
            }
        }
    }
    for a in alter_cmds(file) {
        if (a.is(AlterTableType::AtAddColumn) || a.is(AlterTableType::AtAlterColumnType))
            && let Some(col) = a.column()
            && let Some((type_name, at)) = type_of(col)
        {
            let cmd: &AlterTableCmd = a.cmd;
            let column = if col.colname.is_empty() {
                cmd.name.as_str()
            } else {
                col.colname.as_str()
            };
            out.push(ColumnType {
                table: a.table,
                column,
                type_name,
                at,
            });
        }
    }
    out
}

/// Whether a column definition carries a constraint of `kind`.
pub fn has_constraint(col: &ColumnDef, kind: ConstrType) -> bool {
    col.constraints
        .iter()
        .any(|c| matches!(&c.node, Some(NodeEnum::Constraint(c)) if c.contype == kind as i32))
}

/// A constraint that an `ALTER TABLE` adds, as `ADD CONSTRAINT` or on a
/// column it adds.
pub struct AddedConstraint<'a> {
    pub table: &'a str,
    pub constraint: &'a pg_query::protobuf::Constraint,
    /// The column it stands on, for a column constraint.
    pub column: Option<&'a str>,
    pub at: usize,
    pub end: usize,
}

/// Every constraint a file's `ALTER TABLE` statements add to tables that
/// existed before the file.
pub fn added_constraints(file: &SourceFile) -> Vec<AddedConstraint<'_>> {
    let mut out = Vec::new();
    for s in &file.statements {
        let NodeEnum::AlterTableStmt(a) = &s.node else {
            continue;
        };
        let table = a.relation.as_ref().map_or("", |r| r.relname.as_str());
        if !super::existing(file, table) {
            continue;
        }
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
                continue;
            };
            match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::Constraint(c))
                    if cmd.subtype == AlterTableType::AtAddConstraint as i32 =>
                {
                    out.push(AddedConstraint {
                        table,
                        constraint: c,
                        column: None,
                        at: s.start,
                        end: s.end,
                    })
                }
                Some(NodeEnum::ColumnDef(col))
                    if cmd.subtype == AlterTableType::AtAddColumn as i32 =>
                {
                    for c in &col.constraints {
                        if let Some(NodeEnum::Constraint(c)) = &c.node {
                            out.push(AddedConstraint {
                                table,
                                constraint: c,
                                column: Some(&col.colname),
                                at: s.start,
                                end: s.end,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

impl AddedConstraint<'_> {
    pub fn is(&self, kind: ConstrType) -> bool {
        self.constraint.contype == kind as i32
    }

    /// How to name it in a message: `orders_customer_fk` or `UNIQUE (email)`.
    pub fn describe(&self, kind: &str) -> String {
        match (self.constraint.conname.as_str(), self.column) {
            ("", Some(column)) => format!("{kind} on new column `{}.{column}`", self.table),
            ("", None) => format!("{kind} on `{}`", self.table),
            (name, _) => format!("{kind} `{name}` on `{}`", self.table),
        }
    }
}
