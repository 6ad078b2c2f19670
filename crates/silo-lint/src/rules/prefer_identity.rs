//! `prefer-identity` (squawk's name): `serial` types make a sequence that
//! the table does not own in the SQL standard's sense: grants, copies and
//! dumps treat it apart. Identity columns are the standard replacement.

use super::type_rules::type_rule;

type_rule!(
    PreferIdentity,
    [
        "serial",
        "serial2",
        "serial4",
        "serial8",
        "smallserial",
        "bigserial"
    ],
    "serial types create a loosely attached sequence",
    "bigint GENERATED ALWAYS AS IDENTITY"
);

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn serial_fires_identity_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigserial PRIMARY KEY, n serial);\n\
             CREATE TABLE carts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);",
        );
        assert_eq!(p.places("prefer-identity"), [(1, 25), (1, 50)]);
    }
}
