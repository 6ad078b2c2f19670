#!/usr/bin/env python3
"""Agreement of `silo lint --format json` with `squawk --reporter json` on
the rules both have.

A squawk finding and a silo finding agree when they name the same rule (after
mapping squawk's names), the same file, and silo's line falls inside the span
squawk reports (squawk counts lines from 0 and reports the statement or token
span; silo reports the statement's first token or the offending token).

`require-lock-timeout` and `require-statement-timeout` are one silo rule,
`require-timeout-settings`, reported once per file (the fix is one pair of
SET lines at the top of the file) where squawk reports every statement: that
rule is compared per file.

Every disagreement is classified with PostgreSQL's own parser (pglast, the
Python binding of libpg_query; `pip install pglast`):
- `new-table`: squawk fires on a table, index or materialized view that an
  earlier statement of the same file created. silo leaves those alone by
  design: nobody else can hold a lock on a relation that does not exist yet
  (the lint issue requires it).
- `not-valid-inapplicable`: squawk asks for NOT VALID on a UNIQUE or
  PRIMARY KEY constraint, which PostgreSQL rejects (NOT VALID exists only
  for FOREIGN KEY and CHECK); silo reports those statements under
  `disallow-unique-constraint` and `adding-serial-primary-key-field`.
- `no-strong-lock` (require-timeout-settings): squawk asks for timeouts
  before a statement that takes no strong lock on a relation that existed
  before the file (CREATE FUNCTION, a new view, ALTER TYPE ... ADD VALUE, a
  new table without foreign keys); silo asks only where a lock can queue.
- `other`: anything else, listed for review.
The agreement is printed twice: over all findings, and over the findings
that are not by-design differences.

usage: lint_agreement.py SILO_JSON SQUAWK_JSON [DISAGREEMENTS_OUT]
"""
import collections
import json
import os
import sys

try:
    import pglast
except ImportError:  # classification is skipped, the raw figure stays
    pglast = None

# squawk name -> silo name, where they differ
RENAMED = {
    "prefer-timestamp-tz": "prefer-timestamptz",
    "disallowed-unique-constraint": "disallow-unique-constraint",
    "require-lock-timeout": "require-timeout-settings",
    "require-statement-timeout": "require-timeout-settings",
}
PER_FILE = {"require-timeout-settings"}


class Statements:
    """A file's statements: their first and last lines, and what each one
    creates and alters, from the parse tree."""

    def __init__(self, path):
        self.items = []  # (first, last line, created, target, constraint kinds, no strong lock)
        if pglast is None or not os.path.exists(path):
            return
        text = open(path, encoding="utf-8").read()
        data = text.encode("utf-8")
        try:
            stmts = pglast.parse_sql(text)
        except Exception:
            return
        for raw in stmts:
            start = raw.stmt_location or 0
            length = raw.stmt_len or (len(data) - start)
            chunk = data[start:start + length]
            # Skip the leading blank lines and comments libpg_query folds
            # into a statement's span.
            lead = len(chunk) - len(chunk.lstrip())
            first = data[: start + lead].count(b"\n") + 1
            last = data[: start + length].count(b"\n") + 1
            self.items.append(
                (first, last, created(raw.stmt), target(raw.stmt), added_constraint_types(raw.stmt),
                 takes_no_strong_lock(raw.stmt))
            )

    def at(self, line):
        """The statement that spans `line`, with the names every earlier
        statement created."""
        made = set()
        for first, last, new, tgt, kinds, weak in self.items:
            if first <= line <= last:
                return tgt, made, kinds, weak
            made |= new
        return set(), made, set(), False


def relname(rangevar):
    return rangevar.relname if rangevar is not None else None


def created(node):
    kind = type(node).__name__
    if kind == "CreateStmt":
        return {relname(node.relation)}
    if kind == "CreateTableAsStmt":  # CREATE TABLE AS, CREATE MATERIALIZED VIEW
        return {relname(node.into.rel)}
    if kind == "IndexStmt" and node.idxname:
        return {node.idxname}
    if kind == "ViewStmt":
        return {relname(node.view)}
    return set()


def added_constraint_types(node):
    """The kinds of constraint an ALTER TABLE adds (UNIQUE, FOREIGN, ...)."""
    kinds = set()
    if type(node).__name__ != "AlterTableStmt":
        return kinds
    for cmd in node.cmds or ():
        d = getattr(cmd, "def_", None)
        if type(d).__name__ == "Constraint":
            kinds.add(d.contype.name.removeprefix("CONSTR_"))
        elif type(d).__name__ == "ColumnDef":
            for c in d.constraints or ():
                kinds.add(c.contype.name.removeprefix("CONSTR_"))
    return kinds


# Statements that take no strong lock on a relation that existed before the
# file: nothing for a lock_timeout to guard.
NO_STRONG_LOCK = {
    "CreateFunctionStmt", "AlterEnumStmt", "CreateSchemaStmt", "CreateExtensionStmt",
    "CreateSeqStmt", "CreateTableAsStmt", "CreateEnumStmt", "CommentStmt",
}


