#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on localhost, starting (or installing) them if needed.
# Used by `make test` and by .ci/run; safe to run again when both are already up.
set -euo pipefail

PG_PORT=${PGPORT:-5432}
TEST_URL_FILE="$(cd "$(dirname "$0")/.." && pwd)/.test-database-url"

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local packages=()
  have pg_ctlcluster || packages+=(postgresql)
  have redis-server || packages+=(redis-server)
  if [ ${#packages[@]} -gt 0 ]; then
    echo "services: installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  fi
}

start_postgres() {
  if pg_isready -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then return; fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "services: starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

# The tests log in over TCP as a role of their own with a password, so the machine's
# pg_hba.conf is left as it is (Debian's asks for a password on 127.0.0.1: scram-sha-256).
# The role is made through the local socket as the postgres OS user (peer authentication);
# its password is random, kept in $TEST_URL_FILE (owner-only, git-ignored), which
# tests/helpers.py reads when TEST_DATABASE_URL is unset. Safe to run again.
ensure_test_role() {
  if [ -n "${TEST_DATABASE_URL:-}" ]; then return; fi  # the developer chose a database
  local password
  if [ -s "$TEST_URL_FILE" ]; then
    password=$(sed -n 's|^postgresql+psycopg://signup_tests:\([0-9a-f]*\)@.*|\1|p' "$TEST_URL_FILE")
  fi
  if [ -z "${password:-}" ]; then
    password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  fi
  # CREATEDB: the tests drop and create their database; CREATEROLE: the least-privilege
  # migration makes signup_app and its tests a login member. No superuser.
  as_root runuser -u postgres -- psql -q -X -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres <<SQL
SELECT 'CREATE ROLE signup_tests' WHERE NOT EXISTS
  (SELECT FROM pg_roles WHERE rolname = 'signup_tests') \\gexec
ALTER ROLE signup_tests WITH LOGIN CREATEDB CREATEROLE PASSWORD '$password';
-- A test database left by a run under another role (before this script made signup_tests)
-- is handed over, so the tests may drop and recreate it.
SELECT 'ALTER DATABASE signup_test OWNER TO signup_tests' FROM pg_database
  WHERE datname = 'signup_test' \\gexec
SQL
  (umask 077 && printf 'postgresql+psycopg://signup_tests:%s@127.0.0.1:%s/signup_test\n' \
    "$password" "$PG_PORT" >"$TEST_URL_FILE")
  echo "services: tests log in as signup_tests (URL in ${TEST_URL_FILE##*/})"
}

# Earlier versions of this script put trust lines in pg_hba.conf: say so, never edit it here.
warn_old_trust_lines() {
  local hba
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    if [ -r "$hba" ] && grep -q "# signup-tests" "$hba"; then
      echo "services: $hba still has the trust lines an earlier 'make test' added; remove them:" >&2
      echo "  sudo sed -i '/# signup-tests\$/d' $hba && sudo pg_ctlcluster <version> main reload" >&2
    fi
  done
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  echo "services: starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

wait_for() {
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "services: $what did not come up" >&2
  return 1
}

start_rabbitmq() {
  # Optional: only tests/e2e/test_rabbitmq_broker.py needs it, and it skips without it.
  have rabbitmq-server || return 0
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return 0; fi
  echo "services: starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for RabbitMQ bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' || true
}

install_missing
start_postgres
start_redis
wait_for PostgreSQL pg_isready -h 127.0.0.1 -p "$PG_PORT" -q
ensure_test_role
warn_old_trust_lines
wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
start_rabbitmq
echo "services: PostgreSQL and Redis are up"
