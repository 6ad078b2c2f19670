#!/usr/bin/env bash
# `silo lint` reads migration files and never a database: silo-lint must
# not depend on sqlx or tokio, nor on the crates that bring them
# (silo-store, silo-migrate). The migration-file model it needs lives in
# silo-migration-files. Fails (exit 1) naming the crates when one is back,
# with the path that brings it.
set -euo pipefail

cargo="${CARGO:-cargo}"
cd "$(dirname "$0")/.."

forbidden='^(sqlx|sqlx-[a-z]+|tokio|tokio-[a-z]+|silo-store|silo-migrate) v'
tree="$("$cargo" tree -p silo-lint -e normal --prefix none)"
found="$(printf '%s\n' "$tree" | sed 's/ (\*)$//' | grep -E "$forbidden" | sort -u || true)"
if [ -n "$found" ]; then
  echo "error: silo-lint depends on database crates; the linter must build without them:" >&2
  printf '%s\n' "$found" | sed 's/^/  /' >&2
  first="$(printf '%s\n' "$found" | head -n1 | cut -d' ' -f1)"
  echo "the path to $first:" >&2
  "$cargo" tree -p silo-lint -e normal -i "$first" >&2 || true
  echo "hint: take what silo-lint needs from silo-migration-files (no database) instead" >&2
  exit 1
fi
echo "silo-lint builds without a database crate ($(printf '%s\n' "$tree" | sed 's/ (\*)$//' | sort -u | wc -l) crates)"
