#!/usr/bin/env bash
# The gateway against PostgreSQL itself: `make bench-gateway` runs this.
#
# The D&D example (seed 003) on PostgreSQL, served by a release build of
# `silo gateway`; wrk (bench/gateway.lua) sends requests on loopback and
# pgbench runs the same statement on the same database directly, as the
# physical reference:
#   read   a random row of characters by primary key (/v1/query) against
#          bench/gateway_read.sql (pgbench -M prepared, as sqlx prepares)
#   write  a one-row update transaction (/v1/write) against
#          bench/gateway_write.sql (BEGIN; UPDATE ...; COMMIT)
#   seven  the seven services at once, each reading its own table by
#          primary key: per-service TPS and p95
# Each line gives TPS, p95 and the ratio gateway/direct. Goals (issue 14):
# read ≥ 40% of direct with p95 < 5 ms; write ≥ 70% with p95 < 10 ms.
#
# Settings (environment): SECS per run (default 10), CONNS connections
# (default 16), ROWS per table (default 10000), SILO (default
# target/release/silo), SILO_PG_ADMIN_URL (default the local server as
# postgres). The machine's load is printed first: figures from a busy
# machine are lower for both sides.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SILO=${SILO:-$here/target/release/silo}
SECS=${SECS:-10}
CONNS=${CONNS:-16}
ROWS=${ROWS:-10000}
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

fail() { echo "error: $*" >&2; exit 2; }
[ -x "$SILO" ] || fail "no silo at $SILO: cargo build --release -p silo-cli"
command -v pgbench >/dev/null || fail "pgbench is needed (postgresql-client)"
command -v psql >/dev/null || fail "psql is needed (postgresql-client)"
if ! command -v wrk >/dev/null; then
  echo "wrk is missing: apt-get install -y wrk" >&2
  apt-get install -y wrk >/dev/null || fail "could not install wrk"
fi

