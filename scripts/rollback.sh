#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=rollback
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/rollback.sh [options] [tag[@sha256:<digest>]]

Puts the previous release back with the same health-gated, zero-downtime roll as deploy.
The schema stays as it is (expand/contract: releases keep working on a newer schema) unless
--migrations is given. The release before the current one is kept in the idle slot by every
roll (.env KEEP_PREVIOUS: warm by default), so going back to it is a switch of the proxy:
no pull, no new container. Without a tag it goes to the release that preceded the current one in
the history file (releases.log); repeated rollbacks keep walking back. It returns to the
registry digest that release ran (from releases.log), even if its tag was re-pointed since;
a tag with no recorded digest is used as it is.

Options:
  --operator NAME    who rolls back, for releases.log (default: SLIPWAY_OPERATOR, sudo user, user)
  --no-pull          never pull; the image must be on this host (by default it is pulled only if absent)
  --timeout SECONDS  how long to wait for the container to turn healthy (default 60)
  --migrations       also undo the migrations the target release does not ship, newest first,
                     each one's `-- migrate:down` in one transaction with the deploy's lock
                     timeout, after a fresh backup and after the roll. First the down sections
                     are rehearsed on a copy restored from that backup, and what holds data
                     (each table's rows, each column's non-NULL values and a checksum of them)
                     is measured before and after: any loss refuses the rollback with nothing
                     changed, listing each loss as table.column: N value(s). So does a down
                     section that fails on the copy, or anything the check cannot measure (no
                     room for a copy, large objects, foreign tables). Costs the time of a
                     restore and room for one copy of the database.
  --accept-data-loss with --migrations: undo them even so (the backup is taken first)
                     With --migrations, naming the current release rolls back only its schema
                     (e.g. after a --migrations rollback was cut off before its down sections)
  --target KIND      compose or swarm (default: .env SLIPWAY_TARGET, else compose); on swarm the
                     previous release's digest is deployed again, a rolling update
  -h, --help         show this help
USAGE
}

main() {
  local tag="" no_pull=0 timeout=60 image current target="" migrations=0 accept_loss=0 schema_only
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --operator) person_option "$@"; shift ;;
      --no-pull) no_pull=1 ;;
      --migrations) migrations=1 ;;
      --accept-data-loss) accept_loss=1 ;;
      --timeout) (($# >= 2)) || die "--timeout needs a value in seconds"; timeout=$2; shift ;;
      --target) (($# >= 2)) || die "--target needs compose or swarm"; target=$2; shift ;;
      -*) die "unknown option '$1'; see --help" ;;
      *) [[ -z "$tag" ]] || die "one tag only (got '$tag' and '$1'); see --help"; tag=$1 ;;
    esac
    shift
  done
  [[ -z "$tag" ]] || require_ref "$tag"
  require_positive_int --timeout "$timeout"
  ((migrations || !accept_loss)) || die "--accept-data-loss goes with --migrations; see --help"
  # Outside a deployment directory, the compose file's message names the fix.
  [[ -f "$SLIPWAY_DIR/.env" ]] || require_project
  if [[ "$(target_kind "$target")" == swarm ]]; then
    # shellcheck source=scripts/lib-swarm.sh
    source "$here/lib-swarm.sh"
    require_manager
    survive_disconnect
    acquire_lock "rollback:${tag:-previous}"
    swarm_rollback "$tag" "$timeout" "$migrations" "$accept_loss"
    return
  fi
  # The proxy's control shell starts now, beside the checks, the lock and the look at the host,
  # so that neither the route's read nor the switch waits for a `docker exec` to start then.
  open_proxy_control "$(compose_container_name proxy)"
  require_project
  survive_disconnect
  acquire_lock "rollback:${tag:-previous}"
  reconcile
  # A --migrations rollback killed during its rehearsal leaves the copy: the next one drops it
  # (as deploy and repair do); a plain rollback to the kept release spends no docker call on it.
  if ((migrations)) && db_running; then drop_rehearsals; fi
  current=$(env_get API_TAG)
  if [[ -z "$tag" ]]; then
    tag=$(previous_release "$current")
    [[ -n "$tag" ]] || die "no release before '${current:-?}' in $HISTORY_FILE; name one: scripts/rollback.sh <tag>"
    require_ref "$tag"
  elif [[ "$tag" != *@* ]]; then
    tag=$(pinned_release "$tag")
  fi
  # Naming the current release with --migrations undoes only the schema it does not ship: what
  # finishes a --migrations rollback cut off between its roll and its down sections.
  schema_only=0
  if same_release "$tag" "$current"; then
    ((migrations)) || die "$tag is already the current release; name another: scripts/rollback.sh <tag>"
    schema_only=1
  fi

  image="$(api_image):$tag"
  pre_hook pre-rollback rollback "$tag" "${current:--}"
  step "rolling back from ${current:-?} to $image"
  if [[ -n "$(observed_switchable "$tag")" || -n "$(switchable_container "$tag")" ]]; then
    : # roll_to switches back to the container the last roll kept
  elif docker image inspect "$image" >/dev/null 2>&1; then
    step "image $image is on this host"
  else
    ensure_image "$image" "$no_pull"
  fi
  if ((migrations)); then
    plan_down "$tag" "$current" "$accept_loss" "$here/backup.sh" --dir "${SLIPWAY_BACKUP_DIR:-$SLIPWAY_DIR/backups}" --keep "${SLIPWAY_BACKUP_KEEP:-10}"
  fi
  if ((schema_only)); then
    step "$tag already serves: only its schema is rolled back"
  else
    roll_to "$tag" "$timeout"
  fi
  if ((${#DOWN_UNDO[@]} > 0)); then
    apply_down "$tag" "$current" "$accept_loss"
    # The release just undone needs those migrations: kept, it would fail its readiness and
    # could not be switched back to. A later deploy of it starts afresh and migrates again.
    if [[ -n "$(slot_containers "$(other_slot "$(env_slot)")")" ]]; then
      step "removing the kept release in slot $(other_slot "$(env_slot)"): it needs the migrations just rolled back"
      remove_slot "$(other_slot "$(env_slot)")"
    fi
  elif ((!migrations)) && [[ "$(release_migrations "$current")" =~ ^[1-9][0-9]*$ ]]; then
    step "the schema stays as it is: $current's ${BASH_REMATCH[0]} migration(s) remain applied (expand/contract); scripts/rollback.sh --migrations undoes them when that loses no data"
  fi
  finish_release rollback "$tag" "$current" - "${DOWN_UNDO[*]:+migrations rolled back: ${DOWN_UNDO[*]}}"
  post_hook post-rollback rollback "$tag" "${current:--}"
  CLEAN_EXIT=1
  step "rolled back to $tag ($RELEASE_DIGEST) in $(elapsed)"
}

main "$@"
