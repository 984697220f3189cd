# Sourced by lib.sh: a release's named phases, and the one writer of "this release serves".
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# --- phases ------------------------------------------------------------------------
# A roll (deploy, rollback) moves through these, in order; README and RUNBOOK have the table of
# what is true on the host in each. The phase is written (one file, by rename) before the step
# that enters it, so a kill leaves the phase it was in: status.sh shows it, and the repair plan
# (lib/reconcile.sh) reads it.
#   idle       one release serves; .env and releases.log name it
#   started    the new release's container is being started in the idle slot; the old one serves
#   healthy    the new container passed its health check; the old one still serves
#   canary     the new release takes a share of requests (detail: the percent); .env names the old
#   switched   .env names the new release; the proxy is being pointed at it
#   guarding   the proxy serves the new release; the old one stays warm for the guard window
#   reverting  the switch, the guard or a canary step failed: the proxy is being switched back and
#              .env made to name the old release again; the new release must not be kept
#   keeping    the new release serves; the old one is being kept (KEEP_PREVIOUS), then recorded
# Only the operation that set a phase clears it (release_lock_note): one that ends by its own hand
# (die) after a step that left the host consistent goes back to idle; a backup, a status or a
# failing command after a crash leaves the phase that says what to undo (a backup.sh after a kill
# during the guard's revert erased `reverting`, and the next command kept the rejected release).
PHASES=(idle started healthy canary switched guarding reverting keeping)
PHASE_FILE=${SLIPWAY_PHASE_FILE:-$SLIPWAY_DIR/.release-phase}
# Set once this process recorded a phase (it owns the phase from then on), and by die_unrepaired
# when it stops with the host half-way (the phase and the lock's note stay for the repair).
PHASE_OWNED=0 PHASE_KEEP=0

# Records PHASE of the operation moving to release TAG, by rename (whole or not at all). A phase
# file that cannot be written is only a warning: the repair plan works without it.
enter_phase() { # phase tag [detail]
  local tmp
  [[ " ${PHASES[*]} " == *" $1 "* ]] || die "internal: unknown phase '$1'"
  tmp="$PHASE_FILE.$$"
  PHASE_OWNED=1
  if printf 'phase=%s tag=%s detail=%s op=%s since=%s\n' "$1" "${2:--}" "${3:--}" "${SCRIPT_NAME:-slipway}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null >"$tmp" \
    && mv -f "$tmp" "$PHASE_FILE" 2>/dev/null; then
    return 0
  fi
  rm -f "$tmp" 2>/dev/null || true
  log "warning: cannot record the phase ($1) in $PHASE_FILE"
}

# "PHASE TAG DETAIL" as last recorded ("idle - -" when none was).
current_phase() {
  local line phase=idle tag=- detail=-
  if [[ -f "$PHASE_FILE" ]] && line=$(cat "$PHASE_FILE" 2>/dev/null); then
    [[ "$line" =~ phase=([a-z]+)\ tag=([^ ]+)\ detail=([^ ]+) ]] && phase=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]} detail=${BASH_REMATCH[3]}
  fi
  echo "$phase $tag $detail"
}

# The phase for a person: "idle", or what the last operation was doing when it stopped.
phase_line() {
  local line
  line=$(cat "$PHASE_FILE" 2>/dev/null || true)
  if [[ ! "$line" =~ phase=([a-z]+)\ tag=([^ ]+)\ detail=([^ ]+)\ op=([^ ]+)\ since=([^ ]+) ]] || [[ "${BASH_REMATCH[1]}" == idle ]]; then
    echo idle
    return 0
  fi
  local detail=""
  [[ "${BASH_REMATCH[3]}" == - ]] || detail=" at ${BASH_REMATCH[3]} %"
  echo "${BASH_REMATCH[1]}$detail (${BASH_REMATCH[4]} to api:${BASH_REMATCH[2]}, since ${BASH_REMATCH[5]})"
}

# --- the one writer of "this release serves" ---------------------------------------
# .env names release TAG in SLOT: API_TAG, API_SLOT, the slot's own tag, and COMPOSE_PROFILES,
# so that `docker compose up -d` manages that slot's container and leaves the other be. One
# atomic .env write (env_set), with any other KEY VALUE pairs that must change with it. On a
# Swarm (SLOT "-": no slots, the stack file names the release) only API_TAG.
name_serving() { # tag slot|- [KEY VALUE ...]
  local tag=$1 slot=$2
  shift 2
  if [[ "$slot" == - ]]; then
    env_set API_TAG "$tag" "$@"
  else
    env_set API_TAG "$tag" API_SLOT "$slot" COMPOSE_PROFILES "slot-$slot" "API_${slot^^}_TAG" "$tag" "$@"
  fi
}

# Stops the command with the host half-way (the proxy refused the switch back): the phase and the
# lock's note stay as they are, so status.sh and the next command's repair see what to undo.
die_unrepaired() { # message
  PHASE_KEEP=1
  die "$@"
}
