//! `prefer-bigint-over-int` (squawk's name): 32-bit integer columns (ids above all) run out, and widening a column later rewrites the whole table under an exclusive lock.

use super::type_rules::type_rule;

type_rule!(
    PreferBigintOverInt,
    "prefer-bigint-over-int",
    ["int4", "serial", "serial4"],
    "32-bit ids and counters run out, and widening them later rewrites the table",
    "bigint (bigserial or bigint GENERATED ... AS IDENTITY for ids)"
);
