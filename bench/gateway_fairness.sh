#!/usr/bin/env bash
# Gateway fairness: does one service's flood slow another's requests?
#
# crates/silo-gateway/examples/fairness.rs (release build) runs two
# services, `quiet` and `noisy`, behind one gateway on loopback, on each
# engine. `quiet` sends single-row reads by primary key at QUIET_RPS
# (open loop: each latency counts from when the request was due); its p50,
# p95 and p99 are measured alone, while `noisy` floods with FLOOD
# connections of 100-row reads and no limit, and while the same flood is
# held to NOISY_RPS by `requests_per_second` (the excess refused with 429).
# The bound docs/gateway.md states is quiet's p95 under the limited flood
# against its p95 alone.
#
#   bench/gateway_fairness.sh
#   ENGINES="sqlite postgres" SECS=5 QUIET_RPS=50 FLOOD=16 NOISY_RPS=200
#   FAIRNESS_BIN=target/release/examples/fairness
#   SILO_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
#
# The machine's load average is printed before and after: the figures
# only mean something beside it. PostgreSQL databases and roles carry a
# name unique to the run and are dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINES=${ENGINES:-"sqlite postgres"}
SECS=${SECS:-5}
QUIET_RPS=${QUIET_RPS:-50}
FLOOD=${FLOOD:-16}
NOISY_RPS=${NOISY_RPS:-200}
BIN=${FAIRNESS_BIN:-$PWD/target/release/examples/fairness}
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

[ -x "$BIN" ] || { echo "error: $BIN is missing: make bench-gateway-fairness builds it" >&2; exit 2; }

echo "# $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# SECS=$SECS QUIET_RPS=$QUIET_RPS FLOOD=$FLOOD NOISY_RPS=$NOISY_RPS"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
first=1
for engine in $ENGINES; do
  if [ $first = 1 ]; then "$BIN" "$engine" "$SECS" "$QUIET_RPS" "$FLOOD" "$NOISY_RPS";
  else "$BIN" "$engine" "$SECS" "$QUIET_RPS" "$FLOOD" "$NOISY_RPS" | tail -n +2; fi | tee -a "$results"
  first=0
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# quiet's p95 under each flood against its p95 alone, per engine.
awk -F'\t' '$1 != "engine" { p95[$1, $2] = $5; engines[$1] = 1 }
  END { for (e in engines) if (p95[e, "alone"] > 0)
    printf "# %s: quiet p95 x%.1f under the flood, x%.1f under the limited flood\n",
      e, p95[e, "flood"] / p95[e, "alone"], p95[e, "flood-limited"] / p95[e, "alone"] }' "$results"
