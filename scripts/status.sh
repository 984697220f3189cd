#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=status
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/status.sh [--releases N] [--target compose|swarm]

Prints what on-call needs first: the release in .env, the containers and their health,
/health as the proxy serves it, the deploy lock, any drift an interrupted operation left
(and the one command that repairs it), and the last N releases (default 5).
USAGE
}

# Prints one line per way the host differs from one consistent release; nothing when it is.
drift() { # active_slot kept_container
  local active=$1 kept=$2 id env_slot env_tag pid holder note serving="" slot tag health name
  local -a all=()
  mapfile -t all < <(api_containers)
  env_slot=$(env_get API_SLOT)
  env_tag=$(env_get API_TAG)
  [[ "${env_slot:-a}" == "$active" ]] || echo "the proxy serves slot $active but .env names slot ${env_slot:-a} (docker compose up -d would act on the wrong one)"
  [[ "$(env_get COMPOSE_PROFILES)" == "slot-${env_slot:-a}" ]] || echo ".env's COMPOSE_PROFILES is '$(env_get COMPOSE_PROFILES)', not slot-${env_slot:-a}"
  for id in "${all[@]}"; do
    slot=$(container_slot "$id")
    tag=$(container_ref "$id")
    health=$(container_health "$id")
    if [[ -z "$serving" && "$slot" == "$active" && "$health" == healthy ]]; then
      serving=$id
      [[ "$tag" == "$env_tag" ]] || echo "the serving container runs api:$tag but .env names api:$env_tag"
    elif [[ "$id" != "$kept" ]]; then
      echo "leftover api container: $(container_name "$id") slot $slot, api:$tag, $health"
    fi
  done
  ((${#all[@]} == 0)) || [[ -n "$serving" ]] || echo "no healthy api container in the proxy's slot $active"
  if [[ -f "$LOCK_FILE" ]] && ! flock -n "$LOCK_FILE" true; then
    holder=$(cat "$LOCK_FILE")
    pid=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' <<<"$holder")
    if [[ -n "$pid" && ! -d "/proc/$pid" ]]; then
      echo "the deploy lock is held, but its holder (pid $pid) is dead: a process it started still holds it (fuser -v $LOCK_FILE)"
    fi
  elif note=$(interrupted_operation); then
    echo "an operation was interrupted before it finished: $note"
  fi
  for name in $(leftover_rehearsals); do echo "a migration rehearsal's copy of the database was left: $name"; done
}

# The release kept for rollback (see keep_old in lib.sh), and what going back to it costs.
kept_line() { # previous_release kept_container
  local previous=$1 id=$2
  [[ -n "$previous" ]] || { echo "nothing (no earlier release in the history)"; return 0; }
  if [[ -z "$id" ]]; then
    echo "nothing in the idle slot; scripts/rollback.sh rolls to $previous with a new container (KEEP_PREVIOUS=$(keep_previous))"
  elif container_running "$id"; then
    echo "api:$(container_ref "$id") warm in slot $(container_slot "$id") ($(container_name "$id"), $(container_health "$id"), $(docker stats --no-stream --format '{{.MemUsage}}' "$id" 2>/dev/null | cut -d/ -f1 | tr -d ' ') memory): scripts/rollback.sh switches to it"
  else
    echo "api:$(container_ref "$id") stopped in slot $(container_slot "$id") ($(container_name "$id")): scripts/rollback.sh starts it, no pull"
  fi
}

main() {
  local n=5 holder target=""
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --releases) (($# >= 2)) || die "--releases needs a number"; n=$2; shift ;;
      --target) (($# >= 2)) || die "--target needs compose or swarm"; target=$2; shift ;;
      *) die "unknown argument '$1'; see --help" ;;
    esac
    shift
  done
  require_positive_int --releases "$n"
  # Outside a deployment directory, the compose file's message names the fix.
  [[ -f "$SLIPWAY_DIR/.env" ]] || require_project
  if [[ "$(target_kind "$target")" == swarm ]]; then
    # shellcheck source=scripts/lib-swarm.sh
    source "$here/lib-swarm.sh"
    require_manager
    swarm_status "$n"
    return
  fi
  require_project
  echo "release:   $(api_image):$(env_get API_TAG)"
  local slot
  slot=$(active_slot)
  echo "slot:      $slot (the proxy sends traffic to /run/slipway/api-$slot.sock)"
  echo "health:    $(proxy_health 2>/dev/null || echo 'UNAVAILABLE (proxy not answering /health)')"
  # The newest migration applied: `dagger call migration-plan --since=<it>` shows what a release adds.
  echo "schema:    $(schema_version 2>/dev/null || echo 'unknown (db not answering)')"
  # Looked up once, for this line and the drift check.
  local previous kept
  previous=$(previous_release "$(env_get API_TAG)")
  kept=$([[ -z "$previous" ]] || kept_container "$previous")
  echo "kept:      $(kept_line "$previous" "$kept")"
  if [[ -f "$LOCK_FILE" ]] && ! flock -n "$LOCK_FILE" true; then
    holder=$(cat "$LOCK_FILE")
    echo "lock:      held ($holder)"
  else
    echo "lock:      free"
  fi
  local -a problems=()
  local found
  # Not `< <(drift)`: a failing check there would pass for "no drift".
  found=$(drift "$slot" "$kept") || found="the drift check itself failed (its error is above); do not trust 'none'"
  [[ -z "$found" ]] || mapfile -t problems <<<"$found"
  if ((${#problems[@]} == 0)); then
    echo "drift:     none"
  else
    printf 'DRIFT:     %s\n' "${problems[@]}"
    echo "repair:    scripts/repair.sh   (or any deploy/rollback, which repairs first)"
  fi
  echo
  compose_all ps -a --format 'table {{.Service}}\t{{.Name}}\t{{.Image}}\t{{.Status}}'
  echo
  echo "last $n releases ($HISTORY_FILE):"
  local releases
  releases=$(history_entries | tail -n "$n")
  if [[ -z "$releases" ]]; then
    echo "  (none recorded)"
  else
    # awk, not column(1): minimal hosts may lack bsdextrautils.
    awk -F'\t' '{ printf "  %-20s  %-8s  %-40s  %-19s  %-12s  %s\n", $1, $2, $3, substr($4, 1, 19), $5, $6 }' <<<"$releases"
  fi
}

main "$@"
