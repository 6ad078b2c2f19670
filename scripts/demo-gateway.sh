#!/usr/bin/env bash
# Seed 003's storage gateway, end to end: `make demo-gateway` runs this.
#
#   scripts/demo-gateway.sh [DIR]
#
# In a fresh DIR (default target/demo-gateway): `silo init --example dnd`
# on SQLite, `silo up`, `silo migrate`, then `silo gateway` on a free port
# and, with curl, each of seed 003's requests with its response: a query,
# a write transaction, a schema migration through /v1/schema, and a
# request of one service for another's database, which is refused (403).
# The gateway is stopped however the script ends.
#
# SILO names the silo binary (default target/debug/silo, built with cargo
# when missing). Exit 0 when every step answered as shown, 1 when one did
# not, 2 on a failed setup.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SILO=${SILO:-$here/target/debug/silo}
CARGO=${CARGO:-cargo}
dir=${1:-$here/target/demo-gateway}

fail() { echo "error: $*" >&2; exit 2; }
command -v curl >/dev/null || fail "curl is needed (apt-get install -y curl)"
if [ ! -x "$SILO" ]; then
  (cd "$here" && $CARGO build --quiet -p silo-cli) || fail "could not build silo"
fi

rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
# Only this demo's settings: not an engine or data dir from the caller.
unset SILO_ENGINE SILO_DATA_DIR SILO_MANIFEST

echo "== silo init --example dnd, up, migrate (SQLite) in $dir"
"$SILO" init --example dnd --dir . >/dev/null
"$SILO" up
"$SILO" migrate

token() {
  "$SILO" credentials show "$1" --json --reveal |
    sed -n 's/.*"gateway_token": *"\([^"]*\)".*/\1/p'
}
CHARACTER=$(token character)
CAMPAIGN=$(token campaign)
AUTH=$(token auth)
[ -n "$CHARACTER" ] && [ -n "$CAMPAIGN" ] && [ -n "$AUTH" ] || fail "no gateway tokens (silo up makes them)"

log=$dir/gateway.log
: >"$dir/gateway.out"
"$SILO" gateway --listen 127.0.0.1:0 >"$dir/gateway.out" 2>"$log" &
gateway=$!
trap 'kill "$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null || true' EXIT
# The gateway prints its address once it listens (port 0: a free one).
addr=""
for _ in $(seq 1 200); do
  addr=$(sed -n 's|.*http://\([^ ]*\).*|\1|p' "$dir/gateway.out" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$gateway" 2>/dev/null || { cat "$log" >&2; fail "the gateway did not start"; }
  sleep 0.05
done
[ -n "$addr" ] || fail "the gateway printed no address"
url="http://$addr"
echo "== silo gateway listening on $url"

status=0
# call NAME TOKEN PATH BODY EXPECTED_STATUS: prints the request and the
# response; returns the HTTP status in $code.
call() {
  local name=$1 tok=$2 path=$3 body=$4 want=$5 out
  echo
  echo "== $name"
  echo "POST $path   (Authorization: Bearer <${name%% *}'s token>)"
  echo "$body"
  out=$(curl -sS -w '\n%{http_code}' -X POST "$url$path" \
    -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d "$body")
  code=${out##*$'\n'}
  echo "→ $code"
  echo "${out%$'\n'*}"
  if [ -n "$want" ] && [ "$code" != "$want" ]; then
    echo "!! expected $want" >&2
    status=1
  fi
}

call character "$CHARACTER" /v1/write '{"database":"character_db","transaction":{"operations":[
  {"type":"insert","table":"characters","returning":["id","name"],
   "data":[{"name":"Aria","class":"wizard","level":6,"player_id":1},
           {"name":"Borin","class":"fighter","level":3,"player_id":2}]},
  {"type":"insert","table":"journals","data":{"character_id":1,"entry":"Left Phandalin at dawn."}}]}}' 200

call character "$CHARACTER" /v1/query '{"database":"character_db","query":{"type":"select","table":"characters",
  "fields":["id","name","level"],"where":{"field":"level","operator":">","value":5}}}' 200

call auth "$AUTH" /v1/schema '{"database":"auth_db","action":"migrate","version":"2","description":"sessions",
  "migrations":[{"up":"CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, expires_at TEXT NOT NULL)",
                 "down":"DROP TABLE sessions"}]}' ""
if [ "$code" = 404 ]; then
  echo "schema: skipped (not served by this build)"
elif [ "$code" != 200 ]; then
  echo "!! expected 200" >&2
  status=1
fi

call "campaign (for character's database)" "$CAMPAIGN" /v1/query \
  '{"database":"character_db","query":{"type":"select","table":"characters"}}' 403

echo
if [ "$status" = 0 ]; then
  echo "== every step answered as expected; stopping the gateway"
else
  echo "== a step did not answer as expected (gateway log: $log)" >&2
fi
exit "$status"
