#!/usr/bin/env bash
# Events: throughput and latency of `silo events run`, side by side in one
# run for each bus and engine, with the raw NATS publish rate beside them.
#
#   throughput  K events (256-byte payloads) waiting in the publishers'
#               outboxes, moved into one consumer's inbox, for 1, 5 and 20
#               publishers. Two ways (MODES):
#                 once    `silo events run --once`, from start to exit
#                         (nats: the relays and the delivery side by side; outbox
#                         rows marked or retired included)
#                 follow  `silo events run` started, stopped when the
#                         inbox has all K (relay and delivery overlap)
#                 relay   `silo events run --once` for the publishers only:
#                         outbox → stream, every publish acked and the rows
#                         retired, no delivery (the "relayed" of the goal);
#                         events = rows gone from the outboxes (nats bus
#                         only: the embedded bus has no stream)
#               events per second = K / wall time of the silo process.
#               cpu µs/ev (once and relay): CPU time per event of the silo
#               process, nats-server (the one at SILO_NATS_URL's port) and
#               PostgreSQL (every backend and helper, exited ones
#               included), and of the whole machine, over the silo run.
#   raw         the peer: plain async-nats publishing K 256-byte messages
#               with Nats-Msg-Id to a file-storage stream, 500 in flight
#               (silo's relay batch); silo/raw compares the nats rows.
#   latency     publishers commit R events/s (pgbench -R on PostgreSQL, a
#               paced Python loop on SQLite) for T seconds while
#               `silo events run` runs; per event, inbox `received_at`
#               minus `time` (the outbox row's `created_at`): p50, p99,
#               max. Both are clock times taken as the row is inserted, a
#               moment before its transaction commits (one-statement
#               transactions on the publisher's side).
#
#   bench/events.sh [K] [R] [T]          defaults: 50000 1000 10
#   (or EVENTS=K RATE=R SECS=T in the environment: make bench-events EVENTS=10000)
#   BUSES="embedded nats" ENGINES="postgres sqlite" PUBLISHERS="1 5 20"
#   MODES="once follow" (or relay) LATENCY_PUBLISHERS=1
#   SILO_BIN=target/release/silo RAW_BIN=target/release/examples/nats_raw_publish
#   SILO_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
#   SILO_NATS_URL=nats://127.0.0.1:4222
#   BENCH_LOGS=DIR keeps the workers' logs (RUST_LOG=info for each batch)
#
# Everything it makes carries a name unique to the run (streams, databases,
# roles, a temporary folder) and is removed at exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

