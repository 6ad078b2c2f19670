//! `require-timeout-settings` (squawk's name): a statement that takes a
//! strong lock on an existing table waits behind any long transaction on
//! it, and every query on that table queues behind the waiting lock. With
//! `lock_timeout` the migration gives up instead of stalling the service;
//! `statement_timeout` bounds the work done under the lock.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, VariableSetKind};

use super::{Context, Hit, Rule, existing, meta};
use crate::source::{SourceFile, Statement};

pub struct RequireTimeoutSettings;

/// The existing table (or index, or view) a statement locks strongly, if
/// any. `VALIDATE CONSTRAINT` alone takes SHARE UPDATE EXCLUSIVE, which
/// blocks neither reads nor writes, so it does not count. A new table that
/// references an existing one takes SHARE ROW EXCLUSIVE on the referenced
/// table; `DROP TRIGGER` takes ACCESS EXCLUSIVE on its table, `DROP VIEW`
/// and `CREATE OR REPLACE VIEW` on the view.
fn locked_table(file: &SourceFile, statement: &Statement) -> Option<String> {
    let table = match &statement.node {
        NodeEnum::CreateStmt(c) => {
            let own = c.relation.as_ref().map(|r| r.relname.as_str());
            return file
                .facts
                .foreign_keys
                .iter()
                .filter(|fk| (statement.start..statement.end).contains(&fk.at))
                .map(|fk| &fk.target)
                .find(|t| Some(t.as_str()) != own && existing(file, t))
                .cloned();
        }
        NodeEnum::ViewStmt(v) if v.replace => v.view.as_ref()?.relname.clone(),
        NodeEnum::AlterTableStmt(a) if a.objtype == ObjectType::ObjectTable as i32 => {
            let only_validate = a.cmds.iter().all(|c| {
                matches!(&c.node, Some(NodeEnum::AlterTableCmd(c))
                    if c.subtype == AlterTableType::AtValidateConstraint as i32)
            });
            if only_validate {
                return None;
            }
            a.relation.as_ref()?.relname.clone()
        }
        NodeEnum::IndexStmt(i) if !i.concurrent => i.relation.as_ref()?.relname.clone(),
        NodeEnum::RenameStmt(r) => r.relation.as_ref()?.relname.clone(),
        NodeEnum::CreateTrigStmt(t) => t.relation.as_ref()?.relname.clone(),
        NodeEnum::TruncateStmt(t) => match t.relations.first()?.node.as_ref()? {
            NodeEnum::RangeVar(r) => r.relname.clone(),
            _ => return None,
        },
        // An undo file dropping what its V file made is left alone, as by
        // the drop rules.
        NodeEnum::DropStmt(d) if !super::is_undo(file) && !d.concurrent => {
            let name = d.objects.first()?;
            let Some(NodeEnum::List(parts)) = &name.node else {
                return None;
            };
            // `DROP TRIGGER t ON tbl` names [tbl, t]; the others end with
            // the object's own name.
            let part = if d.remove_type == ObjectType::ObjectTrigger as i32 {
                parts
                    .items
                    .len()
                    .checked_sub(2)
                    .and_then(|i| parts.items.get(i))?
            } else if [
                ObjectType::ObjectTable,
                ObjectType::ObjectIndex,
                ObjectType::ObjectView,
                ObjectType::ObjectMatview,
            ]
            .iter()
            .any(|t| d.remove_type == *t as i32)
            {
                parts.items.last()?
            } else {
                return None;
            };
            match part.node.as_ref()? {
                NodeEnum::String(s) => s.sval.clone(),
                _ => return None,
            }
        }
        _ => return None,
    };
    existing(file, &table).then_some(table)
}

