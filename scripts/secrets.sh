#!/usr/bin/env bash
# The local cluster's passwords, generated on the first `make up` (or `make test`) into
# .env (mode 600, not in git), never shipped with the project. docker compose reads .env
# for the services' settings; the tests read it for the admin principal.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
touch .env
chmod 600 .env
add() {  # add NAME: a random secret, unless .env has it already
  grep -q "^$1=" .env || printf '%s=%s\n' "$1" "$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')" >> .env
}
add METRICLOOM_KAFKA_ADMIN_PASSWORD
add METRICLOOM_KAFKA_WORKER_PASSWORD
add METRICLOOM_DEMO_PASSWORD
add METRICLOOM_DASHBOARD_KAFKA_PASSWORD  # the dashboard's own principal (reads dead letters)
add METRICLOOM_DB_ADMIN_PASSWORD  # TimescaleDB's superuser, the schema's owner (migrations)
add METRICLOOM_DB_APP_PASSWORD    # metricloom_app, the workers' rows-only role
# the keys provider tokens are encrypted with at rest: id:base64 of 32 random bytes
grep -q '^METRICLOOM_TOKEN_KEYS=' .env ||
  printf 'METRICLOOM_TOKEN_KEYS=local:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >> .env
