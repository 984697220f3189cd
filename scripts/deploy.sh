#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=deploy
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh [options] <tag>[@sha256:<digest>]

Health-gated, zero-downtime release of the API image <API_IMAGE>:<tag>, run from the
directory that holds docker-compose.prod.yml and .env. With a digest (as `dagger call ci`
publishes it) the host pulls and runs exactly that image, whatever the tag points at by then,
and refuses a digest the registry does not have:
  validate tag -> take the host deploy lock -> pull -> pre-deploy backup
  -> if the image has migrations the database lacks: rehearse them on a copy of that
     backup, then run them
  -> start the new container beside the old -> wait healthy
  -> with --canary: the new release takes each share of requests in turn, judged per step
  -> switch the proxy
  -> guard window: the old release stays warm while the proxy's figures for the new one
     (5xx share, p99) are watched; a bad release is switched back in seconds
  -> keep the old release in its slot for an instant rollback (KEEP_PREVIOUS: warm, the
     default, keeps it running idle; stopped drains and stops it; none removes it)
  -> record the release; .env's API_TAG names it.
If the new container never turns healthy it is removed and the old release keeps serving.

Options:
  --digest DIGEST    pin the release to sha256:<64 hex digits> (the same as <tag>@DIGEST)
  --operator NAME    who releases, for releases.log (default: SLIPWAY_OPERATOR, sudo user, user)
  --approver NAME    who approved it, for releases.log (default: SLIPWAY_APPROVER, or -)
  --no-pull          use the image already on this host (fails if it is absent)
  --skip-backup      do not take the pre-deploy backup (nor rehearse on it)
  --skip-rehearsal   do not rehearse the migrations on a copy of the pre-deploy backup first
                     (the rehearsal needs room for a second copy of the database for a moment)
  --timeout SECONDS  how long to wait for the new container to turn healthy (default 60)
  --guard SECONDS    how long to watch the new release through the proxy, the old one warm
                     beside it (default: GUARD_SECONDS in .env, else 30; 0 turns the guard off).
                     Thresholds: GUARD_MAX_5XX_PERCENT (1), GUARD_P99_SECONDS (1) and
                     GUARD_P99_FACTOR (3, x the old release's p99), GUARD_BAD_SAMPLES (2) of
                     GUARD_SAMPLE_SECONDS (3), GUARD_MIN_SAMPLE_REQUESTS (5), GUARD_MIN_REQUESTS (20)
  --canary STEPS     before the switch, give the new release these percent shares of new
                     requests in turn (rising, 1-99, e.g. 10,50; 100 follows), both releases
                     serving one schema (so migrations must keep the old release working). Each
                     step is judged by the guard's thresholds against the stable release's own
                     figures at the same time; a failed step takes the share back at once,
                     removes the new container and records a canary-rollback (compose target only)
  --canary-step SECONDS        how long each step lasts (default 60)
  --canary-min-requests N      requests the canary must get in a step to be judged; short of
                     it, the step runs up to its length again, then fails (default 20; 0: judge
                     whatever came)
  --bundle DIR       first install the files shipped to DIR (incoming/<id>, as `dagger call
                     deploy` stages them) in place, under the lock and after the tag validates
  --target KIND      compose (one host) or swarm (run on a Swarm manager: docker stack deploy of
                     docker-stack.yml, health-gated and rolled back by Swarm); default: .env
                     SLIPWAY_TARGET, else compose
  -h, --help         show this help

It first repairs what an interrupted operation left (see scripts/repair.sh), and it runs to
the end even if the SSH link or terminal drops: its output also goes to slipway.log.

Environment: SLIPWAY_DIR, SLIPWAY_HISTORY, SLIPWAY_LOCK_FILE (.deploy.lock), SLIPWAY_LOG
(slipway.log), SLIPWAY_BACKUP_DIR (backups), SLIPWAY_BACKUP_KEEP (10), SLIPWAY_OPERATOR.
USAGE
}

