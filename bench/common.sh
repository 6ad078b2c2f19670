# Helpers the benchmarks share; `source bench/common.sh` from the repo root.

# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# silo.toml for N PostgreSQL services s00.. whose databases and roles start
# with PREFIX (so that drop_prefixed removes them): services_manifest N PREFIX
services_manifest() {
  local n=$1 prefix=$2 i
  echo '[project]'; echo 'name = "bench"'
  echo '[defaults]'; echo 'engine = "postgres"'
  for i in $(seq -w 0 $((n - 1))); do
    echo "[services.s$i]"
    echo "database = \"${prefix}s$i\""
    echo "role = \"${prefix}s${i}_svc\""
  done
}

# Drops every database and role on the server (PGHOST...) whose name starts
# with PREFIX: drop_prefixed PREFIX
drop_prefixed() {
  local prefix=$1 db r
  psql -qAt -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE '${prefix}%'" |
    while read -r db; do psql -q -d postgres -c "DROP DATABASE \"$db\" WITH (FORCE)"; done
  psql -qAt -d postgres -c "SELECT rolname FROM pg_roles WHERE rolname LIKE '${prefix}%'" |
    while read -r r; do psql -q -d postgres -c "DROP ROLE \"$r\""; done
}
