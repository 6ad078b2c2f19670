//! `prefer-bigint-over-int` (squawk's name): 32-bit integer columns (ids above all) run out, and widening a column later rewrites the whole table under an exclusive lock.

use super::type_rules::type_rule;

type_rule!(
    PreferBigintOverInt,
    ["int4", "serial", "serial4"],
    "32-bit ids and counters run out, and widening them later rewrites the table",
    "bigint (bigserial or bigint GENERATED ... AS IDENTITY for ids)"
);

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "prefer-bigint-over-int";

    #[test]
    fn int_and_serial_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id serial, n integer);",
        );
        let why = "32-bit ids and counters run out, and widening them later rewrites the table";
        assert_eq!(
            p.found(RULE),
            [
                (1, 25, format!("column `orders.id` is `serial`: {why}")),
                (1, 35, format!("column `orders.n` is `int4`: {why}")),
            ]
        );
    }

    #[test]
    fn bigint_and_smallint_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigserial, n bigint, s smallint, int_name text);",
        );
        assert_eq!(p.found(RULE), []);
    }
}