def takes_no_strong_lock(node):
    kind = type(node).__name__
    if kind in NO_STRONG_LOCK:
        return True
    if kind == "ViewStmt":
        return not node.replace
    if kind == "DropStmt":
        return node.removeType.name in ("OBJECT_FUNCTION", "OBJECT_SCHEMA", "OBJECT_TYPE")
    if kind == "CreateStmt":  # a new table with no foreign key locks nothing else
        return not target(node)
    return False


def target(node):
    """The relations a statement locks: its table, or for a new table the
    tables its foreign keys reference."""
    kind = type(node).__name__
    if kind in ("IndexStmt", "AlterTableStmt"):
        return {relname(node.relation)}
    if kind == "CreateStmt":
        elts = node.tableElts or ()
        cons = [c for e in elts if type(e).__name__ == "ColumnDef" for c in (e.constraints or ())]
        cons += [e for e in elts if type(e).__name__ == "Constraint"]
        return {relname(c.pktable) for c in cons if c.contype.name == "CONSTR_FOREIGN"}
    return set()


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

    # Per-file rules: one finding per file on each side.
    seen = set()
    deduped = []
    for rule, file, start, end, f in sq:
        key = (rule, file) if rule in PER_FILE else (rule, file, start)
        if rule in shared and key not in seen:
            seen.add(key)
            deduped.append((rule, file, start, end, f))

    by_key = collections.defaultdict(list)
    for f in silo:
        if f["rule"] in shared:
            by_key[(f["rule"], f["file"])].append(f)
    used = set()
    table = collections.defaultdict(lambda: [0, 0, 0])  # both, only squawk, only silo
    only_squawk, only_silo = [], []
    # First pass: silo's line inside squawk's span (anywhere in the file for
    # per-file rules). Second pass: squawk points at an ALTER TABLE
    # subcommand, silo at the statement's first line: the nearest unmatched
    # silo finding at or above it.
    unmatched = []
    for item in deduped:
        rule, file, start, end, f = item
        match = next(
            (s for s in by_key[(rule, file)]
             if id(s) not in used and (rule in PER_FILE or start <= s["line"] <= end)),
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
            only_squawk.append((rule, file, start, f["message"]))
        else:
            used.add(id(match))
            table[rule][0] += 1
    for (rule, file), findings in by_key.items():
        for s in findings:
            if id(s) not in used:
                table[rule][2] += 1
                only_silo.append((rule, file, s["line"], s["message"]))

    # Why they differ.
    root = os.path.dirname(os.path.abspath(sys.argv[1]))
    parsed = {}
    reasons = collections.Counter()
    by_design = collections.Counter()  # rule -> squawk-only findings by design

    def statements(file):
        if file not in parsed:
            path = file if os.path.isabs(file) else os.path.join(os.environ.get("LINT_ROOT", root), file)
            parsed[file] = Statements(path)
        return parsed[file]

    for rule, file, line, message in only_squawk:
        reason = "other"
        if pglast is not None:
            tgt, made, kinds, weak = statements(file).at(line)
            if tgt and tgt <= made:
                reason = "new-table"
            elif rule in PER_FILE and weak:
                reason = "no-strong-lock"
            elif rule == "constraint-missing-not-valid" and kinds and not kinds & {"FOREIGN", "CHECK"}:
                # PostgreSQL accepts NOT VALID only on FOREIGN KEY and CHECK
                # constraints; silo reports a UNIQUE or PRIMARY KEY under
                # disallow-unique-constraint / adding-serial-primary-key-field.
                reason = "not-valid-inapplicable"
            if reason != "other":
                by_design[rule] += 1
        reasons[("only-squawk", reason)] += 1
        if out:
            out.write(f"only-squawk [{reason}] {rule} {file}:{line} {message}\n")
    for rule, file, line, message in only_silo:
        reasons[("only-silo", "other")] += 1
        if out:
            out.write(f"only-silo [other] {rule} {file}:{line} {message}\n")

    print(f"{'rule':45} {'both':>6} {'squawk':>7} {'silo':>6} {'by design':>10}")
    total = [0, 0, 0]
    for rule in shared:
        b, q, s = table[rule]
        total = [total[0] + b, total[1] + q, total[2] + s]
        print(f"{rule:45} {b:6} {q:7} {s:6} {by_design[rule]:10}")
    b, q, s = total
    d = sum(by_design.values())
    print(f"{'all shared rules':45} {b:6} {q:7} {s:6} {d:10}")
    agreement = b / (b + q + s) if b + q + s else 1.0
    print(f"agreement: {agreement:.1%} over {len(shared)} shared rules")
    if pglast is None:
        print("(pip install pglast to classify the disagreements)")
        return
    comparable = b + q + s - d
    print(
        f"agreement where both apply: {b / comparable if comparable else 1.0:.2%} "
        f"({d} squawk findings silo does not make by design left out)"
    )
    for (side, reason), n in sorted(reasons.items()):
        print(f"  {side} [{reason}]: {n}")


if __name__ == "__main__":
    main()
