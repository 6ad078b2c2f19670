#!/usr/bin/env bash
# Backups: `silo backup` and `silo restore` side by side with the engines'
# own tools on the same generated store, in one run.
#
#   postgres  one PostgreSQL store of about SIZE_MB (two tables, a foreign
#             key, four indexes): `silo backup` against `pg_dump -Fc` of
#             the same database, and `silo restore --into` against
#             `createdb` + `pg_restore` of pg_dump's file into a fresh
#             database. Ratio silo / plain; goal <= 1.10. silo restores
#             with `pg_restore --jobs` (RESTORE_JOBS, silo's default: one
#             per CPU, 2 to 4), so plain `pg_restore -j RESTORE_JOBS` is
#             timed too, and compared with silo.
#   jobs      five stores of SIZE_MB / 5 each (JOBS_ENGINE, PostgreSQL by
#             default): `silo backup -j 5` against the five one after
#             another (`silo backup -j 1`). Speed-up (-j 1) / (-j 5); goal
#             >= 1.5 on a 2-core machine. On PostgreSQL, also five plain
#             `pg_dump -Fc` one after another and all at once, at each
#             compression level in ZLEVELS: what the machine itself gains
#             from running dumps side by side (the physical reference).
#   sqlite    one SQLite store of about SIZE_MB: `silo backup` against
#             `sqlite3 FILE ".backup OUT"` (the same page copy silo makes),
#             and against what silo did before (`VACUUM INTO`, `PRAGMA
#             integrity_check` of the copy, sha256sum, one after another)
#             done by hand with sqlite3.
#
# silo's side is the whole process, start to exit: the dump or copy plus
# what a silo backup adds (checksums of every file, row counts and schema
# snapshot, integrity check on SQLite; on restore, checks before and
# after). Every time is the median of RUNS runs (default 3), the two sides
# alternating, the page cache warm for both (the store is read once
# before the first run).
#
#   bench/backup.sh [SIZE_MB]              default 1024 (or SIZE_MB=...)
#   PARTS="postgres jobs sqlite" RUNS=3 JOBS_ENGINE=postgres|sqlite
#   SILO_BIN=target/release/silo
#   SILO_BEFORE=/path/to/an/older/silo   adds its runs beside, same store
#   ZLEVELS="default 1"   pg_dump compression levels of the plain dumps
#   RESTORE_JOBS=N        silo restore --restore-jobs N, and plain pg_restore -j N
#   COMPRESSION=N         silo's backups at `compression = N` (pg_dump -Z N)
#   SILO_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
#   BENCH_LOGS=DIR keeps silo's output of every run
#
# Everything it makes carries a name unique to the run (databases, roles,
# a temporary folder) and is removed at exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

