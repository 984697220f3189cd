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

# Lines on stdin as one: "a; b; c".
joined() { paste -sd ';' | sed 's/;/; /g'; }

# One migration's down section (dbmate rollback, one transaction); tried again, like deploy's
# migrations, when it gave up waiting for its lock (the transaction undid everything).
migration_down() { # source_ref version
  local out attempt tries
  tries=$(env_number MIGRATION_LOCK_TRIES 3)
  for ((attempt = 1; ; attempt++)); do
    if out=$(dbmate_down "$1" 2>&1) && grep -q "Rolling back: ${2}_" <<<"$out"; then
      printf '%s\n' "$out" >&2
      return 0
    fi
    printf '%s\n' "$out" >&2
    if ((attempt >= ${tries%.*})) || ! grep -q 'lock timeout' <<<"$out"; then return 1; fi
    log "the down section waited longer than MIGRATION_LOCK_TIMEOUT for its lock (attempt $attempt of ${tries%.*}); trying again in 2s"
    sleep 2
  done
}

main() {
  local tag="" no_pull=0 timeout=60 image current target="" migrations=0 accept_loss=0 source stake dump="" v list rolled_back="" schema_only status
  local -a undo=()
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
    ((!migrations)) || die "--migrations is not available on a Swarm target yet: roll back without it (the schema stays), or undo a migration by hand after a backup"
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
  # A --migrations rollback killed during its rehearsal leaves the copy.
  if db_running; then drop_rehearsals; fi
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
  if [[ -n "$(switchable_container "$tag")" ]]; then
    : # roll_to switches back to the container the last roll kept
  elif docker image inspect "$image" >/dev/null 2>&1; then
    step "image $image is on this host"
  else
    ensure_image "$image" "$no_pull"
  fi
  if ((migrations)); then
    list=$(undone_migrations "$tag") \
      || die "cannot tell which migrations $tag lacks (its image or the database did not answer); nothing was changed"
    [[ -z "$list" ]] || mapfile -t undo <<<"$list"
    # The migration files that have a down section for them: the release the database follows.
    source=$(env_get MIGRATE_TAG)
    source=${source:-$current}
    if ((${#undo[@]} == 0)); then
      step "no migrations to roll back: the database has none that $tag does not ship"
    else
      for v in "${undo[@]}"; do
        down_sql "$source" "$v" | grep -q . \
          || die "migration $v is not in $source's image, so its down section is unknown; nothing was changed. Undo it by hand (after a backup), or roll back without --migrations"
      done
      step "backup before rolling back the migrations (the rehearsal's copy is restored from it)"
      dump=$("$here/backup.sh" --dir "${SLIPWAY_BACKUP_DIR:-$SLIPWAY_DIR/backups}" --keep "${SLIPWAY_BACKUP_KEEP:-10}")
      status=0
      rehearse_down "$source" "$dump" "${undo[@]}" || status=$?
      if ((status == 2)); then
        die "$DOWN_REPORT, so nothing was changed on the real database; fix that down section, or roll back without --migrations (the schema stays)"
      elif ((status != 0)); then
        die "cannot tell whether the down sections would lose data: $DOWN_REPORT; nothing was changed. Roll back without --migrations (the schema stays)"
      fi
      stake=$(joined <<<"$DOWN_LOSSES")
      step "rehearsal: $DOWN_REPORT; ${stake:-no data lost}"
      if [[ -n "$stake" ]] && ((!accept_loss)); then
        die "rolling back the migrations would lose data: $stake; nothing was changed. Roll back without --migrations (the schema stays), or add --accept-data-loss (the backup $dump has it)"
      fi
      [[ -z "$stake" ]] || step "data loss accepted (--accept-data-loss): $stake"
    fi
  fi
  if ((schema_only)); then
    step "$tag already serves: only its schema is rolled back"
  else
    roll_to "$tag" "$timeout"
  fi
  if ((${#undo[@]} > 0)); then
    # The undone release served until the roll: what it wrote after the backup is not in the copy.
    if ((!accept_loss)) && stake=$(recheck_emptied "$DOWN_EMPTIED") && [[ -n "$stake" ]]; then
      finish_release rollback "$tag" "$current" - "migrations kept: values written since the check"
      die "values were written after the check to what the down sections remove ($(joined <<<"$stake")); $tag serves, the schema stays as it is. Run scripts/rollback.sh --migrations $tag again to check anew"
    fi
    rm -f "$DOWN_EMPTIED"
    for v in "${undo[@]}"; do
      step "rolling back migration $v (its down section, in one transaction)"
      if ! migration_down "$source" "$v"; then
        finish_release rollback "$tag" "$current" - "migrations rolled back: ${rolled_back:-none}; $v's down section failed"
        die "the down section of migration $v failed, so its transaction was undone: the schema and data are as they were before it ($tag serves; the backup is $dump). Fix that down section, or leave the schema as it is"
      fi
      rolled_back="${rolled_back:+$rolled_back }$v"
    done
    env_set MIGRATE_TAG "$tag"
    step "rolled back ${#undo[@]} migration(s): ${undo[*]}; backup: $dump"
    # The release just undone needs those migrations: kept, it would fail its readiness and
    # could not be switched back to. A later deploy of it starts afresh and migrates again.
    if [[ -n "$(slot_containers "$(other_slot "$(env_slot)")")" ]]; then
      step "removing the kept release in slot $(other_slot "$(env_slot)"): it needs the migrations just rolled back"
      remove_slot "$(other_slot "$(env_slot)")"
    fi
  elif ((!migrations)) && [[ "$(release_migrations "$current")" =~ ^[1-9][0-9]*$ ]]; then
    step "the schema stays as it is: $current's ${BASH_REMATCH[0]} migration(s) remain applied (expand/contract); scripts/rollback.sh --migrations undoes them when that loses no data"
  fi
  finish_release rollback "$tag" "$current" - "${undo[*]:+migrations rolled back: ${undo[*]}}"
  post_hook post-rollback rollback "$tag" "${current:--}"
  CLEAN_EXIT=1
  step "rolled back to $tag ($RELEASE_DIGEST) in $(elapsed)"
}

main "$@"
