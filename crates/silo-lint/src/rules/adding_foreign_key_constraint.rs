//! `adding-foreign-key-constraint` (squawk's name): adding a foreign key to
//! an existing table scans it while holding SHARE ROW EXCLUSIVE on both
//! tables, blocking their writes. `NOT VALID` skips the scan; a later
//! `VALIDATE CONSTRAINT` checks rows under a weaker lock.

use pg_query::protobuf::ConstrType;

use super::ddl::added_constraints;
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct AddingForeignKeyConstraint;

impl Rule for AddingForeignKeyConstraint {
    meta!(AddingForeignKeyConstraint, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for c in added_constraints(file) {
            if c.is(ConstrType::ConstrForeign) && !c.constraint.skip_validation {
                out.push(Hit {
                    span: c.at..c.end,
                    message: format!(
                        "adding {} blocks writes to both tables while every row is checked",
                        c.describe("foreign key")
                    ),
                    help: "add it with NOT VALID, then VALIDATE CONSTRAINT in a later migration"
                        .into(),
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
    fn a_validated_foreign_key_on_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__fk.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);\n\
             ALTER TABLE orders ADD COLUMN cart_id bigint REFERENCES carts (id);",
        );
        assert_eq!(p.places("adding-foreign-key-constraint"), [(1, 1), (2, 1)]);
    }

    #[test]
    fn not_valid_or_a_new_table_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__fk.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;\n\
             CREATE TABLE carts (id bigint PRIMARY KEY, order_id bigint);\n\
             ALTER TABLE carts ADD CONSTRAINT carts_order_fk FOREIGN KEY (order_id) REFERENCES orders (id);",
        );
        assert_eq!(p.places("adding-foreign-key-constraint"), []);
    }
}
