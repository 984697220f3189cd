#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=status
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/status.sh [--releases N] [--target compose|swarm]
       scripts/status.sh --kpi [--since 15m]

Prints what on-call needs first: the release in .env, the containers and their health,
/health as the proxy serves it, the deploy lock, any drift an interrupted operation left
(and the one command that repairs it), and the last N releases (default 5).

With --kpi: what users got from each release slot since --since (a duration such as 15m,
2h, 90s, or a unix time; default 15m), from the proxy's own access log (/health excluded):
requests, error rate (5xx), p50/p95/p99 and availability, against the targets in .env
(KPI_P99_SECONDS 1, KPI_MAX_ERROR_PERCENT 0.1, KPI_MIN_AVAILABILITY_PERCENT 99.9), naming
each target missed.
USAGE
}

# One line per slot: the proxy_figures of what it served since SINCE, judged against the targets.
kpi() { # since
  local since=$1 until active slot tag id role n bad p99 p50 p95 top who p99max errmax availmin
  until=$(now_precise)
  active=$(active_slot)
  p99max=$(env_number KPI_P99_SECONDS 1)
  errmax=$(env_number KPI_MAX_ERROR_PERCENT 0.1)
  availmin=$(env_number KPI_MIN_AVAILABILITY_PERCENT 99.9)
  echo "KPI since $since (the proxy's access log, /health excluded); targets: p99 < ${p99max} s, error rate < ${errmax} %, availability > ${availmin} %"
  for slot in a b; do
    read -r n bad p99 p50 p95 top who < <(proxy_figures "$slot" "$since" "$until") \
      || die "cannot read the proxy's access log (docker logs of the proxy container)"
    # The release the slot's container runs; once it is gone, the one .env last put there.
    id=$(slot_containers "$slot" | head -n 1)
    if [[ -n "$id" ]]; then tag=$(container_ref "$id"); else tag="$(env_get "API_${slot^^}_TAG"), gone"; fi
    role=$([[ "$slot" == "$active" ]] && echo serving || echo idle)
    if ((n == 0)); then
      echo "slot $slot (api:${tag:-?}, $role): no requests"
      continue
    fi
    awk -v s="$slot" -v t="${tag:-?}" -v r="$role" -v n="$n" -v e="$bad" -v p50="$p50" -v p95="$p95" -v p99="$p99" \
      -v p99max="$p99max" -v errmax="$errmax" -v availmin="$availmin" -v top="$top" -v who="$who" 'BEGIN {
        rate = 100 * e / n; avail = 100 - rate; missed = ""
        # What users got counts whoever caused it; how much one client got tells an attack from an outage.
        single = e > 0 ? sprintf(" (%.0f %% of them to one client, %s)", 100 * top / e, who) : ""
        if (p99 >= p99max) missed = missed sprintf("; p99 %.3f s >= %s s", p99, p99max)
        if (rate >= errmax && e > 0) missed = missed sprintf("; error rate %.2f %% >= %s %%", rate, errmax)
        if (avail <= availmin && e > 0) missed = missed sprintf("; availability %.2f %% <= %s %%", avail, availmin)
        printf "slot %s (api:%s, %s): %d requests, %d errors (%.2f %%)%s, p50 %.3f s, p95 %.3f s, p99 %.3f s, availability %.2f %%: %s\n",
          s, t, r, n, e, rate, single, p50, p95, p99, avail, missed == "" ? "meets every target" : "MISSED" substr(missed, 2)
      }'
  done
}

# Prints one line per way the host differs from one consistent release; nothing when it is. The
# container, proxy, .env and history lines are the repair plan's (PLAN: plan_repair's lines), so
# status names exactly what the next command repairs.
drift() { # plan
  local plan=$1 action pid note
  while read -r action; do
    # shellcheck disable=SC2086  # an action is words
    [[ -z "$action" ]] || drift_of_action $action
  done <<<"$plan"
  if [[ -f "$LOCK_FILE" ]] && ! flock -n "$LOCK_FILE" true; then
    pid=$(lock_holder_pid)
    if [[ -n "$pid" && ! -d "/proc/$pid" ]]; then
      echo "the deploy lock is held, but its holder (pid $pid) is dead: a process it started still holds it (fuser -v $LOCK_FILE)"
    fi
  elif note=$(interrupted_operation); then
    echo "an operation was interrupted before it finished: $note"
  fi
  for note in $(leftover_rehearsals); do echo "a migration rehearsal's copy of the database was left: $note (repair.sh and the next deploy drop it)"; done
}