impl Rule for RequireTimeoutSettings {
    meta!(RequireTimeoutSettings, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let (mut lock, mut statement) = (false, false);
        for s in &file.statements {
            if let NodeEnum::VariableSetStmt(v) = &s.node
                && v.kind == VariableSetKind::VarSetValue as i32
            {
                match v.name.as_str() {
                    "lock_timeout" => lock = true,
                    "statement_timeout" => statement = true,
                    _ => {}
                }
                continue;
            }
            let Some(table) = locked_table(file, s) else {
                continue;
            };
            let missing: Vec<&str> = [(lock, "lock_timeout"), (statement, "statement_timeout")]
                .into_iter()
                .filter(|(set, _)| !set)
                .map(|(_, name)| name)
                .collect();
            if missing.is_empty() {
                continue;
            }
            out.push(Hit {
                span: s.start..s.end,
                message: format!(
                    "this statement locks `{table}` with no {} set: it can stall every query on the table while it waits",
                    missing.join(" or ")
                ),
                help: "start the file with `SET lock_timeout = '2s';` and `SET statement_timeout = '5min';` (or set them on the service's role)".into(),
                other_service: None,
            });
            // Once per file, at the first statement that needs them: the
            // fix is one pair of lines at the top.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn locking_statements_without_timeouts_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "ALTER TABLE orders ADD COLUMN note text;\nSET lock_timeout = '2s';\nCREATE INDEX idx_orders_note ON orders (note);",
        );
        let hits = p.hits("require-timeout-settings");
        assert_eq!(hits.len(), 1, "once per file");
        assert!(
            hits[0]
                .message
                .contains("no lock_timeout or statement_timeout")
        );
        p.write(
            "orders",
            "V2__t.sql",
            "SET lock_timeout = '2s';\nCREATE INDEX idx_orders_note ON orders (note);",
        );
        let hits = p.hits("require-timeout-settings");
        assert!(
            hits[0].message.contains("no statement_timeout set"),
            "{}",
            hits[0].message
        );
    }

    #[test]
    fn drops_and_truncates_count_validate_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "DROP TABLE carts;\nTRUNCATE orders;\nALTER TABLE orders VALIDATE CONSTRAINT fk_c;",
        );
        assert_eq!(p.places("require-timeout-settings"), [(1, 1)]);
        p.write("orders", "V2__t.sql", "TRUNCATE orders;");
        assert_eq!(p.places("require-timeout-settings"), [(1, 1)]);
    }

    #[test]
    fn timeouts_first_or_new_tables_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SET lock_timeout = '2s';\nSET statement_timeout = '5min';\nALTER TABLE orders ADD COLUMN note text;",
        )
        .write(
            "orders",
            "V3__t.sql",
            "CREATE TABLE carts (id bigint);\nALTER TABLE carts ADD COLUMN note text;\nCREATE INDEX CONCURRENTLY idx_orders_x ON orders (x);",
        );
        assert_eq!(p.places("require-timeout-settings"), []);
    }

    #[test]
    fn references_triggers_and_views_lock_what_exists() {
        let p = Project::postgres();
        // A new table's foreign key locks the existing table it references.
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE TABLE carts (id bigint PRIMARY KEY);\nCREATE TABLE cart_items (\n  cart_id bigint REFERENCES carts,\n  order_id bigint REFERENCES orders (id)\n);",
        );
        assert_eq!(p.places("require-timeout-settings"), [(2, 1)]);
        let hits = p.hits("require-timeout-settings");
        assert!(hits[0].message.contains("`orders`"), "{}", hits[0].message);
        // Only tables of the same file referenced: nothing to wait for.
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE TABLE carts (id bigint PRIMARY KEY);\nCREATE TABLE cart_items (cart_id bigint, FOREIGN KEY (cart_id) REFERENCES carts);",
        );
        assert_eq!(p.places("require-timeout-settings"), []);
        p.write(
            "orders",
            "V2__t.sql",
            "DROP FUNCTION f();\nCREATE VIEW v AS SELECT 1;\nDROP TRIGGER t ON orders;",
        );
        assert_eq!(p.places("require-timeout-settings"), [(3, 1)]);
        p.write(
            "orders",
            "V2__t.sql",
            "CREATE OR REPLACE VIEW v AS SELECT 1;",
        );
        assert_eq!(p.places("require-timeout-settings"), [(1, 1)]);
        p.write("orders", "V2__t.sql", "DROP MATERIALIZED VIEW mv;");
        assert_eq!(p.places("require-timeout-settings"), [(1, 1)]);
    }
}
