//! `prefer-text-field` (squawk's name): Changing the length of a `varchar(n)` column later takes an exclusive lock (and may rewrite the table); `text` with a `CHECK` constraint never does.

use super::type_rules::type_rule;

type_rule!(
    PreferTextField,
    "prefer-text-field",
    ["varchar"],
    "changing a varchar's length later rewrites or locks the table",
    "text (with a CHECK on length if it matters)"
);
