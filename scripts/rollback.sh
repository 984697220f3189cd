#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=rollback
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/rollback.sh [options] [tag[@sha256:<digest>]]

Puts the previous release back with the same health-gated, zero-downtime roll as deploy,
and no migrations. The release before the current one is kept in the idle slot by every
roll (.env KEEP_PREVIOUS: warm by default), so going back to it is a switch of the proxy:
no pull, no new container. Without a tag it goes to the release that preceded the current one in
the history file (releases.log); repeated rollbacks keep walking back. It returns to the
registry digest that release ran (from releases.log), even if its tag was re-pointed since;
a tag with no recorded digest is used as it is.

Options:
  --operator NAME    who rolls back, for releases.log (default: SLIPWAY_OPERATOR, sudo user, user)
  --no-pull          never pull; the image must be on this host (by default it is pulled only if absent)
  --timeout SECONDS  how long to wait for the container to turn healthy (default 60)
  --target KIND      compose or swarm (default: .env SLIPWAY_TARGET, else compose); on swarm the
                     previous release's digest is deployed again, a rolling update
  -h, --help         show this help
USAGE
}

main() {
  local tag="" no_pull=0 timeout=60 image current target=""
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --operator) person_option "$@"; shift ;;
      --no-pull) no_pull=1 ;;
      --timeout) (($# >= 2)) || die "--timeout needs a value in seconds"; timeout=$2; shift ;;
      --target) (($# >= 2)) || die "--target needs compose or swarm"; target=$2; shift ;;
      -*) die "unknown option '$1'; see --help" ;;
      *) [[ -z "$tag" ]] || die "one tag only (got '$tag' and '$1'); see --help"; tag=$1 ;;
    esac
    shift
  done
  [[ -z "$tag" ]] || require_ref "$tag"
  require_positive_int --timeout "$timeout"
  # Outside a deployment directory, the compose file's message names the fix.
  [[ -f "$SLIPWAY_DIR/.env" ]] || require_project
  if [[ "$(target_kind "$target")" == swarm ]]; then
    # shellcheck source=scripts/lib-swarm.sh
    source "$here/lib-swarm.sh"
    require_manager
    survive_disconnect
    acquire_lock "rollback:${tag:-previous}"
    swarm_rollback "$tag" "$timeout"
    return
  fi
  require_project
  # Checked now: keep_old reads it only after the switch, too late to refuse a bad value.
  keep_previous >/dev/null
  survive_disconnect
  acquire_lock "rollback:${tag:-previous}"
  reconcile
  current=$(env_get API_TAG)
  if [[ -z "$tag" ]]; then
    tag=$(previous_release "$current")
    [[ -n "$tag" ]] || die "no release before '${current:-?}' in $HISTORY_FILE; name one: scripts/rollback.sh <tag>"
    require_ref "$tag"
  elif [[ "$tag" != *@* ]]; then
    tag=$(pinned_release "$tag")
  fi
  ! same_release "$tag" "$current" || die "$tag is already the current release; name another: scripts/rollback.sh <tag>"

  image="$(api_image):$tag"
  pre_hook pre-rollback rollback "$tag" "${current:--}"
  step "rolling back from ${current:-?} to $image"
  if [[ -n "$(kept_container "$tag")" ]]; then
    : # roll_to switches back to the container the last roll kept
  elif docker image inspect "$image" >/dev/null 2>&1; then
    step "image $image is on this host"
  else
    ensure_image "$image" "$no_pull"
  fi
  roll_to "$tag" "$timeout"
  finish_release rollback "$tag" "$current" -
  post_hook post-rollback rollback "$tag" "${current:--}"
  CLEAN_EXIT=1
  step "rolled back to $tag ($RELEASE_DIGEST) in $(elapsed)"
}

main "$@"
