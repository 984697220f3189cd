#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=backup
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/backup.sh [--dir DIR] [--keep N]

Dumps the running `db` service with pg_dump (plain SQL that replaces the schema's objects
on restore) to DIR/<db>-<UTC yyyymmddThhmmssZ>.sql, mode 600. The dump is written under
a temporary name, checked complete, then renamed, so a file with the final name is always
whole. Prints the file's path on stdout.

Takes the deploy lock (waiting up to SLIPWAY_BACKUP_LOCK_WAIT seconds, default 600), so a
backup and a release never overlap.

Options:
  --dir DIR   where backups go (default: backups, beside the compose file)
  --keep N    afterwards, delete all but the newest N backups in DIR
  -h, --help  show this help
USAGE
}

main() {
  local dir="$SLIPWAY_DIR/backups" keep="" db user stamp final partial size attempt status
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
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
  [[ -n "${SLIPWAY_LOCK_HELD:-}" ]] || acquire_lock backup "${SLIPWAY_BACKUP_LOCK_WAIT:-600}"
  db=$(db_env POSTGRES_DB)
  user=$(db_env POSTGRES_USER)
  [[ -n "$db" && -n "$user" ]] || die "cannot read POSTGRES_DB and POSTGRES_USER from the db container (docker inspect); no backup was written"
  umask 077
  mkdir -p "$dir"
  while :; do
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    final="$dir/$db-$stamp.sql"
    [[ -e "$final" ]] || break
    sleep 1
  done
  partial="$dir/.$db-$stamp.sql.partial"
  step "dumping database $db to $final"
  for attempt in 1 2 3; do
    status=0
    compose exec -T db pg_dump --clean --if-exists --no-owner --no-privileges -U "$user" -d "$db" >"$partial" || status=$?
    # 126: the runtime did not start the exec (a busy host); nothing ran, so it is tried again.
    ((status == 126 && attempt < 3)) || break
    log "the database's exec did not start (attempt $attempt of 3); trying again"
    sleep 1
  done
  if ((status != 0)); then
    rm -f "$partial"
    die "pg_dump failed; no backup was written (check: docker compose -f $COMPOSE_FILE_NAME logs db)"
  fi
  if ! dump_complete "$partial"; then
    rm -f "$partial"
    die "the dump ended early (no completion marker); no backup was written"
  fi
  mv "$partial" "$final"
  size=$(wc -c <"$final")
  step "backup complete: $final ($size bytes)"
  if [[ -n "$keep" ]]; then
    local -a old=()
    mapfile -t old < <(find "$dir" -maxdepth 1 -name "$db-*.sql" -type f | sort | head -n "-$keep")
    if ((${#old[@]} > 0)); then
      rm -f "${old[@]}"
      step "pruned ${#old[@]} old backup(s), kept the newest $keep"
    fi
  fi
  CLEAN_EXIT=1
  echo "$final"
}

main "$@"
