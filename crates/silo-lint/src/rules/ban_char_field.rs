//! `ban-char-field` (squawk's name): `char(n)` pads values with spaces and is no faster than `text`.

use super::type_rules::type_rule;

type_rule!(
    BanCharField,
    ["bpchar", "char"],
    "char(n) pads with spaces and is never faster than text",
    "text"
);

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "ban-char-field";

    #[test]
    fn char_columns_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, code char(3));\nALTER TABLE orders ADD COLUMN flag character;",
        );
        assert_eq!(
            p.found(RULE),
            [
                (
                    1,
                    38,
                    "column `orders.code` is `bpchar`: char(n) pads with spaces and is never faster than text".into()
                ),
                (
                    2,
                    36,
                    "column `orders.flag` is `bpchar`: char(n) pads with spaces and is never faster than text".into()
                ),
            ]
        );
    }

    #[test]
    fn text_and_varchar_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint, code text, name varchar(3), chars text);",
        );
        assert_eq!(p.found(RULE), []);
    }
}
