#!/usr/bin/env python3
"""Agreement of `silo lint --format json` with `squawk --reporter json` on
the rules both have.

A squawk finding and a silo finding agree when they name the same rule (after
mapping squawk's names), the same file, and silo's line falls inside the span
squawk reports (squawk counts lines from 0 and reports the statement or token
span; silo reports the statement's first token or the offending token).
`require-lock-timeout` and `require-statement-timeout` are one silo rule,
`require-timeout-settings`, which reports once per statement for both.

usage: lint_agreement.py SILO_JSON SQUAWK_JSON [DISAGREEMENTS_OUT]
"""
import collections
import json
import sys

# squawk name -> silo name, where they differ
RENAMED = {
    "prefer-timestamp-tz": "prefer-timestamptz",
    "disallowed-unique-constraint": "disallow-unique-constraint",
    "require-lock-timeout": "require-timeout-settings",
    "require-statement-timeout": "require-timeout-settings",
}


def main():
    silo = json.load(open(sys.argv[1]))["findings"]
    squawk = json.load(open(sys.argv[2]))
    out = open(sys.argv[3], "w") if len(sys.argv) > 3 else None
    silo_rules = {f["rule"] for f in silo}
    sq = []
    for f in squawk:
        rule = RENAMED.get(f["rule_name"], f["rule_name"])
        sq.append((rule, f["file"], f["line"] + 1, f.get("line_end", f["line"]) + 1, f))
    squawk_rules = {r for r, *_ in sq}
    shared = sorted(silo_rules & squawk_rules)

    # One squawk timeout pair per statement counts once.
    seen = set()
    deduped = []
    for rule, file, start, end, f in sq:
        key = (rule, file, start)
        if rule in shared and key not in seen:
            seen.add(key)
            deduped.append((rule, file, start, end, f))

    by_key = collections.defaultdict(list)
    for f in silo:
        if f["rule"] in shared:
            by_key[(f["rule"], f["file"])].append(f)
    used = set()
    table = collections.defaultdict(lambda: [0, 0, 0])  # both, only squawk, only silo
    # First pass: silo's line inside squawk's span. Second pass: squawk
    # points at an ALTER TABLE subcommand, silo at the statement's first
    # line: the nearest unmatched silo finding at or above it.
    unmatched = []
    for item in deduped:
        rule, file, start, end, f = item
        match = next(
            (s for s in by_key[(rule, file)]
             if id(s) not in used and start <= s["line"] <= end),
            None,
        )
        if match is None:
            unmatched.append(item)
        else:
            used.add(id(match))
            table[rule][0] += 1
    for rule, file, start, end, f in unmatched:
        above = [s for s in by_key[(rule, file)] if id(s) not in used and s["line"] <= start]
        match = max(above, key=lambda s: s["line"], default=None)
        if match is None:
            table[rule][1] += 1
            if out:
                out.write(f"only-squawk {rule} {file}:{start} {f['message']}\n")
        else:
            used.add(id(match))
            table[rule][0] += 1
    for (rule, file), findings in by_key.items():
        for s in findings:
            if id(s) not in used:
                table[rule][2] += 1
                if out:
                    out.write(f"only-silo {rule} {file}:{s['line']} {s['message']}\n")

    print(f"{'rule':45} {'both':>6} {'squawk':>7} {'silo':>6}")
    total = [0, 0, 0]
    for rule in shared:
        b, q, s = table[rule]
        total = [total[0] + b, total[1] + q, total[2] + s]
        print(f"{rule:45} {b:6} {q:7} {s:6}")
    b, q, s = total
    agreement = b / (b + q + s) if b + q + s else 1.0
    print(f"{'all shared rules':45} {b:6} {q:7} {s:6}")
    print(f"agreement: {agreement:.1%} over {len(shared)} shared rules")


if __name__ == "__main__":
    main()
