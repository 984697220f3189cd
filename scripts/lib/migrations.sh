# Sourced by lib.sh: the database: migrations up, their rehearsal on a copy, psql, and the rehearsal copies a kill left.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# The migrate service runs the release whose migrations the database has (.env's MIGRATE_TAG):
# recreated for TAG after TAG's migrations ran, it applies them again (nothing to do) and idles,
# so its config matches .env and a later `docker compose up -d` leaves it be. A release with no
# pending migration, a rollback and a guard revert leave it alone: the schema did not change.
align_migrate() { # tag
  env_set MIGRATE_TAG "$1" || return 1
  # One compose call (each re-reads the project), not `create` then `start`.
  compose up -d --no-deps --force-recreate migrate >/dev/null 2>&1
}

# `dbmate up` with REF's image in a one-off migrate container (the caller's environment picks
# the database: POSTGRES_DB).
dbmate_up() { # ref
  MIGRATE_TAG=$1 compose run --rm --no-deps -T migrate node_modules/.bin/dbmate --wait --wait-timeout 60s up
}

# How many migrations a run's output says dbmate tried, and applied (a failed one is rolled back).
tried_count() { grep -c '^Applying: ' "$1" || true; }  # output_file

applied_count() { grep -c '^Applied: ' "$1" || true; } # output_file

# Runs the migrations of REF in a one-off container, streaming their output; fails with them.
# A migration that gave up waiting for a lock (MIGRATION_LOCK_TIMEOUT: API queries queue behind
# it) is tried again, MIGRATION_LOCK_TRIES times in all: dbmate rolled it back, and what the
# earlier tries applied stays applied. Then aligns the migrate service with REF. Sets
# MIGRATIONS_APPLIED (how many dbmate applied).
run_migrations() { # ref
  local out attempt=1 tries status
  tries=$(env_number MIGRATION_LOCK_TRIES 3)
  out=$(mktemp)
  MIGRATIONS_APPLIED=0
  while :; do
    status=0
    dbmate_up "$1" 2>&1 | tee "$out" >&2 || status=$?
    MIGRATIONS_APPLIED=$((MIGRATIONS_APPLIED + $(applied_count "$out")))
    ((status != 0)) || break
    if ((attempt >= ${tries%.*})) || ! grep -q 'lock timeout' "$out"; then
      ((attempt == 1)) || log "the migration still waited too long for its lock after $attempt attempts (MIGRATION_LOCK_TRIES)"
      rm -f "$out"
      return 1
    fi
    log "a migration waited longer than MIGRATION_LOCK_TIMEOUT for its lock (attempt $attempt of ${tries%.*}); trying again in 2s"
    attempt=$((attempt + 1))
    sleep 2
  done
  rm -f "$out"
  align_migrate "$1"
}

# psql in the db container as its superuser, on database DB (default: the app's), reading SQL
# from stdin; one `docker exec` (not `compose exec`), with the container's own POSTGRES_USER/DB.
db_psql() { # [db] [psql options...]
  local db=${1:-}
  shift || true
  # shellcheck disable=SC2016  # expanded by the container's shell, from its environment
  docker exec -i "$(service_container db)" sh -c 'db=$1; shift; exec psql -X -At -U "$POSTGRES_USER" -d "${db:-$POSTGRES_DB}" "$@"' sh "$db" "$@"
}

# Migration versions REF's image ships that the database has not applied, one per line. Reads the
# image's db/migrations without starting the app (a container that only lists a directory).
# The migration versions IMAGE ships, one per line, sorted: a `docker run` of its own `ls`.
shipped_migrations() { # ref
  docker run --rm --network none --entrypoint sh "$(api_image):$1" -c 'ls /app/db/migrations' \
    | sed -n 's/^\([0-9][0-9]*\)_.*\.sql$/\1/p' | sort
}

