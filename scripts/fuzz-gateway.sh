#!/usr/bin/env bash
# Schema-driven fuzzing of the gateway: `make fuzz-gateway` runs this.
#
#   scripts/fuzz-gateway.sh [DIR]
#
# The D&D example (seed 003) on SQLite in a fresh DIR (default
# target/fuzz-gateway), `silo gateway` on a free port, then schemathesis
# (a pinned version, installed into a venv under target/) generates
# requests from the live /openapi.json and sends them with the character
# service's token. Two checks: no response is a server error (5xx), and
# every response matches the document (status, content type, body
# schema). A failure prints the request that reproduces it.
#
# SILO names the silo binary (default target/debug/silo, built with cargo
# when missing); MAX_EXAMPLES the examples per operation (default 200).
# Exit 0 when schemathesis finds nothing, 1 when it finds a failure, 2 on
# a failed setup.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SILO=${SILO:-$here/target/debug/silo}
CARGO=${CARGO:-cargo}
MAX_EXAMPLES=${MAX_EXAMPLES:-200}
SCHEMATHESIS_VERSION=4.32.5
venv=$here/target/schemathesis-$SCHEMATHESIS_VERSION
dir=${1:-$here/target/fuzz-gateway}

fail() { echo "error: $*" >&2; exit 2; }
if [ ! -x "$SILO" ]; then
  (cd "$here" && $CARGO build --quiet -p silo-cli) || fail "could not build silo"
fi
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv" || fail "python3 -m venv failed (apt-get install -y python3-venv)"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" ||
    fail "could not install schemathesis $SCHEMATHESIS_VERSION"
fi

rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
unset SILO_ENGINE SILO_DATA_DIR SILO_MANIFEST
"$SILO" init --example dnd --dir . >/dev/null
"$SILO" up >/dev/null
"$SILO" migrate >/dev/null
token=$("$SILO" credentials show character --json --reveal |
  sed -n 's/.*"gateway_token": *"\([^"]*\)".*/\1/p')
[ -n "$token" ] || fail "no gateway token for character"

: >gateway.out
"$SILO" gateway --listen 127.0.0.1:0 >gateway.out 2>gateway.log &
gateway=$!
trap 'kill "$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null || true' EXIT
addr=""
for _ in $(seq 1 200); do
  addr=$(sed -n 's|.*http://\([^ ]*\).*|\1|p' gateway.out | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$gateway" 2>/dev/null || { cat gateway.log >&2; fail "the gateway did not start"; }
  sleep 0.05
done
[ -n "$addr" ] || fail "the gateway printed no address"

echo "== schemathesis $SCHEMATHESIS_VERSION against http://$addr/openapi.json"
# The token reaches schemathesis through the environment, never argv (ps
# shows argv): its config file names the variable.
cat >schemathesis.toml <<'TOML'
headers = { Authorization = "Bearer ${GATEWAY_TOKEN}" }
TOML
# Routes the document lists ahead of the build that serves them (axum's
# fallback: 404 with an empty body) are left out, and said so.
skip=()
for path in /v1/schema /metrics; do
  body=$(curl -sS -o - -w '%{http_code}' -X POST "http://$addr$path" -d '{}' 2>/dev/null || true)
  if [ "$body" = 404 ]; then
    echo "$path: skipped (not served by this build)"
    skip+=(--exclude-path "$path")
  fi
done
status=0
GATEWAY_TOKEN=$token "$venv/bin/schemathesis" --config-file schemathesis.toml \
  run "http://$addr/openapi.json" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed 1 "${skip[@]}" || status=$?
if grep -q "panicked" gateway.log; then
  echo "!! the gateway panicked:" >&2
  grep -A3 "panicked" gateway.log >&2
  status=1
fi
exit "$status"
