//! `adding-serial-primary-key-field` (squawk's name): adding a primary key
//! to an existing table builds its index under ACCESS EXCLUSIVE.

use pg_query::protobuf::ConstrType;

use super::ddl::added_constraints;
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct AddingSerialPrimaryKeyField;

impl Rule for AddingSerialPrimaryKeyField {
    meta!(AddingSerialPrimaryKeyField, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for c in added_constraints(file) {
            if c.is(ConstrType::ConstrPrimary) && c.constraint.indexname.is_empty() {
                out.push(Hit {
                    span: c.at..c.end,
                    message: format!(
                        "adding {} builds its index while the table is locked for reads and writes",
                        c.describe("primary key")
                    ),
                    help: "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX".into(),
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
    fn a_primary_key_on_an_existing_table_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__pk.sql",
            "ALTER TABLE orders ADD PRIMARY KEY (id);\nALTER TABLE carts ADD COLUMN id bigserial PRIMARY KEY;",
        );
        assert_eq!(
            p.places("adding-serial-primary-key-field"),
            [(1, 1), (2, 1)]
        );
    }

    #[test]
    fn using_index_or_a_new_table_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__pk.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX uq_orders_id;\n\
             CREATE TABLE carts (n int);\nALTER TABLE carts ADD PRIMARY KEY (n);",
        );
        assert_eq!(p.places("adding-serial-primary-key-field"), []);
    }
}
