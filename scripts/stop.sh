#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=stop
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/stop.sh [--volumes]

Stops and removes the whole stack: the proxy, the database, the migrate service and both
release slots, the kept release too, and the stack's network. A plain `docker compose down`
leaves the kept release running: its slot is outside .env's COMPOSE_PROFILES, so compose neither
stops it nor counts it as an orphan. Waits for a release operation in progress (the deploy lock).
  --volumes   also delete the stack's volumes: the database's data is gone
              (take a backup first: scripts/backup.sh)
.env, backups/ and releases.log stay. Start again with: docker compose -f docker-compose.prod.yml up -d --wait
USAGE
}

main() {
  local -a down=(down --remove-orphans -t 30)
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --volumes) down+=(-v) ;;
      *) die "unknown argument '$1'; see --help" ;;
    esac
    shift
  done
  [[ -f "$SLIPWAY_DIR/.env" ]] || require_project
  if [[ "$(target_kind "")" == swarm ]]; then
    local stack
    stack=$(env_get SLIPWAY_STACK)
    die "on a Swarm manager the stack is removed with: docker stack rm ${stack:-slipway}"
  fi
  require_project
  acquire_lock stop 300
  step "stopping every service of the stack, both release slots included"
  compose_all "${down[@]}"
  CLEAN_EXIT=1
  step "stopped: no container of the stack is left$([[ " ${down[*]} " == *" -v "* ]] && echo ", and its volumes are deleted")"
}

main "$@"
