#!/usr/bin/env bash
# `silo lint` against squawk (the PostgreSQL migration linter) on the same
# files, side by side, whole process: the up.sql files of the lemmy corpus
# (diesel layout), imported into a one-service silo project as V files.
# Prints the median wall time of ROUNDS runs of each, their ratio, and the
# agreement on the rules both have (bench/lint_agreement.py); the findings
# the two disagree on go to $OUT/disagreements.txt.
#
#   bench/lint-vs-squawk.sh [ROUNDS]
#   needs: target/release/silo (cargo build --release -p silo-cli), squawk
#   (pip install squawk-cli; measured with 2.70.0), python3, and pglast
#   (pip install pglast) to classify the disagreements with PostgreSQL's
#   parser
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

REPO=$PWD
ROUNDS=${1:-5}
SILO=${SILO_BIN:-$PWD/target/release/silo}
CORPUS=${SILO_CORPORA:-$PWD/../shared/corpora}/lemmy-migrations
OUT=${OUT:-$PWD/target/bench-lint}
command -v squawk >/dev/null || { echo "squawk not found: pip install squawk-cli" >&2; exit 2; }
[ -x "$SILO" ] || { echo "build silo first: cargo build --release -p silo-cli" >&2; exit 2; }
[ -d "$CORPUS" ] || { echo "corpus not found at $CORPUS (set SILO_CORPORA)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"
cd "$work"
printf '[project]\nname = "lemmy"\n[defaults]\nengine = "postgres"\n[services.lemmy]\n' > silo.toml
"$SILO" migrations import --from diesel --service lemmy "$CORPUS" >/dev/null
rm -f services/lemmy/migrations/U*.sql   # the same files for both: the up.sql files
files=(services/lemmy/migrations/V*.sql)
echo "files: ${#files[@]}, lines: $(cat "${files[@]}" | wc -l)  ($(squawk --version))"

time_of() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || true; awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.3f\n", b - a}'; }

silo_times=() squawk_times=()
for _ in $(seq "$ROUNDS"); do
  silo_times+=("$(time_of "$SILO" lint --format json)")
  squawk_times+=("$(time_of squawk --reporter json "${files[@]}")")
done
s=$(printf '%s\n' "${silo_times[@]}" | median)
q=$(printf '%s\n' "${squawk_times[@]}" | median)
silo_rules=$("$SILO" lint --explain | wc -l)
echo "silo lint ($silo_rules rules): ${s} s   squawk: ${q} s   ratio silo/squawk: $(awk -v a="$s" -v b="$q" 'BEGIN {printf "%.2f", a / b}')  (median of $ROUNDS)"

"$SILO" lint --format json > "$OUT/silo.json" || true
squawk --reporter json "${files[@]}" > "$OUT/squawk.json" 2>/dev/null || true
LINT_ROOT=$work python3 "$REPO/bench/lint_agreement.py" "$OUT/silo.json" "$OUT/squawk.json" "$OUT/disagreements.txt"
echo "disagreements: $OUT/disagreements.txt"
