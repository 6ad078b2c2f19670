#!/usr/bin/env bash
# Precision of `silo audit --code-only` on a large body of real code that
# knows nothing of silo: every crate in the local cargo registry, dealt
# round-robin into ten services named like real ones (users, orders,
# billing, ...). None of that code reaches into these services' stores, so
# every `code-cross-reference` it reports is a false positive; each is
# printed for review. `code-secret` hits are listed too: literal passwords
# in test fixtures and examples are true findings by the check's
# definition, but worth reading.
#
#   bench/audit-scan-precision.sh [SOURCE_DIR]    (default: ~/.cargo/registry/src/*)
#   SILO_BIN=target/release/silo
set -euo pipefail
cd "$(dirname "$0")/.."

SILO=${SILO_BIN:-$PWD/target/release/silo}
src=${1:-$(ls -d "$HOME"/.cargo/registry/src/*/ | head -1)}
services=(users orders billing auth search notifications payments accounts events sessions)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  echo '[project]'; echo 'name = "precision"'
  for s in "${services[@]}"; do
    echo "[services.$s]"
    echo "source = \"src/$s\""
  done
} > "$work/silo.toml"

i=0
for crate in "$src"/*/; do
  s=${services[$((i % ${#services[@]}))]}
  mkdir -p "$work/src/$s"
  # Hard links where possible: the same bytes, no copy.
  cp -al "$crate" "$work/src/$s/" 2>/dev/null || cp -a "$crate" "$work/src/$s/"
  i=$((i + 1))
done
files=$(find "$work/src" -type f | wc -l)
lines=$(find "$work/src" -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.md' -o -name '*.json' -o -name '*.yml' -o -name '*.yaml' \) -print0 | xargs -0 cat | wc -l)

t0=$(date +%s.%N)
out=$(cd "$work" && "$SILO" audit --code-only --format json || true)
t1=$(date +%s.%N)

echo "$i crates, $files files ($lines lines of .rs/.toml/.md/.json/.yml) in ${#services[@]} services"
printf 'scan wall time: %.2f s\n' "$(echo "$t1 - $t0" | bc -l)"
echo "$out" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
by = {}
for f in doc["findings"]:
    by.setdefault(f["check"], []).append(f)
for check in ("code-cross-reference", "shared-credentials", "code-secret"):
    hits = by.get(check, [])
    print(f"{check}: {len(hits)}")
    for f in hits:
        print("  %s:%s: %s" % (f.get("file"), f.get("line"), f["message"]))
'
