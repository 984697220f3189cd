#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=repair
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/repair.sh

Puts the host back to one consistent release after an operation was cut off (a kill, a dropped
SSH link, a reboot mid-roll), without starting or switching to anything new:
  - the proxy points at a slot whose api container is healthy;
  - that container is the only api container (leftovers are drained and removed);
  - .env names it (so `docker compose up -d` keeps it) and releases.log records it;
  - no copy of the database from an interrupted migration rehearsal is left.
Does nothing on a consistent host. deploy.sh and rollback.sh do the same first, so running
either is also a repair; scripts/status.sh says when one is needed.
On a Swarm manager (.env SLIPWAY_TARGET=swarm) it waits for an update Swarm is still running,
then makes .env and releases.log name what the api service runs.
USAGE
}

main() {
  wants_help "$@" && { usage; return 0; }
  (($# == 0)) || die "unknown argument '$1'; see --help"
  [[ -f "$SLIPWAY_DIR/.env" ]] || require_project
  if [[ "$(target_kind "")" == swarm ]]; then
    # shellcheck source=scripts/lib-swarm.sh
    source "$here/lib-swarm.sh"
    require_manager
    survive_disconnect
    acquire_lock repair
    swarm_reconcile
    drop_rehearsals
    CLEAN_EXIT=1
    step "consistent: $(api_service) runs $(swarm_release), and .env and $HISTORY_FILE name it"
    return 0
  fi
  require_project
  survive_disconnect
  acquire_lock repair
  reconcile
  if db_running; then drop_rehearsals; fi
  CLEAN_EXIT=1
  step "consistent: api:$(env_get API_TAG) in slot $(env_get API_SLOT) serves, and .env and $HISTORY_FILE name it"
}

main "$@"
