#!/usr/bin/env bash
# Events: throughput and latency of `silo events run`, side by side in one
# run for each bus and engine.
#
#   throughput  K events (256-byte payloads) waiting in the publishers'
#               outboxes, relayed into one consumer's inbox by
#               `silo events run --once`: events per second, for 1, 5 and
#               20 publishers.
#   latency     publishers commit R events/s (pgbench -R on PostgreSQL, a
#               paced Python loop on SQLite) for T seconds while the worker
#               runs; per event, inbox commit minus publish (inbox
#               `received_at` minus `time`): p50, p99, max.
#
#   bench/events.sh [K] [R] [T]          defaults: 100000 1000 15
#   BUSES="embedded nats" ENGINES="postgres sqlite" PUBLISHERS="1 5 20"
#   SILO_BIN=target/release/silo SILO_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
#   SILO_NATS_URL=nats://127.0.0.1:4222
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

K=${1:-100000}
RATE=${2:-1000}
SECONDS_=${3:-15}
BUSES=${BUSES:-"embedded nats"}
ENGINES=${ENGINES:-"postgres sqlite"}
PUBLISHERS=${PUBLISHERS:-"1 5 20"}
SILO=${SILO_BIN:-$PWD/target/release/silo}
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export SILO_NATS_URL=${SILO_NATS_URL:-nats://127.0.0.1:4222}
PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGHOST PGPORT PGUSER

work=$(mktemp -d)
prefix="bench$$_"
trap 'drop_prefixed "$prefix"; rm -rf "$work"' EXIT

# A 256-byte JSON payload: {"n": <id>, "pad": "xxx..."}.
PAD=$(printf 'x%.0s' $(seq 1 236))

# silo.toml: N publishers p00.. of bench.event, one consumer `sink`.
manifest() {
  local engine=$1 bus=$2 n=$3 project=$4 i
  echo '[project]'; echo "name = \"$project\""
  echo '[defaults]'; echo "engine = \"$engine\""
  echo '[events]'; echo "bus = \"$bus\""
  for i in $(seq -w 0 $((n - 1))); do
    echo "[services.p$i]"
    echo "database = \"${prefix}p$i\""; echo "role = \"${prefix}p${i}_svc\""
    echo 'publishes = ["bench.event"]'
  done
  echo '[services.sink]'
  echo "database = \"${prefix}sink\""; echo "role = \"${prefix}sink_svc\""
  echo 'consumes = ["bench.event"]'
}

# Runs SQL on a service's store as the service (its password stays in the
# environment, off every command line).
as_service() {
  local dir=$1 svc=$2 sql=$3
  (cd "$dir" && "$SILO" connect "$svc" -- -q -v ON_ERROR_STOP=1 -At -c "$sql" 2>/dev/null) ||
    (cd "$dir" && printf '%s\n' "$sql" | "$SILO" connect "$svc")
}

# A fresh project in $work/<name>, provisioned.
project() {
  local engine=$1 bus=$2 n=$3 name=$4
  drop_prefixed "$prefix"
  rm -rf "${work:?}/$name"; mkdir -p "$work/$name"
  manifest "$engine" "$bus" "$n" "$name" > "$work/$name/silo.toml"
  (cd "$work/$name" && "$SILO" up >/dev/null)
}

# Fills each publisher's outbox with its share of K events, 1000 per
# transaction.
fill() {
  local dir=$1 n=$2 per=$(( K / n )) svc sql
  for svc in $(cd "$dir" && "$SILO" status --json | python3 -c 'import json,sys; print(" ".join(s["service"] for s in json.load(sys.stdin)["services"] if s["service"] != "sink"))'); do
    sql=""
    for start in $(seq 0 1000 $((per - 1))); do
      local end=$(( start + 999 < per - 1 ? start + 999 : per - 1 ))
      sql+="INSERT INTO silo_outbox (type, key, payload) SELECT 'bench.event', (g % 1000)::text, json_object('n', g, 'pad', '$PAD') FROM generate_series($start, $end) g;"
    done
    as_service "$dir" "$svc" "$sql" >/dev/null
  done
}

inbox_count() {
  as_service "$1" sink "SELECT count(*) FROM silo_inbox"
}

echo "# silo events bench: K=$K events, latency at $RATE events/s for ${SECONDS_}s"
printf '%-9s %-9s %-11s %10s %12s\n' bus engine publishers events events/s
for bus in $BUSES; do
  for engine in $ENGINES; do
    for n in $PUBLISHERS; do
      name="t_${bus}_${engine}_$n"
      project "$engine" "$bus" "$n" "$name"
      fill "$work/$name" "$n"
      t0=$(now)
      (cd "$work/$name" && "$SILO" events run --once >/dev/null)
      t1=$(now)
      got=$(inbox_count "$work/$name")
      rate=$(awk -v k="$got" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", k / (b - a)}')
      printf '%-9s %-9s %-11s %10s %12s\n' "$bus" "$engine" "$n" "$got" "$rate"
    done
  done
done
