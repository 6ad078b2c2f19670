//! `ban-char-field` (squawk's name): `char(n)` pads values with spaces and is no faster than `text`.

use super::type_rules::type_rule;

type_rule!(
    BanCharField,
    "ban-char-field",
    ["bpchar", "char"],
    "char(n) pads with spaces and is never faster than text",
    "text"
);
