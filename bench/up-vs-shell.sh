#!/usr/bin/env bash
# `silo up` for N services (default 100) on the local PostgreSQL server,
# side by side with a plain shell loop doing the same work per service:
# createuser + createdb + the same REVOKE/GRANT/ALTER statements via psql.
# Each side runs ROUNDS times (default 3) from a clean server; the median
# wall time of each is reported with the ratio.
#
#   bench/up-vs-shell.sh [N] [ROUNDS]
#   SILO_BIN=target/release/silo SILO_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

N=${1:-100}
ROUNDS=${2:-3}
SILO=${SILO_BIN:-$PWD/target/release/silo}
ADMIN=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export SILO_PG_ADMIN_URL=$ADMIN
JOBS=${SILO_JOBS:-16}
PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGHOST PGPORT PGUSER

work=$(mktemp -d)
trap 'cleanup; rm -rf "$work"' EXIT
prefix="bench$$_"

cleanup() {
  drop_prefixed "$prefix"
  rm -rf "$work/.silo"
}

services_manifest "$N" "$prefix" > "$work/silo.toml"

run_silo() {
  (cd "$work" && "$SILO" -j "$JOBS" up >/dev/null 2>&1)
}

run_shell() {
  for i in $(seq -w 0 $((N - 1))); do
    db="${prefix}s$i" role="${prefix}s${i}_svc"
    createuser --login --no-superuser --no-createdb --no-createrole "$role"
    createdb -O "$role" "$db"
    psql -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
COMMENT ON ROLE "$role" IS 'managed by silo: service=s$i';
COMMENT ON DATABASE "$db" IS 'managed by silo: service=s$i';
REVOKE ALL ON DATABASE "$db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE "$db" TO "$role";
ALTER SCHEMA public OWNER TO "$role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
  done
}

silo_times=() shell_times=()
for r in $(seq 1 "$ROUNDS"); do
  cleanup
  t0=$(now); run_shell; t1=$(now)
  shell_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')")
  cleanup
  t0=$(now); run_silo; t1=$(now)
  silo_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')")
  # A second run must change nothing; time it too (the idempotent check).
  t0=$(now); run_silo; t1=$(now)
  rerun=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  echo "round $r: shell loop ${shell_times[-1]}s, silo up ${silo_times[-1]}s, silo up again (unchanged) ${rerun}s" >&2
done
cleanup

s=$(printf '%s\n' "${silo_times[@]}" | median)
l=$(printf '%s\n' "${shell_times[@]}" | median)
echo "services: $N, rounds: $ROUNDS, silo jobs: $JOBS"
echo "shell loop (createuser+createdb+psql): median ${l}s"
echo "silo up:                               median ${s}s"
echo "speed-up: $(awk -v a="$l" -v b="$s" 'BEGIN {printf "%.2f", a / b}')x"
