#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=restore
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/restore.sh <file> [--yes]

Replaces the running database's contents with a dump made by backup.sh. It refuses a dump
without pg_dump's completion marker or not in pg_dump's form (a psql meta-command such as
\! where pg_dump writes none, a COPY other than FROM stdin), before anything is touched;
without --yes it asks on the terminal (so it needs one); it takes a safety backup first, then loads the dump in a
single transaction with ON_ERROR_STOP: a dump that fails half-way changes nothing.
Rows written since the dump was taken are lost (the safety backup keeps them).

Options:
  --yes       do not ask for confirmation (required when not run from a terminal)
  -h, --help  show this help
USAGE
}

main() {
  local file="" yes=0 db user safety answer problem
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --yes | -y) yes=1 ;;
      -*) die "unknown option '$1'; see --help" ;;
      *) [[ -z "$file" ]] || die "one file only; see --help"; file=$1 ;;
    esac
    shift
  done
  [[ -n "$file" ]] || die "missing <file>; usage: scripts/restore.sh <file> [--yes] (backups are in backups/)"
  problem=$(dump_problem "$file") || die "$problem; nothing was changed: restore only files from backups/ (ls -l backups/ lists them)"
  require_project
  [[ -n "$(compose ps -q db)" ]] || die "the db service is not running: start it with docker compose -f $COMPOSE_FILE_NAME up -d db"
  db=$(db_env POSTGRES_DB)
  user=$(db_env POSTGRES_USER)
  if ((!yes)); then
    [[ -t 0 ]] || die "refusing to restore without confirmation: re-run with --yes"
    read -r -p "Replace ALL data in database '$db' with $file? Type the database name to confirm: " answer
    [[ "$answer" == "$db" ]] || die "not confirmed; nothing was changed"
  fi
  acquire_lock "restore:$(basename "$file")"
  step "safety backup before restoring"
  safety=$("$here/backup.sh" --dir "$(dirname "$file")")
  step "restoring $file into $db (single transaction)"
  if ! compose exec -T db psql -X -q -v ON_ERROR_STOP=1 --single-transaction -U "$user" -d "$db" <"$file" >/dev/null; then
    die "restore of $file failed and was rolled back; the database is unchanged (safety backup: $safety)"
  fi
  CLEAN_EXIT=1
  step "restored $file in $(elapsed); safety backup of the previous state: $safety"
}

main "$@"
