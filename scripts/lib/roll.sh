# Sourced by lib.sh: the roll from one release to another (roll_to) with its guard window and canary steps, and taking it back.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# Health-gated rolling replacement of the API: start the new release in the idle slot (its own
# compose service and unix socket) beside the serving one, check it runs the image asked for,
# wait for Docker to call it healthy, make .env name it, point the proxy at its slot (a file
# nginx reads per request; no reload), check the proxy reaches that very container, watch what
# users get for the guard window, then keep the old release in its slot for rollback (see
# keep_old). Any failure before the switch leaves the old container serving and removes the new
# one. When the idle slot already holds TAG (the release kept by the last roll), that container
# is started if need be and switched to: no pull, no new container. The caller has run reconcile.
#
# Why a kill at any step is safe: the slots are separate services and .env's COMPOSE_PROFILES
# names the serving one, so `docker compose up -d` only ever manages the container .env names,
# which is healthy from the moment .env names it (written before the switch); the other slot is
# left alone, and the proxy's backup upstream sends requests to whichever slot is live.
roll_to() { # tag timeout [guard_seconds] [canary_steps canary_seconds canary_min_requests]
  local tag=$1 timeout=$2 guard=${3:-0} canary=${4:-} new name served slot old_slot out prev_tag want started switched kept instance=""
  local -a old=()
  started=$(now_precise)
  # .env's slot, not the proxy's (a `docker exec`, slow on a loaded host): reconcile, which ran
  # first, made them agree.
  old_slot=$(env_slot)
  slot=$(other_slot "$old_slot")
  prev_tag=$(env_get API_TAG)
  # What reconcile observed a moment ago, when it changed nothing: no second look.
  observation_fresh || OBSERVED=()
  if ((${#OBSERVED[@]} > 0)); then mapfile -t old < <(observed_slot "$old_slot"); else mapfile -t old < <(slot_containers "$old_slot"); fi
  if [[ -n "$canary" ]] && ! { ((${#old[@]} > 0)) && [[ "$(container_health "${old[0]}")" == healthy ]]; }; then
    die "--canary needs a healthy release serving beside the new one, and slot $old_slot has none; nothing was changed: deploy without --canary"
  fi
  enter_phase started "$tag"
  kept=$(observed_switchable "$tag")
  if [[ -n "$kept" ]]; then
    # The fast path (rollback to the kept release): the health read was the observation's.
    read -r new name instance <<<"$kept"
    step "api:$tag is kept in slot $slot ($name, healthy): no pull, no migrate run, no new container"
  else
    new=$(switchable_container "$tag")
  fi
  if [[ -n "$instance" ]]; then
    :
  elif [[ -n "$new" ]]; then
    name=$(container_name "$new")
    step "api:$tag is kept in slot $slot ($name, $(container_health "$new")): no pull, no migrate run, no new container"
    container_running "$new" \
      || docker start "$new" >/dev/null || die "could not start the kept $name; run scripts/rollback.sh again (it then starts a new container)"
  else
    if [[ -n "$(slot_containers "$slot")" ]]; then
      step "removing what slot $slot holds ($(slot_summary "$slot")) to make room for api:$tag"
      remove_slot "$slot"
    fi
    step "starting api:$tag in slot $slot beside ${#old[@]} container(s) in slot $old_slot"
    # TAG reaches .env only with the switch below; until then the idle slot's service is outside
    # the active profile, and `docker compose up -d` leaves it be.
    # Not --no-deps, though it is faster: compose then drops depends_on from the container's
    # config hash, and the next `docker compose up -d` recreates the serving release.
    if ! out=$(export "API_${slot^^}_TAG=$tag" && compose up -d "api-$slot" 2>&1); then
      log "$out"
      remove_slot "$slot"
      die "docker compose could not start api:$tag; the old release keeps serving"
    fi
    new=$(slot_containers "$slot" | head -n 1)
    [[ -n "$new" ]] || die "no new api container appeared; the old release keeps serving"
    name=$(container_name "$new")
    want=$(docker image inspect -f '{{.Id}}' "$(api_image):$tag")
    if [[ "$(docker inspect -f '{{.Image}}' "$new")" != "$want" ]]; then
      docker rm -f "$new" >/dev/null
      die "$name does not run $(api_image):$tag; removed it, the old release keeps serving"
    fi
  fi
  # Ready by the switch, started beside the health wait: the guard's and the canary's switches
  # go through it (lib/proxy.sh, the control shell).
  if ((guard > 0)) || [[ -n "$canary" ]]; then open_proxy_control; fi
  [[ -n "$instance" ]] || step "waiting up to ${timeout}s for $name to turn healthy"
  if [[ -z "$instance" ]] && ! wait_healthy "$new" "$timeout"; then
    log "last health check output: $(last_health_output "$new" | tr '\n' ' ')"
    docker rm -f "$new" >/dev/null
    die "api:$tag never became healthy within ${timeout}s; removed $name, the old release keeps serving and nothing was recorded"
  fi
  enter_phase healthy "$tag"
  [[ -z "$canary" ]] || canary_steps "$canary" "$5" "$6"
  step "recording api:$tag (slot $slot) in .env before the switch"
  enter_phase switched "$tag"
  if ! name_serving "$tag" "$slot"; then
    docker rm -f "$new" >/dev/null
    die "cannot write .env (disk full?); removed $name, the old release keeps serving"
  fi
  step "switching the proxy to $name (slot $slot)"
  switched=$(now_precise)
  switch_proxy "$slot" || undo_roll "the proxy refused the new upstream"
  # A proxy image older than its instance report answers with a second exec.
  served=${SWITCHED_INSTANCE:-$(proxy_instance || true)}
  if [[ "$served" != "${instance:-$(container_instance "$new")}" ]]; then
    switch_proxy "$old_slot" || true
    undo_roll "the proxy reached '${served:-nothing}', not $name; switched back"
  fi
  if ((guard > 0 && ${#old[@]} > 0)); then
    enter_phase guarding "$tag"
    step "guard: watching what users get from $name for ${guard}s; the old release stays warm in slot $old_slot"
    watch_slot guard "" "$slot" - "$guard" "$switched" "$(proxy_figures "$old_slot" "$started" "$switched" | cut -d' ' -f3)" \
      "$(env_number GUARD_MIN_REQUESTS 20)" || guard_revert "$WATCH_VERDICT"
  fi
  close_proxy_control
  enter_phase keeping "$tag"
  step "proxy reaches $name (api:$tag); $(keep_old "${old[@]}")"
}

# The guard's and a failed canary's last steps, once the stable release (running in its slot)
# takes every request again: requests already routed land; the new container goes; the history
# records ACTION with the figures.
drop_new() { # action verdict   (roll_to's locals: tag new prev_tag)
  sleep "${SLIPWAY_SWITCH_SETTLE:-1}"
  docker stop -t 30 "$new" >/dev/null 2>&1 || true
  docker rm -f "$new" >/dev/null
  record_release "$1" "$prev_tag" "$tag" - "$2" \
    || log "warning: could not record the $1 in $HISTORY_FILE"
}

# Before the switch went through: .env names the old release again, then the new container goes.
undo_roll() { # why   (roll_to's locals: tag prev_tag old_slot new name)
  enter_phase reverting "$tag"
  if ! name_serving "$prev_tag" "$old_slot"; then
    log "warning: could not restore .env; scripts/repair.sh will"
    docker rm -f "$new" >/dev/null
    die_unrepaired "$1; removed $name, the old release keeps serving; .env still names $tag: run scripts/repair.sh"
  fi
  docker rm -f "$new" >/dev/null
  die "$1; removed $name, the old release keeps serving"
}

# The guard failed: the old release, still running in its slot, takes the traffic back at once
# (the proxy's file write, no container start), then .env names it again, the new container
# goes, and the history records a guard-rollback with the figures. Exits non-zero. The phase is
# written first: killed right after it, the next command's repair never keeps the new release,
# whatever .env still names, and points the proxy at the old one.
guard_revert() { # verdict   (roll_to's locals: tag slot new name old_slot prev_tag)
  enter_phase reverting "$tag"
  switch_proxy "$old_slot" || die_unrepaired "the guard tripped ($1) but the proxy refused slot $old_slot; the phase stays 'reverting': run scripts/repair.sh now (it points the proxy back at $prev_tag and removes $name)"
  step "guard: $1; switched the proxy back to slot $old_slot ($prev_tag)"
  name_serving "$prev_tag" "$old_slot" \
    || { PHASE_KEEP=1; log "warning: could not write .env (disk full?): it still names $tag, which scripts/repair.sh would correct; free space, then run scripts/repair.sh"; }
  drop_new guard-rollback "$1"
  post_hook post-guard-rollback guard-rollback "$prev_tag" "$tag"
  die "rolled back automatically: $1; $prev_tag serves again and $name was removed"
}

# --- canary steps (deploy --canary) ---------------------------------------------------
# The new release in its slot takes each percent share of new requests in turn while the stable
# one serves the rest (slipway-upstream --canary: a file the proxy reads per request). Both
# releases share one database schema, which is why a release's migrations must keep the release
# before it working (expand/contract). .env names the stable release until every step passed: a
# kill during a step leaves a share that the next command's reconcile takes back.
canary_steps() { # steps seconds min_requests   (roll_to's locals: tag slot new name old_slot prev_tag)
  local pct out
  for pct in ${1//,/ }; do
    step "canary: $name (api:$tag) takes $pct % of new requests for ${2}s; $prev_tag in slot $old_slot serves the rest"
    enter_phase canary "$tag" "$pct"
    out=$(proxy_upstream --canary "$slot" "$pct" 2>&1) || canary_revert "the proxy refused the canary share ($out)"
    printf '%s\n' "$out" >&2
    watch_slot "canary $pct %" " at $pct %" "$slot" "$old_slot" "$2" "$(now_precise)" 0 "$3" || canary_revert "$WATCH_VERDICT"
  done
  step "canary: every step passed; $name takes all requests"
}

# A canary step failed: the stable release, which .env still names, takes every request back (a
# file write, no container start), the canary container goes, and the history records a
# canary-rollback with the figures. Exits non-zero.
canary_revert() { # verdict   (roll_to's locals: tag new name old_slot prev_tag)
  enter_phase reverting "$tag"
  switch_proxy "$old_slot" || die_unrepaired "the canary failed ($1) but the proxy refused slot $old_slot; the phase stays 'reverting': run scripts/repair.sh now"
  step "canary: $1; sent every request to slot $old_slot ($prev_tag) again"
  drop_new canary-rollback "$1"
  die "canary rolled back automatically: $1; $prev_tag serves every request again and $name was removed"
}
