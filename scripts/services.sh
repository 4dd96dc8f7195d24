#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on localhost, starting (or installing) them if needed.
# Used by `make test` and by .ci/run; safe to run again when both are already up.
set -euo pipefail

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
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return; fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "services: starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  # Tests connect as postgres over TCP without a password, as on the developers' machines.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! as_root grep -q "signup-tests" "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust # signup-tests\nhost all all ::1/128 trust # signup-tests' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
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
wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
start_rabbitmq
echo "services: PostgreSQL and Redis are up"
