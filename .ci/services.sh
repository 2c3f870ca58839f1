#!/usr/bin/env bash
# Make sure the real PostgreSQL and Redis the tests use are up; start them if installed but
# stopped; fail loudly (never skip) when they cannot be had.
set -u
pg_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 5432)); sys.exit(0)
except OSError:
    sys.exit(1)
PY
}
redis_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 6379)); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "FATAL: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2; exit 1; }
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  redis_up || { echo "FATAL: Redis is not reachable on 127.0.0.1:6379 and could not be started" >&2; exit 1; }
fi
# PostgreSQL here runs with autovacuum off, and each test run creates and drops about a thousand
# schemas: without this their dead catalog rows pile up (1 GB of pg_attribute was seen) and slow
# every new connection, tests and benches alike. Plain VACUUM only marks the space reusable.
if command -v psql >/dev/null 2>&1; then
  for table in pg_attribute pg_depend pg_class pg_type pg_index pg_constraint pg_attrdef pg_statistic pg_namespace; do
    psql -h 127.0.0.1 -U postgres -d test -qX -c "VACUUM pg_catalog.$table" >/dev/null 2>&1 || true
  done
fi
echo "PostgreSQL and Redis are up" >&2
