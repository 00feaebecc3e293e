#!/bin/bash
# Start PostgreSQL for the hub: on the first start, initialise $PGDATA with one database and
# one role (both named $POSTGRES_USER, default jupyterhub) whose password is
# $POSTGRES_PASSWORD, reachable by password (SCRAM) over the private network only.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-jupyterhub}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  printf "listen_addresses = '*'\npassword_encryption = scram-sha-256\n" >> "$PGDATA/postgresql.conf"
  echo "host $user $user all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start >/dev/null
  psql --username=postgres --quiet --set=ON_ERROR_STOP=1 --set=user="$user" \
    --set=password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"user" OWNER :"user";
SQL
  pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
  echo "statbox-postgres: initialised $PGDATA for $user"
fi
unset POSTGRES_PASSWORD
exec postgres -D "$PGDATA"
