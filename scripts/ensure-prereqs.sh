#!/usr/bin/env bash
# Makes sure what `make test` needs is here: the Rust toolchain, libclang,
# the PostgreSQL server binaries, a PostgreSQL server answering on
# 127.0.0.1:5432 (started if it is installed but down), and the
# nats-server binary (the nats bus's tests start servers of their own),
# moto's S3 server (the S3 destination's tests start their own), and
# pgbackrest (the point-in-time recovery tests run it).
# With --build, only what building silo needs (`make demo` runs on SQLite).
set -euo pipefail

build_only=false
[ "${1:-}" = "--build" ] && build_only=true

fail() { echo "error: $*" >&2; exit 2; }

command -v cargo >/dev/null || fail "cargo not found: install Rust (https://rustup.rs)"

# pg_query (PostgreSQL's own parser, used to split and lint SQL) runs
# bindgen at build time, which needs libclang.
# (libclang-cpp, which other LLVM packages bring, is not enough.)
have_libclang() {
  ldconfig -p 2>/dev/null | grep -Eq '\blibclang(-[0-9.]+)?\.so' ||
    compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
    compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null
}
if ! have_libclang; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "libclang is missing; installing libclang-dev" >&2
    (apt-get install -y -qq libclang-dev >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libclang-dev >/dev/null; }) ||
      fail "could not install libclang-dev"
  else
    fail "libclang not found: install libclang-dev (Debian/Ubuntu) or clang (it is needed to build pg_query)"
  fi
fi

$build_only && exit 0

for tool in pg_config pg_isready psql; do
  command -v "$tool" >/dev/null || fail "$tool not found: install PostgreSQL (Debian: apt-get install postgresql postgresql-client)"
done
[ -x "$(pg_config --bindir)/initdb" ] || fail "initdb not found in $(pg_config --bindir): install the PostgreSQL server package"
# `silo connect` runs the engine's own client; the BattleScope flow test
# reads SQLite stores through it.
command -v sqlite3 >/dev/null || fail "sqlite3 not found: install it (Debian: apt-get install sqlite3)"
# util-linux `script` gives a CLI test a terminal, to prove that destructive
# commands ask there.
command -v script >/dev/null || fail "script not found: install util-linux"
# The nats bus's tests start throwaway nats-servers (JetStream, 2.9 or newer).
if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ] && [ -z "${SILO_TEST_NATS_SERVER:-}" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "nats-server is missing; installing it" >&2
    (apt-get install -y -qq nats-server >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq nats-server >/dev/null; }) ||
      fail "could not install nats-server"
  else
    fail "nats-server not found: install it (Debian: apt-get install nats-server) or set SILO_TEST_NATS_SERVER"
  fi
fi

# The S3 destination's tests start throwaway S3-compatible servers: moto in
# server mode, from PyPI. Without it (and no pip to install it) those tests
# say why and skip, except under CI, where they fail.
if [ -z "${SILO_TEST_MOTO_SERVER:-}" ] && ! python3 -c 'import moto.server, flask_cors' >/dev/null 2>&1; then
  if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
    echo "moto's S3 server is missing; installing moto[server]" >&2
    python3 -m pip install --quiet 'moto[server]' >/dev/null ||
      echo "warning: could not install moto[server]; the S3 tests will skip (pip install 'moto[server]')" >&2
  else
    echo "warning: python3 with pip not found; the S3 tests will skip (pip install 'moto[server]')" >&2
  fi
fi

# The pgBackRest method's tests start throwaway servers that archive WAL
# into a repository with the pgbackrest binary (Debian packages 2.45).
# Without it (and no apt-get to install it) those tests say why and skip,
# except under CI, where they fail.
if ! command -v pgbackrest >/dev/null && [ -z "${SILO_PGBACKREST:-}" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "pgbackrest is missing; installing it" >&2
    (apt-get install -y -qq pgbackrest >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq pgbackrest >/dev/null; }) ||
      echo "warning: could not install pgbackrest; the pgBackRest tests will skip (apt-get install pgbackrest)" >&2
  else
    echo "warning: pgbackrest not found; the pgBackRest tests will skip (Debian: apt-get install pgbackrest)" >&2
  fi
fi

host=127.0.0.1 port=5432
if ! pg_isready -q -h "$host" -p "$port"; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "PostgreSQL is down; starting cluster $version/main" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h "$host" -p "$port" && break
    sleep 1
  done
  pg_isready -q -h "$host" -p "$port" || fail "PostgreSQL does not answer on $host:$port; start it, or point SILO_TEST_PG_ADMIN_URL at a server"
fi
