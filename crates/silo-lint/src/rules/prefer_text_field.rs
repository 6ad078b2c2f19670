//! `prefer-text-field` (squawk's name): Changing the length of a `varchar(n)` column later takes an exclusive lock (and may rewrite the table); `text` with a `CHECK` constraint never does.

use super::type_rules::type_rule;

type_rule!(
    PreferTextField,
    ["varchar"],
    "changing a varchar's length later rewrites or locks the table",
    "text (with a CHECK on length if it matters)"
);

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "prefer-text-field";

    #[test]
    fn varchar_with_a_length_fires() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint);\nALTER TABLE orders ADD COLUMN note varchar(200);",
        );
        assert_eq!(
            p.found(RULE),
            [(
                2,
                36,
                "column `orders.note` is `varchar`: changing a varchar's length later rewrites or locks the table".into()
            )]
        );
    }

    /// `varchar` without a length is `text` under another name.
    #[test]
    fn text_and_varchar_without_a_length_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, a text, b varchar, c character varying);",
        );
        assert_eq!(p.found(RULE), []);
    }
}
