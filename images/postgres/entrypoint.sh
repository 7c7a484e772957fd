#!/usr/bin/env bash
#
# Starts PostgreSQL 15 for the fleet's log service (images/postgres). On an
# empty data directory it first creates the cluster: the superuser
# POSTGRES_USER (default gestor) with the password read from
# POSTGRES_PASSWORD_FILE (a Swarm secret; required), the database POSTGRES_DB
# (default gestor), password (SCRAM) authentication for every TCP client and
# trust only on the Unix socket inside this container. A data directory that
# already holds a cluster is used as it is: the password is never reset.
set -euo pipefail

readonly PGBIN=/usr/lib/postgresql/15/bin
readonly PGDATA="${PGDATA:-/var/lib/postgresql/data}"
readonly PGUSER_NAME="${POSTGRES_USER:-gestor}"
readonly PGDB_NAME="${POSTGRES_DB:-gestor}"

err() {
  printf 'gestor-postgres: %s\n' "$*" >&2
}

init_cluster() {
  local pwfile="${POSTGRES_PASSWORD_FILE:-}"
  if [[ -z "${pwfile}" || ! -s "${pwfile}" ]]; then
    err "POSTGRES_PASSWORD_FILE must name a non-empty file (the password of ${PGUSER_NAME}); got '${pwfile}'"
    return 1
  fi
  "${PGBIN}/initdb" --pgdata="${PGDATA}" --username="${PGUSER_NAME}" --pwfile="${pwfile}" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  printf 'host all all all scram-sha-256\n' >>"${PGDATA}/pg_hba.conf"
  # The database, made on a server that listens on nothing but its socket.
  "${PGBIN}/pg_ctl" --pgdata="${PGDATA}" --wait --silent \
    -o "-c listen_addresses='' -k /tmp" start
  "${PGBIN}/createdb" --host=/tmp --username="${PGUSER_NAME}" "${PGDB_NAME}"
  "${PGBIN}/pg_ctl" --pgdata="${PGDATA}" --wait --silent stop
  echo "gestor-postgres: created the cluster, user ${PGUSER_NAME}, database ${PGDB_NAME}"
}

main() {
  if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
    init_cluster
  fi
  # exec: postgres is PID 1 and gets docker stop's signal (SIGINT: a fast shutdown).
  exec "${PGBIN}/postgres" -D "${PGDATA}" -c listen_addresses='*' -k /tmp "$@"
}

main "$@"
