//! `undocumented-breaking-change`: dropping or renaming a table or column,
//! changing a column's type, or making a column NOT NULL breaks the code
//! of the release still running. Such a file must say why with a
//! `-- silo:breaking <reason>` comment, so that reviewers and the change
//! log see it.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct UndocumentedBreakingChange;

/// What makes a statement breaking, if anything.
fn breaking(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectTable as i32 => {
            Some("drops a table".into())
        }
        NodeEnum::RenameStmt(r) if r.rename_type == ObjectType::ObjectTable as i32 => {
            Some(format!("renames table to `{}`", r.newname))
        }
        NodeEnum::RenameStmt(r) if r.rename_type == ObjectType::ObjectColumn as i32 => {
            Some(format!("renames column `{}` to `{}`", r.subname, r.newname))
        }
        NodeEnum::AlterTableStmt(a) => a.cmds.iter().find_map(|c| {
            let Some(NodeEnum::AlterTableCmd(c)) = &c.node else {
                return None;
            };
            let kind = c.subtype;
            if kind == AlterTableType::AtDropColumn as i32 {
                Some(format!("drops column `{}`", c.name))
            } else if kind == AlterTableType::AtAlterColumnType as i32 {
                Some(format!("changes the type of column `{}`", c.name))
            } else if kind == AlterTableType::AtSetNotNull as i32 {
                Some(format!("makes column `{}` NOT NULL", c.name))
            } else {
                None
            }
        }),
        _ => None,
    }
}

impl Rule for UndocumentedBreakingChange {
    meta!(UndocumentedBreakingChange, Review, Error);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        if super::is_undo(file) {
            return;
        }
        if file.directive("breaking").is_some() {
            return;
        }
        for s in &file.statements {
            if let Some(what) = breaking(&s.node) {
                out.push(Hit {
                    span: s.start..s.end,
                    message: format!("this statement {what}, a breaking change, and the file does not say why"),
                    help: "document it: add `-- silo:breaking <reason and how clients migrate>` to the file".into(),
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const CHANGES: &str = "ALTER TABLE orders DROP COLUMN note;\n\
        ALTER TABLE orders RENAME COLUMN total TO amount;\n\
        ALTER TABLE orders ALTER COLUMN amount TYPE numeric;\n\
        ALTER TABLE orders ALTER COLUMN placed_at SET NOT NULL;\n\
        ALTER TABLE orders RENAME TO purchases;\n\
        DROP TABLE carts;\n";

    #[test]
    fn undocumented_changes_fire() {
        let p = Project::postgres();
        p.write("orders", "V2__change.sql", CHANGES);
        let lines: Vec<_> = p
            .places("undocumented-breaking-change")
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_documented_change_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__change.sql",
            &format!("-- silo:breaking v2 API dropped notes; clients read `amount`\n{CHANGES}"),
        );
        assert_eq!(p.places("undocumented-breaking-change"), []);
        // A directive without a reason does not count.
        p.write(
            "orders",
            "V2__change.sql",
            &format!("-- silo:breaking\n{CHANGES}"),
        );
        assert_eq!(p.places("undocumented-breaking-change").len(), 6);
    }
}
