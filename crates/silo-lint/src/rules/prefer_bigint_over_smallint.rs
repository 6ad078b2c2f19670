//! `prefer-bigint-over-smallint` (squawk's name): 16-bit columns run out at
//! 32,767, and widening one later rewrites the table under an exclusive
//! lock.

use super::type_rules::type_rule;

type_rule!(
    PreferBigintOverSmallint,
    ["int2", "smallserial", "serial2"],
    "16-bit values run out at 32,767, and widening them later rewrites the table",
    "bigint"
);

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn smallint_fires_bigint_and_int_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, a smallint, b int, c int2);",
        );
        assert_eq!(p.places("prefer-bigint-over-smallint"), [(1, 35), (1, 54)]);
    }
}
