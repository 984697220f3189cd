# Sourced by lib-swarm.sh: the database on a Swarm, reached from one-off containers on the
# stack's network (the database's task may run on another node). These take the place of
# lib.sh's compose versions. The password goes in on stdin, never in argv or the environment.
# shellcheck shell=bash

# The database's user and name, as the stack file defaults them.
pg_user() { local v; v=$(env_get POSTGRES_USER); echo "${v:-slipway}"; }
# POSTGRES_DB in the caller's environment wins, as compose's interpolation lets it (the rehearsal
# points the migration tools at its copy that way).
pg_db() { local v; v=$(env_get POSTGRES_DB); echo "${POSTGRES_DB:-${v:-slipway}}"; }

# The postgres image the stack runs, for its client tools.
postgres_image() {
  local image
  image=$(env_get POSTGRES_IMAGE)
  # shellcheck disable=SC2016  # a literal ${ to match in the stack file
  echo "${image:-$(sed -n 's/.*\${POSTGRES_IMAGE:-\([^}]*\)}.*/\1/p' "$SLIPWAY_DIR/$STACK_FILE_NAME" | head -n 1)}"
}

# dbmate COMMAND (up, rollback) with REF's migration files, as the compose target runs it.
swarm_dbmate() { # ref command
  local user db
  user=$(pg_user)
  db=$(pg_db)
  # shellcheck disable=SC2016  # expanded by the container's shell
  env_get POSTGRES_PASSWORD | docker run --rm -i --network "$(stack_network)" \
    -e "PGUSER=$user" -e "PGDATABASE=$db" \
    -e "LOCK_TIMEOUT=$(env_get MIGRATION_LOCK_TIMEOUT)" \
    --entrypoint sh "$(api_image):$1" -c 'IFS= read -r PGPASSWORD; export PGPASSWORD
      export DATABASE_URL="postgres://$PGUSER@db:5432/$PGDATABASE?sslmode=disable&lock_timeout=${LOCK_TIMEOUT:-1s}"
      exec node_modules/.bin/dbmate --wait --wait-timeout 60s "$1"' sh "$2"
}
dbmate_up() { swarm_dbmate "$1" up; }         # ref
dbmate_down() { swarm_dbmate "$1" rollback; } # ref
# The compose target pins its idle migrate service here; a Swarm stack has none.
align_migrate() { :; }

# psql on database DB (default: the app's), as lib.sh's db_psql takes it: SQL from -c, or on
# stdin (which follows the password line). With -c stdin is left alone: a caller's stdin may be
# an SSH session that never ends.
db_psql() { # [db] [psql options...]
  local db=${1:-} a sql_on_stdin=1
  shift || true
  for a in "$@"; do [[ "$a" != -c ]] || sql_on_stdin=0; done
  # shellcheck disable=SC2016  # expanded by the container's shell
  { env_get POSTGRES_PASSWORD; ((!sql_on_stdin)) || cat; } | docker run --rm -i --network "$(stack_network)" \
    -e PGHOST=db -e "PGUSER=$(pg_user)" -e "PGDATABASE=${db:-$(pg_db)}" --user postgres --entrypoint sh "$(postgres_image)" \
    -c 'IFS= read -r PGPASSWORD; export PGPASSWORD; exec psql -X -At "$@"' sh "$@"
}

# A pre-deploy dump, as backup.sh writes one (write_dump), from a one-off postgres container on
# the stack's network.
swarm_backup() { # -> prints the dump's path
  write_dump "${SLIPWAY_BACKUP_DIR:-$SLIPWAY_DIR/backups}" "$(pg_db)" "${SLIPWAY_BACKUP_KEEP:-10}" \
    "docker service logs $(stack_name)_db" swarm_pg_dump "$(pg_user)" "$(pg_db)" "$(postgres_image)"
}

swarm_pg_dump() { # user db image
  # shellcheck disable=SC2016  # expanded by the container's shell
  env_get POSTGRES_PASSWORD | docker run --rm -i --network "$(stack_network)" \
    -e "PGUSER=$1" -e "PGDATABASE=$2" -e PGHOST=db --user postgres --entrypoint sh "$3" \
    -c 'IFS= read -r PGPASSWORD; export PGPASSWORD; exec pg_dump --clean --if-exists --no-owner --no-privileges'
}
