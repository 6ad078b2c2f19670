//! `adding-field-with-default` (squawk's name): since PostgreSQL 11, a new
//! column with a constant or stable default is instant; a volatile default
//! (`random()`, `gen_random_uuid()`, `clock_timestamp()`, ...) or a stored
//! generated column rewrites the whole table under ACCESS EXCLUSIVE.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, Node};

use super::ddl::alter_cmds;
use super::{Context, Hit, Rule, existing, meta};
use crate::source::SourceFile;

pub struct AddingFieldWithDefault;

/// Functions whose value is fixed for the statement (immutable or stable),
/// so PostgreSQL stores one default instead of rewriting the table.
const NON_VOLATILE: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "lower",
    "upper",
    "length",
    "abs",
    "coalesce",
    "make_interval",
    "to_timestamp",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "array_fill",
];

/// Whether a default expression can be evaluated once for all rows.
fn non_volatile(node: &Node) -> bool {
    match &node.node {
        Some(NodeEnum::AConst(_) | NodeEnum::SqlvalueFunction(_)) => true,
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().is_none_or(non_volatile),
        Some(NodeEnum::AExpr(e)) => {
            e.lexpr.as_deref().is_none_or(non_volatile)
                && e.rexpr.as_deref().is_none_or(non_volatile)
        }
        Some(NodeEnum::AArrayExpr(a)) => a.elements.iter().all(non_volatile),
        Some(NodeEnum::List(l)) => l.items.iter().all(non_volatile),
        Some(NodeEnum::BoolExpr(b)) => b.args.iter().all(non_volatile),
        Some(NodeEnum::FuncCall(f)) => {
            let name = f.funcname.iter().rev().find_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.to_lowercase()),
                _ => None,
            });
            name.is_some_and(|n| NON_VOLATILE.contains(&n.as_str()))
                && f.args.iter().all(non_volatile)
        }
        _ => false,
    }
}

impl Rule for AddingFieldWithDefault {
    meta!(AddingFieldWithDefault, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for a in alter_cmds(file) {
            if !a.is(AlterTableType::AtAddColumn) || !existing(file, a.table) {
                continue;
            }
            let Some(col) = a.column() else { continue };
            let rewrite = col.constraints.iter().find_map(|c| match &c.node {
                Some(NodeEnum::Constraint(c))
                    if c.contype == ConstrType::ConstrGenerated as i32 =>
                {
                    Some("a stored generated column")
                }
                Some(NodeEnum::Constraint(c)) if c.contype == ConstrType::ConstrDefault as i32 => c
                    .raw_expr
                    .as_deref()
                    .filter(|e| !non_volatile(e))
                    .map(|_| "a volatile default"),
                _ => None,
            });
            if let Some(what) = rewrite {
                out.push(Hit {
                    span: a.at..a.at,
                    message: format!(
                        "adding column `{}.{}` with {what} rewrites the table while it is locked",
                        a.table, col.colname
                    ),
                    help: "add the column without the default, set the default with ALTER COLUMN SET DEFAULT, then backfill in batches".into(),
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn volatile_defaults_and_stored_columns_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__d.sql",
            "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();\n\
             ALTER TABLE orders ADD COLUMN seen timestamptz DEFAULT clock_timestamp();\n\
             ALTER TABLE orders ADD COLUMN total2 bigint GENERATED ALWAYS AS (total * 2) STORED;",
        );
        assert_eq!(
            p.places("adding-field-with-default"),
            [(1, 1), (2, 1), (3, 1)]
        );
    }

    #[test]
    fn constant_and_stable_defaults_or_new_tables_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__d.sql",
            "ALTER TABLE orders ADD COLUMN state text NOT NULL DEFAULT 'new';\n\
             ALTER TABLE orders ADD COLUMN at timestamptz DEFAULT now();\n\
             ALTER TABLE orders ADD COLUMN on_day date DEFAULT CURRENT_DATE;\n\
             ALTER TABLE orders ADD COLUMN tags text[] DEFAULT '{}'::text[];\n\
             ALTER TABLE orders ADD COLUMN n int DEFAULT -1;\n\
             CREATE TABLE carts (id bigint);\n\
             ALTER TABLE carts ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        );
        assert_eq!(p.places("adding-field-with-default"), []);
    }
}