SIZE_MB=${1:-${SIZE_MB:-1024}}
PARTS=${PARTS-"postgres jobs sqlite"}
RUNS=${RUNS:-3}
JOBS_ENGINE=${JOBS_ENGINE:-postgres}
COMPRESSION=${COMPRESSION:-}
SILO=${SILO_BIN:-$PWD/target/release/silo}
BEFORE=${SILO_BEFORE:-}
ZLEVELS=${ZLEVELS:-default}
RESTORE_JOBS=${RESTORE_JOBS:-$(n=$(nproc); echo $(( n < 2 ? 2 : n > 4 ? 4 : n )))}
export SILO_PG_ADMIN_URL=${SILO_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGHOST PGPORT PGUSER
unset SILO_ENGINE SILO_DATA_DIR SILO_MANIFEST SILO_JOBS

[ -x "$SILO" ] || { echo "error: $SILO is missing: make bench-backup builds it" >&2; exit 2; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "error: SILO_BEFORE=$BEFORE is not an executable" >&2; exit 2; }
for tool in psql pg_dump pg_restore createdb sqlite3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not on PATH" >&2; exit 2; }
done

work=$(mktemp -d)
prefix="silobk$$_"
cleanup() {
  trap - EXIT INT TERM
  drop_prefixed "$prefix" 2>/dev/null || true
  if [ -n "${BENCH_LOGS:-}" ]; then mkdir -p "$BENCH_LOGS" && cp "$work"/*.log "$BENCH_LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; exit 130' INT TERM

# Rows of the `events` table per MB of store, measured (with its indexes
# and the accounts, 1 row in 20): about 270 bytes a row on PostgreSQL, 220
# on SQLite.
rows_per_mb() { if [ "$1" = postgres ]; then echo 3900; else echo 4700; fi; }

# silo.toml: services named $3.. on ENGINE, PostgreSQL names prefixed.
manifest() {
  local engine=$1 project=$2 s; shift 2
  echo '[project]'; echo "name = \"$project\""
  echo '[defaults]'; echo "engine = \"$engine\""
  [ -z "$COMPRESSION" ] || { echo '[defaults.backup]'; echo "compression = $COMPRESSION"; }
  for s in "$@"; do
    echo "[services.$s]"
    echo "database = \"${prefix}$s\""; echo "role = \"${prefix}${s}_svc\""
  done
}

# A fresh project in $work/<name> with the services given, provisioned.
project() {
  local engine=$1 name=$2; shift 2
  mkdir -p "$work/$name"
  manifest "$engine" "$name" "$@" >"$work/$name/silo.toml"
  (cd "$work/$name" && "$SILO" up >"$work/$name.up.log" 2>&1) ||
    { cat "$work/$name.up.log" >&2; return 1; }
}

# A service's variable from its credentials file (<SERVICE>_DB_<FIELD>).
credential() {
  local dir=$1 svc=$2 field=$3
  (set -a; source "$dir/.silo/secrets/$svc.env"; v="${svc^^}_DB_$field"; printf '%s' "${!v}")
}

# Fills a PostgreSQL store with ROWS events as the service's own role (it
# owns its tables, as after `silo migrate`): fill_pg DB ROLE ROWS
fill_pg() {
  local db=$1 role=$2 rows=$3
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
SET ROLE "$role";
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE events (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id),
  kind text NOT NULL,
  created_at timestamptz NOT NULL,
  payload text NOT NULL
);
INSERT INTO accounts
  SELECT g, 'user' || g || '@example.com', '2026-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, greatest($rows / 20, 1)) g;
INSERT INTO events
  SELECT g, 1 + g % greatest($rows / 20, 1), (ARRAY['created','paid','shipped','refunded'])[1 + g % 4],
         '2026-01-01'::timestamptz + g * interval '1 second',
         md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) || md5((g + 3)::text)
  FROM generate_series(1, $rows) g;
CREATE UNIQUE INDEX accounts_email ON accounts (email);
CREATE INDEX events_account_time ON events (account_id, created_at);
CREATE INDEX events_kind ON events (kind);
ANALYZE accounts;
ANALYZE events;
SQL
}

# The same tables in a SQLite store: fill_sqlite FILE ROWS
fill_sqlite() {
  local file=$1 rows=$2 accounts=$(( $2 / 20 > 0 ? $2 / 20 : 1 ))
  sqlite3 -bail "$file" >/dev/null <<SQL
PRAGMA foreign_keys = ON;
CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts (id),
  kind TEXT NOT NULL,
  created_at TEXT NOT NULL,
  payload TEXT NOT NULL
);
BEGIN;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $accounts)
  INSERT INTO accounts SELECT n, 'user' || n || '@example.com', datetime('2026-01-01', '+' || n || ' minutes') FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $rows)
  INSERT INTO events SELECT n, 1 + n % $accounts, CASE n % 4 WHEN 0 THEN 'created' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'refunded' END,
    datetime('2026-01-01', '+' || n || ' seconds'), lower(hex(randomblob(64))) FROM g;
COMMIT;
CREATE UNIQUE INDEX accounts_email ON accounts (email);
CREATE INDEX events_account_time ON events (account_id, created_at);
CREATE INDEX events_kind ON events (kind);
PRAGMA wal_checkpoint(TRUNCATE);
SQL
}

# Drops every database and role of the run but the store's own: what a
# restore made, whatever it named it.
drop_restored() {
  local keep_db=$1 keep_role=$2 x
  psql -X -qAt -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE '${prefix}%' AND datname <> '$keep_db'" |
    while read -r x; do psql -X -q -d postgres -c "DROP DATABASE \"$x\" WITH (FORCE)"; done
  psql -X -qAt -d postgres -c "SELECT rolname FROM pg_roles WHERE rolname LIKE '${prefix}%' AND rolname <> '$keep_role'" |
    while read -r x; do psql -X -q -d postgres -c "DROP ROLE \"$x\""; done
}

mb() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }
pg_size() { psql -X -qAt -d postgres -c "SELECT pg_database_size('$1')"; }
file_size() { stat -c %s "$1"; }

# Runs a command (its output appended to $work/<log>.log) and prints its
# wall time in seconds: timed LOG COMMAND...
timed() {
  local log=$work/$1.log t0 t1; shift
  t0=$(now)
  if ! "$@" >>"$log" 2>&1; then
    echo "error: $* failed:" >&2; tail -n 20 "$log" >&2; return 1
  fi
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'
}

# silo in a project folder: in DIR silo ARGS...
in_dir() { local dir=$1; shift; (cd "$dir" && "$@"); }

# The row of one comparison: label, silo's median, the peer's, the ratio.
row() {
  local label=$1 silo_s=$2 peer_s=$3 peer=$4 goal=$5
  printf '%-34s %9.2fs %9.2fs  %-22s %6s  goal %s\n' "$label" "$silo_s" "$peer_s" "$peer" \
    "$(awk -v a="$silo_s" -v b="$peer_s" 'BEGIN {printf "%.2f", a / b}')" "$goal"
}
header() { printf '%-34s %10s %10s  %-22s %6s\n' "$1" silo peer "(peer)" ratio; }

# --- PostgreSQL: silo backup / restore against pg_dump -Fc / pg_restore ---
part_postgres() {
  local dir=$work/pg db=${prefix}big role=${prefix}big_svc rows=$(( SIZE_MB * $(rows_per_mb postgres) ))
  local r silo_b=() plain_b=() silo_r=() plain_r=() plain_rj=() old_b=() old_r=() dump=$work/plain.dump store
  echo "== postgres: generating $rows events (~${SIZE_MB} MB) ..."
  project postgres pg big
  fill_pg "$db" "$role" "$rows"
  echo "   store: $(mb "$(pg_size "$db")") MB (pg_database_size)"
  pg_dump -Fc -d "$db" -f "$dump" # warm the cache for both sides
  for r in $(seq 1 "$RUNS"); do
    rm -rf "$dir/.silo/backups/big"
    silo_b+=("$(timed pg_silo_backup in_dir "$dir" "$SILO" backup big)")
    rm -f "$dump"
    plain_b+=("$(timed pg_plain_backup pg_dump -Fc -d "$db" -f "$dump")")

    silo_r+=("$(timed pg_silo_restore in_dir "$dir" "$SILO" restore big --into "${prefix}r$r" --restore-jobs "$RESTORE_JOBS")")
    drop_restored "$db" "$role"
    if [ -n "$BEFORE" ]; then
      rm -rf "$dir/.silo/backups/big"
      old_b+=("$(timed pg_before_backup in_dir "$dir" "$BEFORE" backup big)")
      old_r+=("$(timed pg_before_restore in_dir "$dir" "$BEFORE" restore big --into "${prefix}o$r")")
      drop_restored "$db" "$role"
    fi
    plain_r+=("$(timed pg_plain_restore sh -c "createdb -O '$role' '${prefix}plain$r' && pg_restore -d '${prefix}plain$r' '$dump'")")
    psql -X -q -d postgres -c "DROP DATABASE \"${prefix}plain$r\" WITH (FORCE)"
    plain_rj+=("$(timed pg_plain_restore_jobs sh -c "createdb -O '$role' '${prefix}plainj$r' && pg_restore -j $RESTORE_JOBS -d '${prefix}plainj$r' '$dump'")")
    psql -X -q -d postgres -c "DROP DATABASE \"${prefix}plainj$r\" WITH (FORCE)"
  done
  local silo_size plain_size
  silo_size=$(du -sb "$dir/.silo/backups/big" | cut -f1)
  plain_size=$(file_size "$dump")
  echo "   backup size: silo $(mb "$silo_size") MB, pg_dump -Fc $(mb "$plain_size") MB"
  header "postgres, ${SIZE_MB} MB, median of $RUNS"
  row "backup" "$(printf '%s\n' "${silo_b[@]}" | median)" "$(printf '%s\n' "${plain_b[@]}" | median)" "pg_dump -Fc" "<= 1.10"
  row "restore (fresh database)" "$(printf '%s\n' "${silo_r[@]}" | median)" "$(printf '%s\n' "${plain_r[@]}" | median)" "createdb + pg_restore" "<= 1.10"
  row "restore, vs pg_restore -j $RESTORE_JOBS" "$(printf '%s\n' "${silo_r[@]}" | median)" "$(printf '%s\n' "${plain_rj[@]}" | median)" "createdb + pg_restore -j" "-"
  row "pg_restore -j $RESTORE_JOBS vs pg_restore" "$(printf '%s\n' "${plain_rj[@]}" | median)" "$(printf '%s\n' "${plain_r[@]}" | median)" "createdb + pg_restore" "-"
  if [ -n "$BEFORE" ]; then
    row "backup, before" "$(printf '%s\n' "${old_b[@]}" | median)" "$(printf '%s\n' "${plain_b[@]}" | median)" "pg_dump -Fc" "<= 1.10"
    row "restore (fresh database), before" "$(printf '%s\n' "${old_r[@]}" | median)" "$(printf '%s\n' "${plain_r[@]}" | median)" "createdb + pg_restore" "<= 1.10"
  fi
  drop_prefixed "$prefix"
  rm -rf "$dir" "$dump"
}

# The row of a speed-up: label, the times side by side (space separated),
# the times in turn.
speedup() {
  local t5 t1
  t5=$(printf '%s\n' $2 | median)
  t1=$(printf '%s\n' $3 | median)
  printf '%-34s %9.2fs %9.2fs  speed-up %.2fx (goal >= 1.5x)\n' \
    "$1" "$t5" "$t1" "$(awk -v a="$t1" -v b="$t5" 'BEGIN {print a / b}')"
}

# --- Five services: silo backup -j 5 against -j 1 ---
part_jobs() {
  local dir=$work/jobs each=$(( SIZE_MB / 5 )) rows s r z one=() five=() old1=() old5=() total=0
  rows=$(( each * $(rows_per_mb "$JOBS_ENGINE") ))
  echo "== jobs: five $JOBS_ENGINE stores of $rows events (~${each} MB each) ..."
  project "$JOBS_ENGINE" jobs s0 s1 s2 s3 s4
  for s in s0 s1 s2 s3 s4; do
    if [ "$JOBS_ENGINE" = postgres ]; then
      fill_pg "${prefix}$s" "${prefix}${s}_svc" "$rows"
      total=$(( total + $(pg_size "${prefix}$s") ))
    else
      fill_sqlite "$(credential "$dir" "$s" PATH)" "$rows"
      total=$(( total + $(file_size "$(credential "$dir" "$s" PATH)") ))
    fi
  done
  echo "   stores: $(mb "$total") MB in all"
  in_dir "$dir" "$SILO" -j 5 backup >/dev/null 2>&1 # warm the cache
  for r in $(seq 1 "$RUNS"); do
    rm -rf "$dir/.silo/backups"
    five+=("$(timed jobs_5 in_dir "$dir" "$SILO" -j 5 backup)")
    rm -rf "$dir/.silo/backups"
    one+=("$(timed jobs_1 in_dir "$dir" "$SILO" -j 1 backup)")
    if [ -n "$BEFORE" ]; then
      rm -rf "$dir/.silo/backups"
      old5+=("$(timed jobs_before_5 in_dir "$dir" "$BEFORE" -j 5 backup)")
      rm -rf "$dir/.silo/backups"
      old1+=("$(timed jobs_before_1 in_dir "$dir" "$BEFORE" -j 1 backup)")
    fi
  done
  speedup "jobs ($JOBS_ENGINE), -j 5 vs -j 1" "${five[*]}" "${one[*]}"
  [ -z "$BEFORE" ] || speedup "jobs ($JOBS_ENGINE), before" "${old5[*]}" "${old1[*]}"
  if [ "$JOBS_ENGINE" = postgres ]; then
    for z in $ZLEVELS; do
      local zarg=() seq=() par=()
      [ "$z" = default ] || zarg=("-Z$z")
      for r in $(seq 1 "$RUNS"); do
        rm -f "$work"/jobs_*.dump
        seq+=("$(timed jobs_plain_seq bash -c "for s in s0 s1 s2 s3 s4; do pg_dump -Fc ${zarg[*]} -d ${prefix}\$s -f $work/jobs_\$s.dump || exit 1; done")")
        rm -f "$work"/jobs_*.dump
        par+=("$(timed jobs_plain_par bash -c "for s in s0 s1 s2 s3 s4; do pg_dump -Fc ${zarg[*]} -d ${prefix}\$s -f $work/jobs_\$s.dump & pids+=(\$!); done; for p in \${pids[@]}; do wait \$p || exit 1; done")")
      done
      echo "   5 pg_dump -Fc files at -Z$z: $(mb "$(cat "$work"/jobs_*.dump | wc -c)") MB"
      speedup "5 plain pg_dumps -Z$z, at once" "${par[*]}" "${seq[*]}"
      rm -f "$work"/jobs_*.dump
    done
  fi
  drop_prefixed "$prefix"
  rm -rf "$dir"
}

# --- SQLite: silo backup against sqlite3 .backup ---
part_sqlite() {
  local dir=$work/sqlite rows=$(( SIZE_MB * $(rows_per_mb sqlite) )) file r silo_b=() plain_b=() same_b=() old_b=() out=$work/plain.sqlite3
  echo "== sqlite: generating $rows events (~${SIZE_MB} MB) ..."
  project sqlite sqlite big
  file=$(credential "$dir" big PATH)
  fill_sqlite "$file" "$rows"
  echo "   store: $(mb "$(file_size "$file")") MB"
  cat "$file" >/dev/null # warm the cache for both sides
  for r in $(seq 1 "$RUNS"); do
    rm -rf "$dir/.silo/backups/big"
    silo_b+=("$(timed sqlite_silo_backup in_dir "$dir" "$SILO" backup big)")
    rm -f "$out"
    plain_b+=("$(timed sqlite_plain_backup sqlite3 "$file" ".backup '$out'")")
    rm -f "$out"
    same_b+=("$(timed sqlite_same_steps sh -c "sqlite3 '$file' \"VACUUM INTO '$out'\" && sqlite3 '$out' 'PRAGMA integrity_check' && sha256sum '$out'")")
    if [ -n "$BEFORE" ]; then
      rm -rf "$dir/.silo/backups/big"
      old_b+=("$(timed sqlite_before_backup in_dir "$dir" "$BEFORE" backup big)")
    fi
  done
  header "sqlite, ${SIZE_MB} MB, median of $RUNS"
  row "backup" "$(printf '%s\n' "${silo_b[@]}" | median)" "$(printf '%s\n' "${plain_b[@]}" | median)" "sqlite3 .backup" "<= 1.10"
  row "backup, VACUUM INTO by hand" "$(printf '%s\n' "${silo_b[@]}" | median)" "$(printf '%s\n' "${same_b[@]}" | median)" "VACUUM INTO+check+sha" "-"
  [ -z "$BEFORE" ] || row "backup, before" "$(printf '%s\n' "${old_b[@]}" | median)" "$(printf '%s\n' "${plain_b[@]}" | median)" "sqlite3 .backup" "<= 1.10"
  rm -rf "$dir" "$out"
}

echo "silo $("$SILO" --version | awk '{print $2}')${BEFORE:+ (before: $BEFORE)}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), PostgreSQL $(psql -X -qAt -d postgres -c 'SHOW server_version'), SQLite $(sqlite3 --version | awk '{print $1}')"
for part in $PARTS; do
  case $part in
    postgres) part_postgres ;;
    jobs) part_jobs ;;
    sqlite) part_sqlite ;;
    *) echo "error: unknown part $part (postgres, jobs, sqlite)" >&2; exit 2 ;;
  esac
done
