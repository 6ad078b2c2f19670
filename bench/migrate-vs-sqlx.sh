#!/usr/bin/env bash
# `silo migrate` against `sqlx migrate run` (sqlx-cli) on the same files and
# the same server, side by side:
#   1. one service: the real-world lemmy corpus (diesel layout), as far as
#      the local PostgreSQL can run it;
#   2. 20 services x 50 migrations (the corpus's first 50): silo migrates
#      all services concurrently, sqlx-cli runs once per service in turn.
# Each side starts from empty databases (made by `silo up`, so both run as
# the same per-service roles). Median of ROUNDS runs.
#
#   bench/migrate-vs-sqlx.sh [ROUNDS]
#   needs: target/release/silo (make bench builds it), sqlx on PATH
#   (cargo install sqlx-cli --no-default-features --features postgres,rustls)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

ROUNDS=${1:-3}
SILO=${SILO_BIN:-$PWD/target/release/silo}
SQLX=${SQLX_BIN:-$(command -v sqlx || echo "$HOME/.cargo/bin/sqlx")}
CORPUS=${SILO_CORPORA:-$PWD/../shared/corpora}/lemmy-migrations
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
[ -x "$SQLX" ] || { echo "sqlx-cli not found: cargo install sqlx-cli --no-default-features --features postgres,rustls" >&2; exit 2; }
[ -d "$CORPUS" ] || { echo "corpus not found at $CORPUS (set SILO_CORPORA)" >&2; exit 2; }

work=$(mktemp -d)
prefix="mb$$_"
trap '(cd "$work/one" 2>/dev/null && "$SILO" destroy --yes >/dev/null 2>&1); (cd "$work/many" 2>/dev/null && "$SILO" destroy --yes >/dev/null 2>&1); rm -rf "$work"' EXIT

since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# sqlx layout of the first N diesel folders: <version>_<name>.up.sql/.down.sql
sqlx_folder() { # N DEST
  mkdir -p "$2"
  ls "$CORPUS" | sort | sed -n "1,${1}p" | while read -r d; do
    v=$(echo "${d%%_*}" | tr -d -); name=${d#*_}
    cp "$CORPUS/$d/up.sql" "$2/${v}_${name}.up.sql"
    [ -f "$CORPUS/$d/down.sql" ] && cp "$CORPUS/$d/down.sql" "$2/${v}_${name}.down.sql"
  done
}
silo_folder() { # N DEST
  mkdir -p "$work/diesel-$1"
  ls "$CORPUS" | sort | sed -n "1,${1}p" | while read -r d; do cp -r "$CORPUS/$d" "$work/diesel-$1/"; done
}

project() { # DIR SERVICES
  mkdir -p "$1"
  { echo '[project]'; echo 'name = "bench"'; echo '[defaults]'; echo 'engine = "postgres"'
    for s in $2; do echo "[services.$s]"; echo "database = \"${prefix}$s\""; echo "role = \"${prefix}${s}_svc\""; done
  } > "$1/silo.toml"
}
url_of() { (cd "$1" && "$SILO" credentials show "$2" --reveal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])'); }
reset() { # DIR: drop and re-create every store, empty
  (cd "$1" && "$SILO" destroy --yes >/dev/null && "$SILO" -j 16 up >/dev/null)
}

# --- 1. one service, the whole corpus as far as this server goes ---------
project "$work/one" "lemmy"
reset "$work/one"
all=$(ls "$CORPUS" | wc -l)
silo_folder "$all" "$work/one"
(cd "$work/one" && "$SILO" migrations import --from diesel "$work/diesel-$all" --service lemmy >/dev/null)
# Find how far this server gets, then give both tools exactly those files.
(cd "$work/one" && "$SILO" migrate >/dev/null 2>&1 || true)
N=$(cd "$work/one" && "$SILO" info --json | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin)["services"][0]["migrations"] if m["state"]=="applied"))')
rm -rf "$work/one/services/lemmy/migrations"
silo_folder "$N" "$work/one"
(cd "$work/one" && "$SILO" migrations import --from diesel "$work/diesel-$N" --service lemmy >/dev/null)
sqlx_folder "$N" "$work/sqlx-$N"
echo "corpus: $N of $all lemmy migrations run on this server" >&2

silo_t=() sqlx_t=()
for r in $(seq 1 "$ROUNDS"); do
  reset "$work/one"; url=$(url_of "$work/one" lemmy)
  t=$(now); "$SQLX" migrate run --source "$work/sqlx-$N" --database-url "$url" >/dev/null; sqlx_t+=("$(since "$t")")
  reset "$work/one"
  t=$(now); (cd "$work/one" && "$SILO" migrate >/dev/null); silo_t+=("$(since "$t")")
  echo "one service, round $r: sqlx-cli ${sqlx_t[-1]}s, silo ${silo_t[-1]}s" >&2
done
one_silo=$(printf '%s\n' "${silo_t[@]}" | median); one_sqlx=$(printf '%s\n' "${sqlx_t[@]}" | median)

# --- 2. 20 services x 50 migrations ---------------------------------------
services=$(seq -f 's%02g' 1 20 | tr '\n' ' ')
project "$work/many" "$services"
reset "$work/many"
silo_folder 50 "$work/many"
sqlx_folder 50 "$work/sqlx-50"
for s in $services; do
  (cd "$work/many" && "$SILO" migrations import --from diesel "$work/diesel-50" --service "$s" >/dev/null)
done
silo_t=() sqlx_t=()
for r in $(seq 1 "$ROUNDS"); do
  reset "$work/many"
  urls=$(for s in $services; do url_of "$work/many" "$s"; done)
  t=$(now)
  for u in $urls; do "$SQLX" migrate run --source "$work/sqlx-50" --database-url "$u" >/dev/null; done
  sqlx_t+=("$(since "$t")")
  reset "$work/many"
  t=$(now); (cd "$work/many" && "$SILO" -j 20 migrate >/dev/null); silo_t+=("$(since "$t")")
  echo "20 services, round $r: sqlx-cli in turn ${sqlx_t[-1]}s, silo ${silo_t[-1]}s" >&2
done
many_silo=$(printf '%s\n' "${silo_t[@]}" | median); many_sqlx=$(printf '%s\n' "${sqlx_t[@]}" | median)

echo "one service, $N lemmy migrations: sqlx-cli ${one_sqlx}s, silo ${one_silo}s, silo/sqlx ratio $(ratio "$one_silo" "$one_sqlx")"
echo "20 services x 50 migrations: sqlx-cli once per service ${many_sqlx}s, silo ${many_silo}s, speed-up $(ratio "$many_sqlx" "$many_silo")x"
