#!/bin/bash
# Initialises the cluster on first start (superuser POSTGRES_USER, database POSTGRES_DB,
# timescaledb preloaded), then runs postgres in the foreground as the postgres user.
set -euo pipefail
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_pg() { runuser -u postgres -- "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?is needed to initialise the cluster (make up writes one to .env)}"
  pwfile=$(mktemp) && printf '%s' "$POSTGRES_PASSWORD" > "$pwfile" && chown postgres "$pwfile"
  as_pg initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = 256MB
unix_socket_directories = '/run/postgresql'
CONF
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\"" | as_pg postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi
# The superuser's password follows POSTGRES_PASSWORD on every start (as the broker's admin
# password follows .env), so a data volume that outlived its .env still lets the owner in.
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
  quoted=${POSTGRES_PASSWORD//\'/\'\'}
  printf 'ALTER ROLE "%s" PASSWORD '"'"'%s'"'"'\n' "$POSTGRES_USER" "$quoted" |
    as_pg postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec runuser -u postgres -- postgres -D "$PGDATA"
