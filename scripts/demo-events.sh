#!/usr/bin/env bash
# BattleScope's event flow, end to end: `make demo-events` runs this.
#
#   scripts/demo-events.sh [--bus embedded|nats] [--engine sqlite|postgres] [--follow] DIR
#   scripts/demo-events.sh --check DIR
#
# In DIR (made with `silo init --example battlescope` unless it already
# holds a silo.toml): `silo up`, `silo migrate`, then rounds of
# `silo events run --once` and each service once, until a round changes
# nothing. With --follow, `silo events run` and the five services run side
# by side instead, as they would in production, until nothing is left to
# deliver or handle; then they are stopped with SIGTERM. Then a summary:
# events per type, rows per store, and a check that every store's
# denormalized copy matches the store it came from. `--check` only prints
# the summary and runs the check, on a DIR that ran.
#
# Every query runs through `silo connect SERVICE`, as that service with
# its own credentials, in its own store: psql or sqlite3 must be on PATH.
#
# SILO names the silo binary (default target/debug/silo beside this
# script), BIN_DIR the folder of the battlescope-* services (default: the
# folder of SILO). Exit 0 when every copy matches, 1 when one does not (or
# events are left pending or dead), 2 on bad usage or a failed step.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SILO=${SILO:-$here/target/debug/silo}
BIN_DIR=${BIN_DIR:-$(dirname "$SILO")}
SERVICES=(ingestion enrichment battles search notifications)
MAX_ROUNDS=30
FOLLOW_SECONDS=180
TAB=$'\t'

usage() {
  echo "usage: $0 [--bus embedded|nats] [--engine sqlite|postgres] [--follow] DIR | --check DIR" >&2
  exit 2
}
fail() { echo "error: $*" >&2; exit 2; }

bus="" engine="" check_only=false follow=false dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bus) [ $# -ge 2 ] || usage; bus=$2; shift 2 ;;
    --engine) [ $# -ge 2 ] || usage; engine=$2; shift 2 ;;
    --check) check_only=true; shift ;;
    --follow) follow=true; shift ;;
    -*) usage ;;
    *) [ -z "$dir" ] || usage; dir=$1; shift ;;
  esac
done
[ -n "$dir" ] || usage
! { $check_only && $follow; } || usage
case "$bus" in ""|embedded|nats) ;; *) usage ;; esac
case "$engine" in ""|sqlite|postgres) ;; *) usage ;; esac
[ -x "$SILO" ] || fail "no silo binary at $SILO: build it (cargo build -p silo-cli) or set SILO"
for s in "${SERVICES[@]}"; do
  [ -x "$BIN_DIR/battlescope-$s" ] ||
    fail "no battlescope-$s in $BIN_DIR: build the services (cargo build -p battlescope-$s) or set BIN_DIR"
done
# The services read their own credentials file; a DATABASE_URL left in the
# environment would point every one of them at the same store.
unset DATABASE_URL

silo() { "$SILO" "$@"; }

# The engine of SERVICE's store, from the credentials `silo up` wrote.
engine_of() {
  if grep -q '^DATABASE_URL=sqlite:' ".silo/secrets/$1.env"; then echo sqlite; else echo postgres; fi
}

# q SERVICE PG_SQL [SQLITE_SQL]: runs a query in SERVICE's store, as
# SERVICE; prints its rows, tab-separated, NULL as an empty field.
q() {
  local service=$1 pg=$2 lite=${3:-$2}
  if [ "$(engine_of "$service")" = postgres ]; then
    silo connect "$service" -- -X -q -A -t -F "$TAB" -v ON_ERROR_STOP=1 -c "$pg"
  else
    silo connect "$service" -- -batch -bail -noheader -separator "$TAB" "$lite"
  fi
}

