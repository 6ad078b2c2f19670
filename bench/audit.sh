#!/usr/bin/env bash
# `silo audit --live-only` on N provisioned services (default 100, so
# 10,000 role/store pairs) on the local PostgreSQL server: the default run
# (every pair in the catalog; real connections to each service's own store
# and one sibling) and --thorough (a real connection for every pair).
# Each runs ROUNDS times (default 3); the median wall time is reported.
#
#   bench/audit.sh [N] [ROUNDS]
#   SILO_BIN=target/release/silo SILO_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

N=${1:-100}
ROUNDS=${2:-3}
SILO=${SILO_BIN:-$PWD/target/release/silo}
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGHOST PGPORT PGUSER

work=$(mktemp -d)
prefix="benchaudit$$_"
cleanup() {
  drop_prefixed "$prefix"
  rm -rf "$work"
}
trap cleanup EXIT

services_manifest "$N" "$prefix" > "$work/silo.toml"
(cd "$work" && "$SILO" -j 16 up >/dev/null 2>&1)


measure() {
  local label=$1; shift
  local times=() out
  for _ in $(seq "$ROUNDS"); do
    local t0 t1
    t0=$(now)
    # Exit 1 is an audit with findings (a server that trusts local
    # connections gets hba-rules warnings); 2 is an audit that could not run.
    out=$(cd "$work" && "$SILO" audit --live-only --format json "$@") || [ $? -eq 1 ]
    t1=$(now)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  local probes open findings
  probes=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["probes"])')
  open=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["open"])')
  findings=$(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')
  printf '%-22s median %6.2f s  (%s probes, %s open cells, %s findings; rounds: %s)\n' \
    "$label" "$(printf '%s\n' "${times[@]}" | median)" "$probes" "$open" "$findings" "${times[*]}"
}

echo "silo audit on $N services ($((N * N)) pairs), $(nproc) cores"
measure "default"
measure "--thorough" --thorough
