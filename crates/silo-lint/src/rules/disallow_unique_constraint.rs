//! `disallow-unique-constraint` (squawk's name): `ADD CONSTRAINT ... UNIQUE`
//! (or a new `UNIQUE` column) on an existing table builds its index under
//! ACCESS EXCLUSIVE, blocking reads and writes for the whole build.

use pg_query::protobuf::ConstrType;

use super::ddl::added_constraints;
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct DisallowUniqueConstraint;

impl Rule for DisallowUniqueConstraint {
    meta!(DisallowUniqueConstraint, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for c in added_constraints(file) {
            if c.is(ConstrType::ConstrUnique) && c.constraint.indexname.is_empty() {
                out.push(Hit {
                    span: c.at..c.end,
                    message: format!(
                        "adding {} builds its index while the table is locked for reads and writes",
                        c.describe("unique constraint")
                    ),
                    help: "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE USING INDEX".into(),
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
    fn a_unique_constraint_on_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__u.sql",
            "ALTER TABLE orders ADD CONSTRAINT uq_orders_ref UNIQUE (ref);\n\
             ALTER TABLE orders ADD COLUMN code text UNIQUE;",
        );
        assert_eq!(p.places("disallow-unique-constraint"), [(1, 1), (2, 1)]);
    }

    #[test]
    fn using_index_or_a_new_table_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__u.sql",
            "ALTER TABLE orders ADD CONSTRAINT uq_orders_ref UNIQUE USING INDEX uq_orders_ref;\n\
             CREATE TABLE carts (id bigint, ref text);\n\
             ALTER TABLE carts ADD CONSTRAINT uq_carts_ref UNIQUE (ref);",
        );
        assert_eq!(p.places("disallow-unique-constraint"), []);
    }
}