if ! $check_only; then
  if [ ! -f "$dir/silo.toml" ]; then
    [ ! -e "$dir" ] || [ -z "$(ls -A "$dir")" ] || fail "$dir is not empty and holds no silo.toml"
    silo ${engine:+--engine "$engine"} init --example battlescope --dir "$dir" >/dev/null
  fi
  cd "$dir"
  if [ -n "$bus" ]; then
    if grep -q '^\[events\]' silo.toml; then
      sed -i '/^\[events\]/,/^\[/ s/^bus = .*/bus = "'"$bus"'"/' silo.toml
      grep -q "^bus = \"$bus\"" silo.toml || sed -i '/^\[events\]/a bus = "'"$bus"'"' silo.toml
    else
      printf '\n[events]\nbus = "%s"\n' "$bus" >>silo.toml
    fi
  fi
  # On the nats bus a server must answer first: without one, every round
  # would fail the same way after the stores were made.
  if [ "$(sed -n '/^\[events\]/,/^\[/ s/^bus *= *"\([a-z]*\)".*/\1/p' silo.toml | head -n 1)" = nats ]; then
    url=${SILO_NATS_URL:-nats://127.0.0.1:4222}
    # nats://[user:password@]host[:port][,more servers]
    hostport=${url%%,*} hostport=${hostport#*://} hostport=${hostport##*@} hostport=${hostport%%/*}
    host=${hostport%:*} port=${hostport##*:}
    [ "$host" != "$hostport" ] || port=4222
    host=${host#[} host=${host%]}
    timeout 3 bash -c ': >"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null ||
      fail "no NATS server answers at $host:$port (SILO_NATS_URL): start one with JetStream (\`nats-server -js\`) or point SILO_NATS_URL at one"
  fi
  log=$PWD/demo-events.log
  : >"$log"
  echo "==> silo up, silo migrate (in $PWD)"
  silo up >>"$log" 2>&1 || { tail -n 20 "$log" >&2; fail "silo up failed (see $log)"; }
  silo migrate >>"$log" 2>&1 || { tail -n 20 "$log" >&2; fail "silo migrate failed (see $log)"; }
else
  cd "$dir"
  [ -f silo.toml ] || fail "$dir holds no silo.toml"
fi

for s in "${SERVICES[@]}"; do
  client=sqlite3
  [ "$(engine_of "$s")" = sqlite ] || client=psql
  command -v "$client" >/dev/null ||
    fail "$client not found: \`silo connect $s\` runs it to read $s's store; install it"
done

# Everything that moves when events flow: each store's inbox states and
# outbox rows.
fingerprint() {
  for s in "${SERVICES[@]}"; do
    echo "$s"
    q "$s" "SELECT state, count(*) FROM silo_inbox GROUP BY state ORDER BY state"
    q "$s" "SELECT state, count(*) FROM silo_outbox GROUP BY state ORDER BY state"
  done
}

# Outstanding work: rows waiting in an outbox or an inbox, read in the order
# events travel (one that moves on while they are read is seen further on).
pending() {
  {
    q ingestion "SELECT count(*) FROM silo_outbox WHERE state = 'pending'"
    q enrichment "SELECT count(*) FROM silo_inbox WHERE state = 'pending'"
    q enrichment "SELECT count(*) FROM silo_outbox WHERE state = 'pending'"
    q battles "SELECT count(*) FROM silo_inbox WHERE state = 'pending'"
    q battles "SELECT count(*) FROM silo_outbox WHERE state = 'pending'"
    for s in search notifications ingestion; do
      q "$s" "SELECT count(*) FROM silo_inbox WHERE state = 'pending'"
    done
  } | awk '{ n += $1 } END { print n + 0 }'
}

# step COMMAND...: runs one step of a round, its output in the log; the
# first that fails ends the demo, named, with the end of the log.
step() {
  "$@" >>"$log" 2>&1 || {
    local rc=$?
    tail -n 20 "$log" >&2
    fail "round $round: \`$(basename "$1") ${*:2}\` exited with $rc (see $log)"
  }
}

if ! $check_only && ! $follow; then
  echo "==> rounds of \`silo events run --once\` and each service once, until nothing changes (log: $log)"
  previous="" round=0
  while :; do
    round=$((round + 1))
    [ "$round" -le "$MAX_ROUNDS" ] || { echo "error: still moving after $MAX_ROUNDS rounds" >&2; exit 1; }
    echo "--- round $round" >>"$log"
    step "$BIN_DIR/battlescope-ingestion" --once
    step "$SILO" events run --once
    step "$BIN_DIR/battlescope-enrichment" --once
    step "$SILO" events run --once
    step "$BIN_DIR/battlescope-battles" --once
    step "$SILO" events run --once
    step "$BIN_DIR/battlescope-search" --once
    step "$BIN_DIR/battlescope-notifications" --once
    step "$BIN_DIR/battlescope-ingestion" --once
    handled=$(sed -n "/^--- round $round\$/,\$ s/^[a-z]*: \([0-9]*\) events handled\$/\1/p" "$log" |
      awk '{ n += $1 } END { print n + 0 }')
    echo "    round $round: $handled events handled"
    now=$(fingerprint)
    [ "$now" != "$previous" ] || break
    previous=$now
  done
fi

if $follow; then
  echo "==> \`silo events run\` and the five services side by side, until nothing is left (log: $log)"
  pids=()
  stop() {
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
  }
  trap stop EXIT
  "$SILO" events run >>"$log" 2>&1 &
  pids+=($!)
  for s in "${SERVICES[@]}"; do
    "$BIN_DIR/battlescope-$s" >>"$log" 2>&1 &
    pids+=($!)
  done
  # Quiet: every sample killmail stored, nothing pending anywhere, and the
  # same counts at two looks in a row.
  sample=$(grep -c . services/ingestion/data/killmails.jsonl)
  start=$SECONDS previous="" 
  while :; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; fail "a process stopped early (see $log)"; }
    done
    stored=$(q ingestion "SELECT count(*) FROM killmail_events")
    left=$(pending)
    now=$(fingerprint)
    if [ "$stored" = "$sample" ] && [ "$left" = 0 ] && [ "$now" = "$previous" ]; then
      break
    fi
    [ $((SECONDS - start)) -lt "$FOLLOW_SECONDS" ] ||
      { echo "error: $left events still pending after ${FOLLOW_SECONDS}s (see $log)" >&2; exit 1; }
    previous=$now
    sleep 0.5
  done
  echo "    quiet after $((SECONDS - start))s; stopping them with SIGTERM"
  stop
  names=(silo-events-run "${SERVICES[@]}")
  for i in "${!pids[@]}"; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    [ "$rc" -eq 0 ] || { tail -n 20 "$log" >&2; fail "${names[$i]} exited with $rc on SIGTERM (see $log)"; }
  done
  pids=()
fi

echo
echo "Events (each consumer's inbox):"
printf '  %-18s %-11s %-14s %6s %8s %5s\n' TYPE FROM TO DONE PENDING DEAD
for s in "${SERVICES[@]}"; do
  q "$s" "SELECT type, source, state, count(*) FROM silo_inbox GROUP BY type, source, state" |
    awk -F"$TAB" -v to="$s" '{ key = $1 FS $2; keys[key] = 1; n[key, $3] = $4 }
      END { for (k in keys) { split(k, p, FS);
        printf "  %-18s %-11s %-14s %6d %8d %5d\n", p[1], p[2], to, n[k, "done"], n[k, "pending"], n[k, "dead"] } }'
done | sort

echo
echo "Rows per store:"
tables() {
  case "$1" in
    ingestion) echo killmail_events ;;
    enrichment) echo enriched_killmails esi_cache_entries ;;
    battles) echo battles battle_killmails battle_participants pilot_ship_history ;;
    search) echo battle_documents killmail_documents ;;
    notifications) echo user_subscriptions notification_history ;;
  esac
}
for s in "${SERVICES[@]}"; do
  for t in $(tables "$s"); do
    printf '  %-14s %-21s %6s\n' "$s" "$t" "$(q "$s" "SELECT count(*) FROM $t")"
  done