# Refuses bad canary options before anything runs, by lib/contract.sh's rules (the module's too).
require_canary() { # steps step_seconds min_requests
  local pct last=0
  if [[ -z "$1" ]]; then
    [[ -z "$2$3" ]] || die "--canary-step and --canary-min-requests need --canary STEPS (e.g. --canary 10,50)"
    return 0
  fi
  [[ "$1" =~ $CANARY_STEPS_PATTERN ]] || die "invalid --canary '$1': use rising percents from 1 to 99, comma-separated, e.g. 10,50 (100 follows)"
  for pct in ${1//,/ }; do
    ((10#$pct > last)) || die "invalid --canary '$1': each step must be above the one before, from 1 to 99, e.g. 10,50"
    last=$((10#$pct))
  done
  if [[ -n "$2" ]]; then
    require_positive_int --canary-step "$2"
    ((10#$2 <= CANARY_STEP_SECONDS_MAX)) || die "invalid --canary-step '$2': use seconds from 1 to $CANARY_STEP_SECONDS_MAX"
  fi
  [[ -z "$3" ]] || { [[ "$3" =~ ^[0-9]{1,9}$ ]] && ((10#$3 <= CANARY_MIN_REQUESTS_MAX)); } \
    || die "invalid --canary-min-requests '$3': use a whole number up to $CANARY_MIN_REQUESTS_MAX (0 judges whatever traffic came)"
}

main() {
  local tag="" digest="" no_pull=0 skip_backup=0 skip_rehearsal=0 timeout=60 guard="" canary="" canary_step="" canary_min="" bundle="" target="" image current dump="" pending shipped_fd lister=""
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --digest) (($# >= 2)) || die "--digest needs sha256:<64 hex digits>"; digest=$2; shift ;;
      --operator | --approver) person_option "$@"; shift ;;
      --no-pull) no_pull=1 ;;
      --skip-backup) skip_backup=1 ;;
      --skip-rehearsal) skip_rehearsal=1 ;;
      --timeout) (($# >= 2)) || die "--timeout needs a value in seconds"; timeout=$2; shift ;;
      --guard) { (($# >= 2)) && [[ -n "$2" ]]; } || die "--guard needs a value in seconds (0 turns it off)"; guard=$2; shift ;;
      --canary) (($# >= 2)) || die "--canary needs percent steps, e.g. 10,50"; canary=$2; shift ;;
      --canary-step) (($# >= 2)) || die "--canary-step needs a value in seconds"; canary_step=$2; shift ;;
      --canary-min-requests) (($# >= 2)) || die "--canary-min-requests needs a number (0: no minimum)"; canary_min=$2; shift ;;
      --bundle) (($# >= 2)) || die "--bundle needs the staged bundle's directory"; bundle=$2; shift ;;
      --target) (($# >= 2)) || die "--target needs compose or swarm"; target=$2; shift ;;
      -*) die "unknown option '$1'; see --help" ;;
      *) [[ -z "$tag" ]] || die "one tag only (got '$tag' and '$1'); see --help"; tag=$1 ;;
    esac
    shift
  done
  [[ -n "$tag" ]] || die "missing <tag>; usage: scripts/deploy.sh [options] <tag>[@sha256:<digest>]"
  if [[ -n "$digest" ]]; then
    [[ "$digest" =~ $DIGEST_PATTERN ]] || die "invalid --digest '$digest': use sha256:<64 lowercase hex digits>, as ci prints it"
    [[ "$tag" != *@* || "${tag#*@}" == "$digest" ]] || die "$tag and --digest $digest pin different digests; give one"
    tag="$(ref_tag "$tag")@$digest"
  fi
  require_ref "$tag"
  require_positive_int --timeout "$timeout"
  [[ -z "$guard" ]] || valid_value window "$guard" \
    || die "--guard must be a whole number of seconds in decimal, 0 to $GUARD_SECONDS_MAX (0 turns the guard off), got '$guard'"
  require_canary "$canary" "$canary_step" "$canary_min"
  [[ -z "$bundle" || "$bundle" =~ ^incoming/[a-z0-9-]{8,64}$ ]] || die "invalid --bundle '$bundle': use incoming/<id>, as dagger call deploy does"
  # Outside a deployment directory, the compose file's message names the fix.
  [[ -n "$bundle" || -f "$SLIPWAY_DIR/.env" ]] || require_project
  require_env
  [[ "$(env_get POSTGRES_PASSWORD)" != "change-me" ]] \
    || die "POSTGRES_PASSWORD in .env is still the example placeholder: set a real secret (openssl rand -hex 24)"
  if [[ "$(target_kind "$target")" == swarm ]]; then
    [[ -z "$canary" ]] || die "--canary needs the compose target's proxy (a per-request share); on Swarm, deploy without it (Swarm rolls one replica at a time)"
    # The guard follows one proxy's log; a Swarm has a proxy per node, each logging only its own.
    [[ -z "$guard" || "$guard" == 0 ]] || log "note: --guard applies to the compose target (one proxy's log); on Swarm, Swarm's own update monitor judges the release and rolls it back"
    swarm_main "$tag" "$timeout" "$skip_backup" "$bundle"
    return
  fi
  # With a staged bundle, the compose file may arrive with it: only .env must be here already.
  [[ -n "$bundle" ]] || require_project

  survive_disconnect
  acquire_lock "deploy:$tag"
  if [[ -n "$bundle" ]]; then
    install_bundle "$bundle"
    # This script ran from the staged copy, which is now installed in place.
    here="$SLIPWAY_DIR/scripts"
    require_project
  fi
  image="$(api_image):$tag"
  # The image's migrations are listed (a `docker run`, about half a second under load) while the
  # repair, the database checks and the backup run. Before the pull only when no pull can
  # change what the reference names: --no-pull, or a digest.
  if [[ "$no_pull" == 1 || "$tag" == *@sha256:* ]] && docker image inspect "$image" >/dev/null 2>&1; then
    exec {shipped_fd}< <(shipped_migrations "$tag")
    lister=$!
  fi
  reconcile
  require_free_disk
  current=$(env_get API_TAG)
  step "deploying $image (current: ${current:-none})"
  ensure_image "$image" "$no_pull"
  pre_hook pre-deploy deploy "$tag" "${current:--}"

  if [[ -z "$(api_containers)" && -z "$(history_entries)" ]]; then
    [[ -z "$lister" ]] || exec {shipped_fd}<&-
    [[ -z "$canary" ]] || die "--canary needs a release serving to share the traffic with, and this host has none; nothing was changed: deploy without --canary"
    first_release "$tag" "$timeout" "$current"
  else
    if [[ -z "$lister" ]]; then
      exec {shipped_fd}< <(shipped_migrations "$tag")
      lister=$!
    fi
    db_running \
      || die "the database (db service) is not running, so nothing was changed: start it with docker compose -f $COMPOSE_FILE_NAME up -d --wait db, then deploy again"
    drop_rehearsals
    if ((skip_backup)); then
      step "pre-deploy backup skipped (--skip-backup)"
    else
      step "pre-deploy backup"
      dump=$("$here/backup.sh" --dir "${SLIPWAY_BACKUP_DIR:-$SLIPWAY_DIR/backups}" --keep "${SLIPWAY_BACKUP_KEEP:-10}")
    fi
    pending=$(pending_migrations <&"$shipped_fd")
    exec {shipped_fd}<&-
    wait "$lister" || pending="(could not list them: running dbmate to be sure)"
    if [[ -z "$pending" ]]; then
      step "no pending migrations in $tag: no rehearsal and no migrate run"
      MIGRATIONS_APPLIED=0
      # Hosts set up before MIGRATE_TAG existed: pin the migrate service to what it runs now.
      [[ -n "$(env_get MIGRATE_TAG)" || -z "$current" ]] || env_set MIGRATE_TAG "$current"
    else
      step "pending migrations in $tag: $(tr '\n' ' ' <<<"$pending")"
      if ((skip_rehearsal)); then
        step "migration rehearsal skipped (--skip-rehearsal)"
      elif [[ -z "$dump" ]]; then
        step "migration rehearsal skipped: no pre-deploy backup to rehearse on (--skip-backup)"
      elif rehearse_migrations "$tag" "$dump"; then
        step "rehearsal passed: $REHEARSAL_REPORT"
      else
        die "the migrations of $tag failed on a copy of this database (rehearsal: $REHEARSAL_REPORT); the real database was not touched and ${current:-the old release} keeps serving. Fix the migration (or the data) and deploy again"
      fi
      step "running migrations with $tag"
      if ! run_migrations "$tag"; then
        die "migrations of $tag failed; nothing was switched and ${current:-the old release} keeps serving. Fix the migration and deploy again"
      fi
    fi
    [[ -n "$guard" ]] || guard=$(env_number GUARD_SECONDS 30)
    roll_to "$tag" "$timeout" "${guard%.*}" "$canary" "${canary_step:-$CANARY_STEP_SECONDS_DEFAULT}" "${canary_min:-$CANARY_MIN_REQUESTS_DEFAULT}"
  fi

  finish_release deploy "$tag" "$current" "${MIGRATIONS_APPLIED:--}"
  post_hook post-deploy deploy "$tag" "${current:--}" "${MIGRATIONS_APPLIED:--}"
  CLEAN_EXIT=1
  step "deployed $tag ($RELEASE_DIGEST) in $(elapsed); recorded in $HISTORY_FILE"
}

# A Swarm manager's deploy (lib-swarm.sh): the same lock, bundle, backup and migrations; Swarm rolls.
swarm_main() { # ref timeout skip_backup bundle
  # shellcheck source=scripts/lib-swarm.sh
  source "$here/lib-swarm.sh"
  survive_disconnect
  acquire_lock "deploy:$1"
  if [[ -n "$4" ]]; then
    install_bundle "$4"
    here="$SLIPWAY_DIR/scripts"
  fi
  require_manager
  swarm_deploy "$1" "$2" "$3"
}

# The host's first release: nothing serves yet, so the whole stack starts with TAG.
first_release() { # tag timeout previous_env_tag
  step "first release on this host: starting every service with $1"
  name_serving "$1" a MIGRATE_TAG "$1"
  if ! compose up -d --wait --wait-timeout "$2" >&2; then
    name_serving "$3" a MIGRATE_TAG "$3"
    die "the stack did not come up healthy with $1; see: docker compose -f $COMPOSE_FILE_NAME logs"
  fi
}

main "$@"