# The release kept for rollback (see keep_old and kept_release in lib.sh), and what going back
# to it costs: plain scripts/rollback.sh when it is the release before, else naming it.
kept_line() { # previous_release kept_release kept_container
  local previous=$1 keep=$2 id=$3 how="scripts/rollback.sh"
  if [[ -z "$id" ]]; then
    [[ -n "$previous" ]] || { echo "nothing (no earlier release in the history)"; return 0; }
    echo "nothing in the idle slot; scripts/rollback.sh rolls to $previous with a new container (KEEP_PREVIOUS=$(keep_previous))"
    return 0
  fi
  same_release "$keep" "$previous" || how="scripts/rollback.sh $(ref_tag "$keep")"
  if container_running "$id"; then
    echo "api:$(container_ref "$id") warm in slot $(container_slot "$id") ($(container_name "$id"), $(container_health "$id"), $(docker stats --no-stream --format '{{.MemUsage}}' "$id" 2>/dev/null | cut -d/ -f1 | tr -d ' ') memory): $how switches to it"
  else
    echo "api:$(container_ref "$id") stopped in slot $(container_slot "$id") ($(container_name "$id")): $how starts it, no pull"
  fi
}

main() {
  local n=5 holder target="" kpi_since=""
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --releases) (($# >= 2)) || die "--releases needs a number"; n=$2; shift ;;
      --target) (($# >= 2)) || die "--target needs compose or swarm"; target=$2; shift ;;
      --kpi) kpi_since=${kpi_since:-15m} ;;
      --since) (($# >= 2)) || die "--since needs a duration (15m, 2h, 90s) or a unix time"; kpi_since=$2; shift ;;
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
    [[ -z "$kpi_since" ]] || die "--kpi reads the single-host proxy's log; on a Swarm each node's proxy logs its own requests: docker service logs $(stack_name)_proxy"
    swarm_status "$n"
    return
  fi
  require_project
  if [[ -n "$kpi_since" ]]; then
    [[ "$kpi_since" =~ ^[0-9]{1,6}[smh]$ || "$kpi_since" =~ ^[0-9]{9,11}(\.[0-9]+)?$ ]] \
      || die "invalid --since '$kpi_since': use a duration such as 15m, 2h or 90s, or a unix time"
    kpi "$kpi_since"
    return
  fi
  echo "release:   $(api_image):$(env_get API_TAG)"
  local slot route
  echo "phase:     $(phase_line)"
  route=$(proxy_route)
  slot=${route%% *}
  [[ "$slot" == b ]] || slot=a
  echo "slot:      $slot (the proxy sends traffic to /run/slipway/api-$slot.sock)"
  read -r _ route <<<"$route"
  # Only while a deploy --canary step runs; a kill leaves it for repair.sh to take back.
  [[ -z "$route" ]] || echo "canary:    slot ${route% *} takes ${route#* } % of new requests (deploy --canary)"
  echo "health:    $(proxy_health 2>/dev/null || echo 'UNAVAILABLE (proxy not answering /health)')"
  # The newest migration applied: `dagger call migration-plan --since=<it>` shows what a release adds.
  echo "schema:    $(schema_version 2>/dev/null || echo 'unknown (db not answering)')"
  # Looked up once, for this line and the drift check.
  # What reconcile keeps (the plan's reading), so that status and the next command agree.
  local previous keep kept
  previous=$(previous_release "$(env_get API_TAG)")
  keep=$(kept_release "$(env_get API_TAG)")
  # A release with no record of its own (killed before it) keeps what it replaced, and goes back
  # to it once the repair has recorded it: plain rollback.sh, as kept_line says then.
  if [[ -z "$keep" ]]; then
    keep=$(replaced_unrecorded "$(env_get API_TAG)")
    previous=${previous:-$keep}
  fi
  kept=$([[ -z "$keep" ]] || kept_container "$keep")
  echo "kept:      $(kept_line "$previous" "$keep" "$kept")"
  echo "hooks:     $(hooks_line)"
  if [[ -f "$LOCK_FILE" ]] && ! flock -n "$LOCK_FILE" true; then
    holder=$(cat "$LOCK_FILE")
    echo "lock:      held ($holder)"
  else
    echo "lock:      free"
  fi
  local -a problems=()
  local found="" plan action
  if [[ -f "$LOCK_FILE" ]] && ! flock -n "$LOCK_FILE" true && [[ -d "/proc/$(lock_holder_pid)" ]]; then
    # A roll in progress has two releases and a moving proxy by design: that is not drift.
    echo "drift:     not judged while a release operation holds the lock"
  else
    # Not `< <(…)`: a failing check there would pass for "no drift".
    plan=$(observe_host "$(interrupted_operation || true)" | plan_repair) || plan="" found="the repair plan itself failed (its error is above); do not trust 'none'"
    found=${found:-$(drift "$plan")} || found="the drift check itself failed (its error is above); do not trust 'none'"
    [[ -z "$found" ]] || mapfile -t problems <<<"$found"
    if ((${#problems[@]} == 0)); then
      echo "drift:     none"
    else
      printf 'DRIFT:     %s\n' "${problems[@]}"
      # The plan, word for word as the next command's "repair:" lines will say it.
      while read -r action; do
        # shellcheck disable=SC2086  # an action is words
        [[ -z "$action" ]] || printf 'next:      %s\n' "$(describe_action $action)"
      done <<<"$plan"
      echo "repair:    scripts/repair.sh   (or any deploy/rollback, which repairs first)"
    fi
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