# Of the versions on stdin (as shipped_migrations prints them), those the database has not
# applied. The database is asked first, so a shipped_migrations still running overlaps it.
pending_migrations() {
  local applied
  applied=$(db_psql "" -c "SELECT version FROM schema_migrations" </dev/null 2>/dev/null | sort) || applied=""
  comm -23 - <(printf '%s\n' "$applied") | sed '/^$/d'
}

# Rehearses REF's migrations on a copy of the data before they touch the real database: DUMP (the
# fresh pre-deploy backup) is restored into a throwaway database beside the real one, REF's
# pending migrations run there with the real timeouts, and the copy is dropped. A migration that
# only fails on existing data (NOT NULL over NULLs, a unique index over duplicates) fails here.
# Sets REHEARSAL_REPORT. Returns non-zero when the migrations fail on the copy.
rehearse_migrations() { # ref dump
  local ref=$1 dump=$2 db start out status=0
  db="slipway_rehearsal_$(date -u +%Y%m%d%H%M%S)_$$"
  step "rehearsing the migrations of $ref on a copy of the database ($db, from $(basename "$dump"))"
  start=$(date +%s)
  db_psql postgres -c "CREATE DATABASE $db" >/dev/null || { log "cannot create the rehearsal database (disk full?)"; return 1; }
  out=$(mktemp)
  if ! db_psql "$db" -q -v ON_ERROR_STOP=1 --single-transaction <"$dump" >/dev/null 2>"$out"; then
    log "the pre-deploy backup did not restore into the rehearsal database: $(tail -n 3 "$out" | tr '\n' ' ')"
    status=1
  elif ! POSTGRES_DB=$db dbmate_up "$ref" >"$out" 2>&1; then
    sed 's/^/  rehearsal: /' "$out" >&2
    status=1
  fi
  REHEARSAL_REPORT="$(tried_count "$out") migration(s) in $(($(date +%s) - start))s on a copy of the data"
  rm -f "$out"
  db_psql postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null \
    || log "warning: could not drop the rehearsal database $db; the next deploy drops it"
  return "$status"
}

# The newest migration version the real database has applied.
# --- rolling back a release's migrations (rollback.sh --migrations) -----------------------
# The applied versions TARGET does not ship: what the release being undone added, newest first.
undone_migrations() { # target_ref
  local shipped applied
  shipped=$(shipped_migrations "$1") || return 1
  applied=$(db_psql "" -c "SELECT version FROM schema_migrations" </dev/null | sort) || return 1
  comm -13 <(printf '%s\n' "$shipped") <(printf '%s\n' "$applied") | sed '/^$/d' | sort -r
}

# The `-- migrate:down` section of VERSION's file in IMAGE's db/migrations.
down_sql() { # ref version
  # shellcheck disable=SC2016  # expanded by the container's shell
  docker run --rm --network none --entrypoint sh "$(api_image):$1" -c 'cat /app/db/migrations/"$1"_*.sql' sh "$2" \
    | sed -n '/^-- migrate:down/,$p' | sed '1d'
}

# dbmate rollback, once: the newest applied migration's down section, in one transaction, with
# the deploy's lock_timeout, using the migration files of REF.
dbmate_down() { # ref
  MIGRATE_TAG=$1 compose run --rm --no-deps -T migrate node_modules/.bin/dbmate --wait --wait-timeout 60s rollback
}

schema_version() {
  local version
  version=$(db_psql "" -c "SELECT max(version) FROM schema_migrations") || return 1
  echo "${version:-none}"
}

# The rehearsal databases a killed deploy left behind (rehearse_migrations drops its own).
leftover_rehearsals() {
  db_psql postgres -c "SELECT datname FROM pg_database WHERE datname ~ '^slipway_rehearsal_[0-9]+_[0-9]+$'" 2>/dev/null || true
}

# Drops them: every deploy and repair.sh do; status.sh names them as drift.
drop_rehearsals() {
  local name
  for name in $(leftover_rehearsals); do
    step "repair: dropping the rehearsal database $name an interrupted deploy left"
    db_psql postgres -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null || log "warning: could not drop $name"
  done
}