prefix="gwb$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')_"
work=$(mktemp -d)
admin_db() { echo "${SILO_PG_ADMIN_URL%/*}/$1"; }
gateway=""
cleanup() {
  [ -z "$gateway" ] || { kill "$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null || true; }
  (cd "$work" && "$SILO" destroy --yes >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $SECS s per run, $CONNS connections, $ROWS rows per table"

cd "$work"
"$SILO" init --example dnd --dir . >/dev/null
# This run's own databases and roles, so nothing on the server collides.
sed -i -e 's/^engine = "sqlite"/engine = "postgres"/' \
  -e "s/^database = \"\([a-z_]*\)\"\(.*\)/database = \"${prefix}\1\"\2\nrole = \"${prefix}\1_svc\"/" silo.toml
"$SILO" up >/dev/null 2>&1 || "$SILO" up
"$SILO" migrate >/dev/null

# service table columns-and-values (for INSERT ... SELECT FROM generate_series)
SEVEN=(
  "character characters name,class,level,player_id 'c'||g,'wizard',1+g%20,g"
  "campaign campaigns name,dungeon_master_id 'c'||g,g"
  "auth users email,display_name,password_hash 'u'||g||'@x','u'||g,'x'"
  "metrics samples name,value 'm'||g%50,g*0.5"
  "catalog items name,kind 'i'||g,'weapon'"
  "image_storage images owner_service,owner_ref,object_key,content_type,size_bytes 'character',g,'k'||g,'image/png',g"
  "search documents source,source_ref,title 'character',g,'t'||g"
)
for entry in "${SEVEN[@]}"; do
  read -r svc tbl cols vals <<<"$entry"
  psql -qX "$(admin_db "${prefix}${svc}_db")" -v ON_ERROR_STOP=1 \
    -c "INSERT INTO $tbl (id, $cols) SELECT g, $vals FROM generate_series(1, $ROWS) g" \
    -c "VACUUM ANALYZE $tbl" >/dev/null
done

token() {
  "$SILO" credentials show "$1" --json --reveal | sed -n 's/.*"gateway_token": *"\([^"]*\)".*/\1/p'
}

: >gateway.out
"$SILO" gateway --listen 127.0.0.1:0 --pool-size "$CONNS" >gateway.out 2>gateway.log &
gateway=$!
addr=""
for _ in $(seq 1 200); do
  addr=$(sed -n 's|.*http://\([^ ]*\).*|\1|p' gateway.out | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$gateway" 2>/dev/null || { cat gateway.log >&2; fail "the gateway did not start"; }
  sleep 0.05
done
[ -n "$addr" ] || fail "the gateway printed no address"

# wrk_run MODE SERVICE TABLE CONNS THREADS: the RESULT line of a run.
wrk_run() {
  GW_MODE=$1 GW_TOKEN=$(token "$2") GW_DATABASE="${prefix}$2_db" GW_TABLE=$3 GW_ROWS=$ROWS \
    wrk -t"$5" -c"$4" -d"${SECS}s" -s "$here/bench/gateway.lua" "http://$addr" | grep '^RESULT'
}

# pgbench_run SCRIPT: "tps=... p95_ms=..." of pgbench on character's database.
pgbench_run() {
  local logs
  logs=$(mktemp -d)
  local out
  out=$(cd "$logs" && pgbench -n -M prepared -c "$CONNS" -j 2 -T "$SECS" -D rows="$ROWS" \
    -f "$here/bench/$1" -l --log-prefix=pgb "$(admin_db "${prefix}character_db")" 2>&1)
  local tps p95
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1 | awk '{printf "%.1f", $1}')
  # Per-transaction log: the third column is the latency in microseconds.
  p95=$(cat "$logs"/pgb.* | awk '{print $3}' | sort -n |
    awk '{a[NR]=$1} END {printf "%.3f", a[int(NR*0.95)]/1000}')
  rm -rf "$logs"
  echo "tps=$tps p95_ms=$p95"
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# Warm the pool and the catalog, so the first run does not pay for them.
SECS=2 wrk_run read character characters "$CONNS" 2 >/dev/null
SECS=2 wrk_run write character characters "$CONNS" 2 >/dev/null

printf '\n%-7s %-8s %10s %9s %9s %8s\n' case side TPS "p50 ms" "p95 ms" errors
report() {
  local name=$1 gw=$2 direct=$3
  printf '%-7s %-8s %10s %9s %9s %8s\n' "$name" gateway "$(field "$gw" tps)" \
    "$(field "$gw" p50_ms)" "$(field "$gw" p95_ms)" "$(field "$gw" errors)"
  printf '%-7s %-8s %10s %9s %9s %8s\n' "$name" direct "$(field "$direct" tps)" "" \
    "$(field "$direct" p95_ms)" ""
  awk -v g="$(field "$gw" tps)" -v d="$(field "$direct" tps)" -v n="$name" \
    'BEGIN {printf "%-7s ratio gateway/direct: %.0f%%\n", n, 100*g/d}'
}
gw=$(wrk_run read character characters "$CONNS" 2)
direct=$(pgbench_run gateway_read.sql)
report read "$gw" "$direct"
gw=$(wrk_run write character characters "$CONNS" 2)
direct=$(pgbench_run gateway_write.sql)
report write "$gw" "$direct"

echo
echo "== the seven services at once, each reading its own table ($((CONNS / 4 > 0 ? CONNS / 4 : 1)) connections each)"
# Each service's pool and catalog warmed first, as for character above.
for entry in "${SEVEN[@]}"; do
  read -r svc tbl _ <<<"$entry"
  SECS=1 wrk_run read "$svc" "$tbl" 2 1 >/dev/null
done
pids=()
for entry in "${SEVEN[@]}"; do
  read -r svc tbl _ <<<"$entry"
  wrk_run read "$svc" "$tbl" "$((CONNS / 4 > 0 ? CONNS / 4 : 1))" 1 >"seven.$svc" &
  pids+=($!)
done
wait "${pids[@]}"
printf '%-14s %10s %9s %8s\n' service TPS "p95 ms" errors
for entry in "${SEVEN[@]}"; do
  read -r svc _ <<<"$entry"
  r=$(cat "seven.$svc")
  printf '%-14s %10s %9s %8s\n' "$svc" "$(field "$r" tps)" "$(field "$r" p95_ms)" "$(field "$r" errors)"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