K=${1:-${EVENTS:-50000}}
RATE=${2:-${RATE:-1000}}
SECS=${3:-${SECS:-10}}
BUSES=${BUSES-"embedded nats"}
ENGINES=${ENGINES-"postgres sqlite"}
PUBLISHERS=${PUBLISHERS-"1 5 20"}
MODES=${MODES-"once follow"}
LATENCY_PUBLISHERS=${LATENCY_PUBLISHERS:-1}
SILO=${SILO_BIN:-$PWD/target/release/silo}
RAW=${RAW_BIN:-$PWD/target/release/examples/nats_raw_publish}
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export SILO_NATS_URL=${SILO_NATS_URL:-nats://127.0.0.1:4222}
PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGHOST PGPORT PGUSER
# How long to wait for the inbox to fill before giving up on a run.
DEADLINE=${DEADLINE:-300}

for tool in "$SILO" "$RAW"; do
  [ -x "$tool" ] || { echo "error: $tool is missing: make bench-events builds it" >&2; exit 2; }
done
for tool in psql pgbench sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not on PATH" >&2; exit 2; }
done

work=$(mktemp -d)
prefix="silobench$$_"
worker_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$worker_pid" ]; then kill "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
  python3 bench/nats_streams.py delete "$prefix" "$SILO_NATS_URL" 2>/dev/null || true
  drop_prefixed "$prefix" 2>/dev/null || true
  if [ -n "${BENCH_LOGS:-}" ]; then mkdir -p "$BENCH_LOGS" && cp "$work"/logs/* "$BENCH_LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; exit 130' INT TERM

# A JSON payload of 256 bytes as PostgreSQL's jsonb prints it:
# {"n": <n, 6 digits>, "pad": "xxx..."}; SQLite's json_object has no spaces,
# so its pad is two longer.
PAD_PG=$(printf 'x%.0s' $(seq 1 235))
PAD_SQLITE=$(printf 'x%.0s' $(seq 1 237))

publisher_names() { local i; for i in $(seq -w 0 $(($1 - 1))); do echo "p$i"; done; }

# silo.toml: N publishers p0.. of bench.event, one consumer `sink`.
manifest() {
  local engine=$1 bus=$2 n=$3 project=$4 p
  echo '[project]'; echo "name = \"$project\""
  echo '[defaults]'; echo "engine = \"$engine\""
  echo '[events]'; echo "bus = \"$bus\""
  for p in $(publisher_names "$n"); do
    echo "[services.$p]"
    echo "database = \"${prefix}$p\""; echo "role = \"${prefix}${p}_svc\""
    echo 'publishes = ["bench.event"]'
  done
  echo '[services.sink]'
  echo "database = \"${prefix}sink\""; echo "role = \"${prefix}sink_svc\""
  echo 'consumes = ["bench.event"]'
}

# Runs SQL on a service's store as the service and prints the rows: on
# PostgreSQL with the service's credentials in libpq's variables (the
# password stays in the environment, off every command line).
as_service() {
  local dir=$1 svc=$2 sql=$3
  if [ "$(engine_of "$dir")" = postgres ]; then
    with_pg_service "$dir" "$svc" psql -X -q -At -v ON_ERROR_STOP=1 -c "$sql"
  else
    sqlite3 -bail -cmd '.timeout 10000' "$(sqlite_path "$dir" "$svc")" "$sql"
  fi
}

engine_of() { sed -n 's/^engine = "\(.*\)"/\1/p' "$1/silo.toml"; }

# A service's variable from its credentials file (<SERVICE>_DB_<FIELD>).
credential() {
  local dir=$1 svc=$2 field=$3
  (set -a; source "$dir/.silo/secrets/$svc.env"; v="${svc^^}_DB_$field"; printf '%s' "${!v}")
}
sqlite_path() { credential "$1" "$2" PATH; }

# Runs a command with libpq's variables set to a service's credentials.
with_pg_service() {
  local dir=$1 svc=$2; shift 2
  (
    set -a; source "$dir/.silo/secrets/$svc.env"; set +a
    v="${svc^^}_DB_"; h="${v}HOST" p="${v}PORT" u="${v}USER" d="${v}NAME" w="${v}PASSWORD"
    PGHOST=${!h} PGPORT=${!p} PGUSER=${!u} PGDATABASE=${!d} PGPASSWORD=${!w} "$@"
  )
}

# A fresh project in $work/<name>, provisioned; the previous one removed.
project() {
  local engine=$1 bus=$2 n=$3 name=$4
  python3 bench/nats_streams.py delete "$prefix" "$SILO_NATS_URL"
  drop_prefixed "$prefix"
  find "$work" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  mkdir -p "$work/$name" "$work/logs"
  manifest "$engine" "$bus" "$n" "$name" > "$work/$name/silo.toml"
  (cd "$work/$name" && "$SILO" up >"$work/logs/$name.up.log" 2>&1) ||
    { cat "$work/logs/$name.up.log" >&2; return 1; }
}

# Fills the publishers' outboxes with K events in all, in one statement
# per publisher.
fill() {
  local dir=$1 n=$2 per=$(( K / n )) p
  for p in $(publisher_names "$n"); do
    if [ "$(engine_of "$dir")" = postgres ]; then
      as_service "$dir" "$p" "INSERT INTO silo_outbox (type, key, payload)
        SELECT 'bench.event', (g % 1000)::text, jsonb_build_object('n', 100000 + g % 900000, 'pad', '$PAD_PG')
        FROM generate_series(1, $per) g" >/dev/null
    else
      as_service "$dir" "$p" "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $per)
        INSERT INTO silo_outbox (type, key, payload)
        SELECT 'bench.event', CAST(n % 1000 AS TEXT), json_object('n', 100000 + n % 900000, 'pad', '$PAD_SQLITE')
        FROM g" >/dev/null
    fi
  done
}

# Waits until every pending outbox row of the publishers is ready for the
# relay (PostgreSQL: its transaction older than every one still running on
# the server). A transaction of another database that began before the
# fill and still runs holds the rows back, and `--once` would find nothing
# ready and exit at once; fails after DEADLINE s.
wait_ready() {
  local dir=$1 n=$2 start p held
  [ "$(engine_of "$dir")" = postgres ] || return 0
  start=$(now)
  for p in $(publisher_names "$n"); do
    while held=$(as_service "$dir" "$p" "SELECT count(*) FROM silo_outbox
        WHERE state = 'pending' AND txid >= pg_snapshot_xmin(pg_current_snapshot())"); [ "$held" -gt 0 ]; do
      if awk -v a="$start" -v b="$(now)" -v d="$DEADLINE" 'BEGIN {exit !(b - a > d)}'; then
        echo "error: $held outbox rows of $p are still held back by running transactions after ${DEADLINE}s" >&2
        return 1
      fi
      sleep 0.05
    done
  done
}

inbox_count() { as_service "$1" sink "SELECT count(*) FROM silo_inbox"; }

payload_size() {
  if [ "$(engine_of "$1")" = postgres ]; then
    as_service "$1" sink "SELECT round(avg(length(payload::text))) FROM silo_inbox"
  else
    as_service "$1" sink "SELECT CAST(round(avg(length(payload))) AS INTEGER) FROM silo_inbox"
  fi
}

# Waits until the inbox holds at least $2 events; fails after DEADLINE s.
wait_inbox() {
  local dir=$1 want=$2 pause=${3:-0.1} start got
  start=$(now)
  while got=$(inbox_count "$dir"); [ "$got" -lt "$want" ]; do
    if awk -v a="$start" -v b="$(now)" -v d="$DEADLINE" 'BEGIN {exit !(b - a > d)}'; then
      echo "error: the inbox of $dir has $got of $want events after ${DEADLINE}s" >&2
      return 1
    fi
    sleep "$pause"
  done
}

# Starts `silo events run` in the background (its log in $work/<name>.log).
start_worker() {
  local dir=$1
  (cd "$dir" && exec "$SILO" events run >"$work/logs/$(basename "$dir").log" 2>&1) &
  worker_pid=$!
}

stop_worker() {
  kill -TERM "$worker_pid" 2>/dev/null || true
  wait "$worker_pid" 2>/dev/null || true
  worker_pid=""
}

# CPU clock ticks so far: the machine's (busy, every core), nats-server's
# and PostgreSQL's (the postmaster, its live children, and its reaped ones
# through its cutime/cstime).
nats_port=${SILO_NATS_URL##*:}
nats_pid=$(pgrep -f "nats-server.*-p $nats_port( |$)" | head -1 || true)
pg_pid=$(head -1 "$(psql -XAtc 'SHOW data_directory' -d postgres 2>/dev/null)/postmaster.pid" 2>/dev/null || true)
proc_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_snapshot() {
  local machine nats=0 pg=0 c
  machine=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
  [ -n "$nats_pid" ] && nats=$(proc_ticks "$nats_pid")
  if [ -n "$pg_pid" ]; then
    pg=$(proc_ticks "$pg_pid")
    for c in $(pgrep -P "$pg_pid"); do pg=$(( pg + $(proc_ticks "$c") )); done
  fi
  echo "$machine $nats $pg"
}
# µs per event of silo (user+sys seconds from /usr/bin/time), nats-server,
# PostgreSQL and the machine: cpu_per_event EVENTS SILO_SECONDS BEFORE AFTER
cpu_per_event() {
  local events=$1 silo_s=$2
  read -r m0 n0 p0 <<<"$3"; read -r m1 n1 p1 <<<"$4"
  awk -v k="$events" -v s="$silo_s" -v hz="$(getconf CLK_TCK)" \
    -v m=$(( m1 - m0 )) -v n=$(( n1 - n0 )) -v p=$(( p1 - p0 )) \
    'BEGIN {if (k == 0) k = 1; f = 1e6 / hz / k; printf "%.0f/%.0f/%.0f/%.0f", s * 1e6 / k, n * f, p * f, m * f}'
}

rate() { awk -v k="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.0f", k / (b - a)}'; }

# Rows left in the publishers' outboxes (sent rows kept count as gone).
outbox_left() {
  local dir=$1 n=$2 p left=0
  for p in $(publisher_names "$n"); do
    left=$(( left + $(as_service "$dir" "$p" "SELECT count(*) FROM silo_outbox WHERE state = 'pending'") ))
  done
  echo "$left"
}

# One throughput run: sets got, r (events/s), size (payload bytes) and cpu
# (µs per event: silo/nats-server/PostgreSQL/machine, or -).
throughput() {
  local bus=$1 engine=$2 n=$3 mode=$4 name dir t0 t1 c0 c1 only=()
  name="${prefix}${bus}_${engine}_${n}_$mode"
  dir="$work/$name"
  project "$engine" "$bus" "$n" "$name"
  fill "$dir" "$n"
  wait_ready "$dir" "$n"
  local want=$(( K / n * n ))
  cpu="-"
  if [ "$mode" = once ] || [ "$mode" = relay ]; then
    [ "$mode" = relay ] && mapfile -t only < <(publisher_names "$n")
    c0=$(cpu_snapshot)
    t0=$(now)
    (cd "$dir" && /usr/bin/time -f '%U %S' -o "$work/logs/$name.time" \
      "$SILO" events run --once "${only[@]}" >"$work/logs/$(basename "$dir").log" 2>&1)
    t1=$(now)
    c1=$(cpu_snapshot)
  else
    t0=$(now)
    start_worker "$dir"
    wait_inbox "$dir" "$want" 0.05
    t1=$(now)
    stop_worker
  fi
  if [ "$mode" = relay ]; then
    got=$(( want - $(outbox_left "$dir" "$n") ))
    [ "$got" -eq "$want" ] || echo "warning: $name relayed $got of $want events" >&2
    size="-"
  else
    got=$(inbox_count "$dir")
    [ "$got" -eq "$want" ] || echo "warning: $name delivered $got of $want events" >&2
    size=$(payload_size "$dir")
  fi
  r=$(rate "$got" "$t0" "$t1")
  if [ -n "${c0:-}" ]; then
    cpu=$(cpu_per_event "$got" "$(awk '{print $1 + $2}' "$work/logs/$name.time")" "$c0" "$c1")
  fi
}

# Publishes at RATE events/s in all, spread over the publishers, for SECS
# seconds, one event per transaction; prints how many were committed.
paced_publish() {
  local dir=$1 n=$2 per_rate pids=() p out=() total=0 f
  per_rate=$(awk -v r="$RATE" -v n="$n" 'BEGIN {printf "%.3f", r / n}')
  if [ "$(engine_of "$dir")" = postgres ]; then
    printf '%s\n' '\set k random(0, 999)' \
      "INSERT INTO silo_outbox (type, key, payload) VALUES ('bench.event', (:k)::text, jsonb_build_object('n', 100000 + :k, 'pad', '$PAD_PG'));" \
      > "$dir.pgbench"
    for p in $(publisher_names "$n"); do
      with_pg_service "$dir" "$p" pgbench -n -c 2 -j 2 -R "$per_rate" -T "$SECS" -f "$dir.pgbench" \
        >"$work/logs/$(basename "$dir").$p.pgbench.log" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}"
    for p in $(publisher_names "$n"); do
      f=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/logs/$(basename "$dir").$p.pgbench.log")
      total=$(( total + f ))
    done
    echo "$total"
  else
    for p in $(publisher_names "$n"); do out+=("$(sqlite_path "$dir" "$p")"); done
    python3 bench/events_sqlite.py pace "$RATE" "$SECS" "$PAD_SQLITE" "${out[@]}"
  fi
}

# p50 p99 max of received_at - time over the inbox's events but the
# warm-up one, in ms.
latencies() {
  local dir=$1
  if [ "$(engine_of "$dir")" = postgres ]; then
    as_service "$dir" sink "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
        round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(max(ms)::numeric, 1)
      FROM (SELECT extract(epoch FROM received_at - time) * 1000 AS ms FROM silo_inbox WHERE key <> 'warmup') l" |
      tr '|' ' '
  else
    python3 bench/events_sqlite.py latency "$(sqlite_path "$dir" sink)"
  fi
}

# One latency run: sets got and lat ("p50 p99 max").
latency() {
  local bus=$1 engine=$2 n=$3 name dir
  name="${prefix}${bus}_${engine}_lat"
  dir="$work/$name"
  project "$engine" "$bus" "$n" "$name"
  start_worker "$dir"
  # One event through first: the worker is up and its connections open.
  as_service "$dir" "$(publisher_names "$n" | head -1)" \
    "INSERT INTO silo_outbox (type, key, payload) VALUES ('bench.event', 'warmup', '{}')" >/dev/null
  wait_inbox "$dir" 1
  got=$(paced_publish "$dir" "$n")
  wait_inbox "$dir" $(( got + 1 ))
  stop_worker
  lat=$(latencies "$dir")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "# silo events bench: $(date -u +%FT%TZ), $(nproc) cores, K=$K events (256-byte payloads), latency at $RATE events/s for ${SECS}s"
echo "# silo $("$SILO" --version 2>/dev/null | head -1), $(psql -XAtc 'SHOW server_version' -d postgres | cut -d' ' -f1) PostgreSQL, SQLite $(sqlite3 --version | cut -d' ' -f1), NATS at $SILO_NATS_URL"
echo

echo "## raw NATS publish (async-nats, Nats-Msg-Id, file storage, 500 in flight)"
raw=$("$RAW" "${prefix}raw" "$K" 500)
raw_rate=$(echo "$raw" | awk '{print $4}')
echo "raw: $(echo "$raw" | awk '{print $2}') messages in $(echo "$raw" | awk '{print $3}') s: $raw_rate msg/s"
echo

echo "## throughput: K events waiting in the outboxes → one consumer's inbox"
echo "(cpu µs/ev: silo/nats-server/PostgreSQL/whole machine, over the silo process's run)"
printf '%-9s %-9s %-5s %-7s %8s %9s %8s %10s %18s\n' bus engine pubs mode events events/s payload silo/raw "cpu µs/ev"
results=()
for bus in $BUSES; do
  for engine in $ENGINES; do
    for n in $PUBLISHERS; do
      for mode in $MODES; do
        # The embedded bus has no stream to relay to.
        [ "$mode" = relay ] && [ "$bus" != nats ] && continue
        throughput "$bus" "$engine" "$n" "$mode"
        vs="-"; [ "$bus" = nats ] && vs=$(ratio "$r" "$raw_rate")
        printf '%-9s %-9s %-5s %-7s %8s %9s %8s %10s %18s\n' "$bus" "$engine" "$n" "$mode" "$got" "$r" "$size" "$vs" "$cpu"
        results+=("$bus $engine $n $mode $r")
      done
    done
  done
done
echo

echo "## latency: $RATE events/s for ${SECS}s from $LATENCY_PUBLISHERS publisher(s), publish → inbox (ms)"
printf '%-9s %-9s %8s %8s %8s %8s\n' bus engine events p50 p99 max
p99s=()
for bus in $BUSES; do
  for engine in $ENGINES; do
    latency "$bus" "$engine" "$LATENCY_PUBLISHERS"
    read -r p50 p99 max <<<"$lat"
    printf '%-9s %-9s %8s %8s %8s %8s\n' "$bus" "$engine" "$got" "$p50" "$p99" "$max"
    p99s+=("$bus $engine $p99")
  done
done
echo

echo "## goals"
for line in "${results[@]}"; do
  set -- $line
  if [ "$1 $2" = "nats postgres" ]; then
    verdict=$(awk -v r="$5" 'BEGIN {print (r >= 30000 ? "met" : "missed")}')
    if [ "$4" = relay ]; then
      echo "≥ 30,000 events/s relayed, PostgreSQL → JetStream (acked, rows retired), $3 publisher(s): $5 events/s: $verdict"
    else
      echo "≥ 30,000 events/s relayed, PostgreSQL → JetStream → inbox, $3 publisher(s), $4: $5 events/s: $verdict"
    fi
  fi
done
for line in "${p99s[@]}"; do
  set -- $line
  verdict=$(awk -v p="$3" 'BEGIN {print (p < 50 ? "met" : "missed")}')
  echo "p99 < 50 ms at $RATE events/s, $1 bus on $2: $3 ms: $verdict"
done
