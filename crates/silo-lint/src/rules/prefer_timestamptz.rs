//! `prefer-timestamptz` (squawk's name): `timestamp` (without time zone) silently depends on the session's time zone; `timestamptz` stores an instant.

use super::type_rules::type_rule;

type_rule!(
    PreferTimestamptz,
    "prefer-timestamptz",
    ["timestamp"],
    "a timestamp without time zone is read in whatever zone the session has",
    "timestamptz"
);
