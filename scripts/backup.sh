#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=backup
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/backup.sh [--dir DIR] [--keep N]
       scripts/backup.sh --verify FILE

Dumps the running `db` service with pg_dump (plain SQL that replaces the schema's objects
on restore) to DIR/<db>-<UTC yyyymmddThhmmssZ>.sql, mode 640 (the deployment's group). The dump is written under
a temporary name, checked complete, then renamed, so a file with the final name is always
whole. Prints the file's path on stdout.

Takes the deploy lock (waiting up to SLIPWAY_BACKUP_LOCK_WAIT seconds, default 600), so a
backup and a release never overlap.

With --verify: whether FILE is a whole dump that restore.sh takes (pg_dump's completion
marker, pg_dump's form); prints "whole: FILE" and exits 0, or the reason and exits 1.
Reads only the file: no database, no lock.

Options:
  --verify FILE  check a backup before restoring it (see above)
  --dir DIR   where backups go (default: backups, beside the compose file)
  --keep N    afterwards, delete all but the newest N backups in DIR
  -h, --help  show this help
USAGE
}

# pg_dump in the db service's container. 126: the runtime did not start the exec (a busy host);
# nothing ran, so it is tried again.
compose_pg_dump() { # user db
  local attempt status
  for attempt in 1 2 3; do
    status=0
    compose exec -T db pg_dump --clean --if-exists --no-owner --no-privileges -U "$1" -d "$2" || status=$?
    ((status == 126 && attempt < 3)) || return "$status"
    log "the database's exec did not start (attempt $attempt of 3); trying again"
    sleep 1
  done
}

# backup.sh --verify: the checks restore.sh makes before it touches anything, on their own.
verify_backup() { # file
  local problem
  problem=$(dump_problem "$1") || die "$problem: restore another"
  CLEAN_EXIT=1
  echo "whole: $1"
}

main() {
  local dir="$SLIPWAY_DIR/backups" keep="" db user final
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --verify) (($# == 2)) || die "--verify takes one file: scripts/backup.sh --verify backups/<file>.sql"; verify_backup "$2"; return ;;
      --dir) (($# >= 2)) || die "--dir needs a directory"; dir=$2; shift ;;
      --keep) (($# >= 2)) || die "--keep needs a number"; keep=$2; shift ;;
      *) die "unknown argument '$1'; see --help" ;;
    esac
    shift
  done
  [[ -z "$keep" ]] || require_positive_int --keep "$keep"
  require_project
  [[ -n "$(compose ps -q db)" ]] || die "the db service is not running: start it with docker compose -f $COMPOSE_FILE_NAME up -d db"
  # A backup and a release never overlap: a migration's ALTER would queue behind pg_dump's locks
  # (and block every query behind it). Under deploy or restore, their lock covers this.
  under_parents_lock || acquire_lock backup "${SLIPWAY_BACKUP_LOCK_WAIT:-600}"
  db=$(db_env POSTGRES_DB)
  user=$(db_env POSTGRES_USER)
  [[ -n "$db" && -n "$user" ]] || die "cannot read POSTGRES_DB and POSTGRES_USER from the db container (docker inspect); no backup was written"
  final=$(write_dump "$dir" "$db" "$keep" "docker compose -f $COMPOSE_FILE_NAME logs db" compose_pg_dump "$user" "$db")
  CLEAN_EXIT=1
  echo "$final"
}

main "$@"
