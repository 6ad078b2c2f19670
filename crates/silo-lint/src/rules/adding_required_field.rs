//! `adding-required-field` (squawk's name): adding a NOT NULL column without a default fails on a table that has rows, and breaks inserts from code that does not know it.

use pg_query::protobuf::{AlterTableType, ConstrType};

use super::ddl::{alter_cmds, has_constraint};
use super::{Context, Hit, Rule};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct AddingRequiredField;

impl Rule for AddingRequiredField {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::AddingRequiredField
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
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "adding-required-field";

    #[test]
    fn a_required_column_without_a_default_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "SELECT 1;\n  ALTER TABLE orders ADD COLUMN note text NOT NULL;",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                3,
                "adding required column `orders.note` without a default".into()
            )]
        );
    }

    /// A default, a nullable column, an identity, or a table made in the
    /// same file (it has no rows yet).
    #[test]
    fn a_default_a_nullable_column_or_a_new_table_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "ALTER TABLE orders ADD COLUMN a text NOT NULL DEFAULT '';\n\
             ALTER TABLE orders ADD COLUMN b text;\n\
             ALTER TABLE orders ADD COLUMN c bigint NOT NULL GENERATED ALWAYS AS IDENTITY;\n\
             CREATE TABLE carts (id bigint);\nALTER TABLE carts ADD COLUMN n text NOT NULL;",
        );
        assert_eq!(p.found(RULE), []);
    }
}
