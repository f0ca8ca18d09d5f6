#!/usr/bin/env bash
# The tests need the real local PostgreSQL (127.0.0.1:5432, database `test`, trust auth).
# Start it if it is installed but stopped; fail loudly, never skip, if it cannot be reached.
set -euo pipefail
if pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 60); do
  pg_isready -h 127.0.0.1 -q 2>/dev/null && exit 0
  sleep 1
done
echo "PostgreSQL is not reachable on 127.0.0.1:5432: the tests need it (they never skip)" >&2
exit 1
