//! `constraint-missing-not-valid` (squawk's name): `ADD CONSTRAINT` with a
//! CHECK or FOREIGN KEY on an existing table checks every row under an
//! ACCESS EXCLUSIVE (CHECK) or SHARE ROW EXCLUSIVE (FOREIGN KEY) lock.
//! Also: `VALIDATE CONSTRAINT` in the same file as its `NOT VALID` add
//! gains nothing, since one transaction holds the strong lock throughout.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

use super::ddl::{added_constraints, alter_cmds};
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct ConstraintMissingNotValid;

impl Rule for ConstraintMissingNotValid {
    meta!(ConstraintMissingNotValid, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let added = added_constraints(file);
        for c in &added {
            let checked = c.is(ConstrType::ConstrCheck) || c.is(ConstrType::ConstrForeign);
            if checked && c.column.is_none() && !c.constraint.skip_validation {
                out.push(Hit {
                    span: c.at..c.end,
                    message: format!(
                        "adding {} checks every row while holding a lock that blocks writes",
                        c.describe("constraint")
                    ),
                    help: "add it with NOT VALID, then VALIDATE CONSTRAINT in a later migration"
                        .into(),
                    other_service: None,
                });
            }
        }
        for a in alter_cmds(file) {
            if !a.is(AlterTableType::AtValidateConstraint) {
                continue;
            }
            let added_here = file.statements.iter().any(|s| match &s.node {
                NodeEnum::AlterTableStmt(t) => t.cmds.iter().any(|c| match &c.node {
                    Some(NodeEnum::AlterTableCmd(c)) => matches!(
                        c.def.as_ref().and_then(|d| d.node.as_ref()),
                        Some(NodeEnum::Constraint(k)) if k.conname == a.cmd.name && k.skip_validation
                    ),
                    _ => false,
                }),
                _ => false,
            });
            if added_here {
                out.push(Hit {
                    span: a.at..a.at,
                    message: format!(
                        "`{}` is validated in the file that adds it NOT VALID: one transaction holds the strong lock throughout",
                        a.cmd.name
                    ),
                    help: "move VALIDATE CONSTRAINT to a later migration".into(),
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
    fn a_checked_constraint_and_a_same_file_validate_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__c.sql",
            "ALTER TABLE orders ADD CONSTRAINT positive_total CHECK (total > 0);\n\
             ALTER TABLE orders ADD CONSTRAINT fk_c FOREIGN KEY (c_id) REFERENCES cs (id) NOT VALID;\n\
             ALTER TABLE orders VALIDATE CONSTRAINT fk_c;",
        );
        assert_eq!(p.places("constraint-missing-not-valid"), [(1, 1), (3, 1)]);
    }

    #[test]
    fn not_valid_alone_or_a_new_table_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__c.sql",
            "ALTER TABLE orders ADD CONSTRAINT positive_total CHECK (total > 0) NOT VALID;\n\
             CREATE TABLE carts (id bigint, n int);\n\
             ALTER TABLE carts ADD CONSTRAINT positive_n CHECK (n > 0);",
        )
        .write(
            "orders",
            "V3__v.sql",
            "ALTER TABLE orders VALIDATE CONSTRAINT positive_total;",
        );
        assert_eq!(p.places("constraint-missing-not-valid"), []);
    }
}