done

# compare NAME LEFT RIGHT: LEFT and RIGHT are files of rows; they must
# hold the same rows.
problems=0
compare() {
  local name=$1 left=$2 right=$3
  if diff -q <(LC_ALL=C sort "$left") <(LC_ALL=C sort "$right") >/dev/null; then
    printf '  ok        %s (%d rows)\n' "$name" "$(wc -l <"$left")"
  else
    printf '  MISMATCH  %s\n' "$name"
    # `<` rows only in the copy, `>` rows only in the source.
    { diff <(LC_ALL=C sort "$left") <(LC_ALL=C sort "$right") || true; } |
      grep '^[<>]' | head -n 5 | sed 's/^/            /'
    problems=$((problems + 1))
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo
echo "Copies (each store's denormalized copy against the store it came from):"

q ingestion "SELECT killmail_id, system_id FROM killmail_events" >"$tmp/ingested"
q enrichment "SELECT killmail_id, system_id FROM enriched_killmails" >"$tmp/enriched"
compare "enrichment.enriched_killmails = ingestion.killmail_events" "$tmp/enriched" "$tmp/ingested"

q enrichment "SELECT killmail_id, ship_type_name, victim_character_name, victim_alliance_name
              FROM enriched_killmails" >"$tmp/names"
q battles "SELECT killmail_id, ship_type_name, victim_name, victim_alliance_name
           FROM battle_killmails" >"$tmp/battle_killmails"
compare "battles.battle_killmails = enrichment.enriched_killmails" "$tmp/battle_killmails" "$tmp/names"

q enrichment "SELECT killmail_id, COALESCE(victim_character_name, ''), ship_type_name, system_name
              FROM enriched_killmails" >"$tmp/documents_source"
q search "SELECT killmail_id, victim_name, ship_type_name, system_name
          FROM killmail_documents" >"$tmp/documents"
compare "search.killmail_documents = enrichment.enriched_killmails" "$tmp/documents" "$tmp/documents_source"

q battles "SELECT b.id, b.system_name, b.security_type, extract(epoch FROM b.start_time)::bigint,
             b.total_kills, b.total_isk_destroyed,
             (SELECT count(*) FROM battle_participants p
              WHERE p.battle_id = b.id AND p.character_name IS NOT NULL)
           FROM battles b" \
  "SELECT b.id, b.system_name, b.security_type, CAST(strftime('%s', b.start_time) AS INTEGER),
     b.total_kills, b.total_isk_destroyed,
     (SELECT count(*) FROM battle_participants p
      WHERE p.battle_id = b.id AND p.character_name IS NOT NULL)
   FROM battles b" >"$tmp/battles"
q search "SELECT id, system_name, security_type, start_time, total_kills, total_isk_destroyed,
            cardinality(participant_names)
          FROM battle_documents" \
  "SELECT id, system_name, security_type, start_time, total_kills, total_isk_destroyed,
     json_array_length(participant_names)
   FROM battle_documents" >"$tmp/battle_documents"
compare "search.battle_documents = battles.battles" "$tmp/battle_documents" "$tmp/battles"

q battles "SELECT killmail_id, battle_id FROM battle_killmails" >"$tmp/assigned"
q ingestion "SELECT killmail_id, battle_id FROM killmail_events" >"$tmp/assignments"
compare "ingestion.killmail_events.battle_id = battles.battle_killmails" "$tmp/assignments" "$tmp/assigned"

# Notifications keeps every notification it sent, each with the battle's
# state then; the latest per battle must be the battle's state now.
q notifications "SELECT DISTINCT ON (event_data->>'battle_id') event_data->>'battle_id',
                   event_data->>'total_kills', event_data->>'total_isk_destroyed',
                   event_data->>'end_time'
                 FROM notification_history
                 ORDER BY event_data->>'battle_id', (event_data->>'version')::bigint DESC" \
  "SELECT json_extract(event_data, '\$.battle_id'), max(json_extract(event_data, '\$.version')),
     json_extract(event_data, '\$.total_isk_destroyed'), json_extract(event_data, '\$.end_time')
   FROM notification_history GROUP BY 1" >"$tmp/notified"
q battles "SELECT id, total_kills, total_isk_destroyed,
             to_char(end_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
           FROM battles" \
  "SELECT id, total_kills, total_isk_destroyed, end_time FROM battles" >"$tmp/battle_states"
cut -f1 "$tmp/notified" | LC_ALL=C sort >"$tmp/notified_ids"
LC_ALL=C sort "$tmp/battle_states" | LC_ALL=C join -t "$TAB" "$tmp/notified_ids" - >"$tmp/notified_battles"
compare "notifications' latest per battle = battles.battles" "$tmp/notified" "$tmp/notified_battles"
if [ ! -s "$tmp/notified" ]; then
  echo "  MISMATCH  notifications sent none"
  problems=$((problems + 1))
fi

left=0
for s in "${SERVICES[@]}"; do
  n=$(q "$s" "SELECT count(*) FROM silo_inbox WHERE state <> 'done'")
  if [ "$n" != 0 ]; then
    echo "  LEFT      $s has $n inbox events not done (silo events dlq $s)"
    left=$((left + n))
  fi
done

echo
if [ "$problems" -eq 0 ] && [ "$left" -eq 0 ]; then
  echo "Every copy matches its source."
else
  echo "$problems copies differ from their source; $left events not done."
  exit 1
fi
