//! `prefer-timestamptz` (squawk's name): `timestamp` (without time zone) silently depends on the session's time zone; `timestamptz` stores an instant.

use super::type_rules::type_rule;

type_rule!(
    PreferTimestamptz,
    ["timestamp"],
    "a timestamp without time zone is read in whatever zone the session has",
    "timestamptz"
);

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "prefer-timestamptz";

    #[test]
    fn timestamp_without_time_zone_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (\n  id bigint,\n  placed_at timestamp without time zone\n);",
        );
        assert_eq!(
            p.found(RULE),
            [(
                3,
                13,
                "column `orders.placed_at` is `timestamp`: a timestamp without time zone is read in whatever zone the session has".into()
            )]
        );
    }

    #[test]
    fn timestamptz_and_date_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, a timestamptz, b timestamp with time zone, c date);",
        );
        assert_eq!(p.found(RULE), []);
    }
}
