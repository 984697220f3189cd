#!/usr/bin/env bash
# Minimal re-implementation of the official postgres entrypoint's contract.
set -euo pipefail
# VAR from VAR_FILE (a Docker/Swarm secret), as upstream's file_env: one or the other, not both.
file_env() {
  local var=$1 file_var="${1}_FILE"
  [[ -n "${!file_var:-}" ]] || return 0
  [[ -z "${!var:-}" ]] || { echo "error: both $var and $file_var are set (but are exclusive)" >&2; exit 1; }
  export "$var"="$(<"${!file_var}")"
  unset "$file_var"
}
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER
file_env POSTGRES_DB
if [[ "${1:-}" == "postgres" && "$(id -u)" == "0" ]]; then
  mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi
if [[ "${1:-}" == "postgres" && ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required (the official image refuses to start without it)}"
  user="${POSTGRES_USER:-postgres}"; db="${POSTGRES_DB:-$user}"
  pwfile=$(mktemp); printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf "host all all all scram-sha-256\n" >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  # A socket-only temporary server, as upstream: TCP readiness means init is over.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start >/dev/null
  if [[ "$db" != "postgres" ]]; then
    psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -q -c "CREATE DATABASE \"$db\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) bash "$f" ;;
      *.sql) psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$db" -q -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$@"
