#!/usr/bin/env bash
# How silo's per-run work grows with the number of services: `silo status
# --json` (load and validate the manifest, then look at every store) and
# `silo lint --format json` (load it, then read every service's migrations
# folder) on manifests of N SQLite services. The stores are not
# provisioned, so each service costs a file-system look-up and the
# manifest's own work shows. With PROVISION=1, `silo up` provisions every
# store first (its time is shown once) and status opens each of them. Each
# size runs ROUNDS times (default 3); the median wall time is reported,
# with the time per 1,000 services, which stays flat when the work is
# linear.
#
#   bench/manifest-scale.sh [N...]     default: 1000 2000 4000 20000
#   SILO_BIN=target/release/silo ROUNDS=3 PROVISION=0
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

SILO=${SILO_BIN:-$PWD/target/release/silo}
ROUNDS=${ROUNDS:-3}
PROVISION=${PROVISION:-0}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 2000 4000 20000)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# silo.toml for N SQLite services s00.. with default names and folders.
sqlite_manifest() {
  local n=$1 i
  echo '[project]'; echo 'name = "scale"'
  for i in $(seq -w 0 $((n - 1))); do echo "[services.s$i]"; done
}

# Median wall time of ROUNDS runs of `silo ARGS...` in DIR; the exit code
# is ignored (services that are not provisioned make status exit 1).
measure() {
  local dir=$1; shift
  local t0 t1 _
  for _ in $(seq "$ROUNDS"); do
    t0=$(now)
    (cd "$dir" && "$SILO" "$@" >/dev/null 2>&1) || true
    t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | median
}

printf '%8s  %12s  %14s  %12s  %14s\n' services "status (s)" "per 1k (s)" "lint (s)" "per 1k (s)"
for n in "${SIZES[@]}"; do
  dir="$work/n$n"
  mkdir -p "$dir"
  sqlite_manifest "$n" > "$dir/silo.toml"
  if [ "$PROVISION" = 1 ]; then
    t0=$(now)
    (cd "$dir" && "$SILO" -j 16 up >/dev/null 2>&1)
    t1=$(now)
    printf '%8d  up: %.2f s\n' "$n" "$(echo "$t1 - $t0" | bc -l)"
  fi
  status=$(measure "$dir" status --json)
  lint=$(measure "$dir" lint --format json)
  printf '%8d  %12.2f  %14.3f  %12.2f  %14.3f\n' "$n" "$status" \
    "$(echo "$status * 1000 / $n" | bc -l)" "$lint" "$(echo "$lint * 1000 / $n" | bc -l)"
done
