# Sourced by lib.sh: the proxy's route (which release slot takes new requests) and the ways to change it.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# By name, resolved once a run (reconcile sets PROXY_CONTAINER): compose's name for it stays, even
# if the container is recreated.
proxy_container() { echo "${PROXY_CONTAINER:-$(service_container proxy)}"; }

proxy_exec() { # command...
  local id
  id=$(proxy_container)
  [[ -n "$id" ]] || { log "the proxy container is not running"; return 1; }
  docker exec "$id" "$@"
}

proxy_health() { proxy_exec curl -fsS --max-time 5 http://127.0.0.1:8080/health; }

# Which container the proxy reaches: the instance header of /health through it.
proxy_instance() {
  proxy_exec curl -fsS --max-time 5 -o /dev/null -D - http://127.0.0.1:8080/health \
    | tr -d '\r' | sed -n 's/^x-slipway-instance: *//Ip'
}

# --- the control shell -------------------------------------------------------------
# A shell in the proxy, started before it is needed (a deploy's guard and canary steps): a
# switch through it is a line on its stdin, not a new `docker exec`, which takes 0.9-1.4 s to
# start on a loaded 2-core host (bench/README.md), all of it time a bad release keeps failing
# requests. It reads one slipway-upstream argument list a line and ends at its stdin's end, so
# with this script however that ends (a kill included). Its pipes are PROXY_CONTROL_IN/OUT.
# CONTAINER defaults to the proxy's, looked up; a rollback names compose's own name for it
# (compose_container_name) instead, so the shell starts beside its first look at the host, before any docker call.
PROXY_CONTROL_IN="" PROXY_CONTROL_OUT=""
open_proxy_control() { # [container]
  local id=${1:-}
  [[ -n "$id" ]] || id=$(proxy_container)
  [[ -n "$id" && -z "$PROXY_CONTROL_IN" ]] || return 0
  # The input is checked before it is sent (proxy_control); set -f: no globbing of it in there.
  coproc PROXY_CONTROL_SHELL {
    exec docker exec -i "$id" sh -c 'set -f; while read -r n args; do slipway-upstream $args 2>&1; echo "slipway-control-exit $n $?"; done' 2>/dev/null
  }
  # Plain descriptors, which every subshell ($(...)) inherits, whatever the bash version. A shell
  # that ended at once (the exec refused) may be gone already, its descriptors with it: then
  # there is no control shell, and switches exec as before.
  local in=${PROXY_CONTROL_SHELL[1]:-} out=${PROXY_CONTROL_SHELL[0]:-}
  [[ -n "$in" && -n "$out" ]] || return 0
  { exec {PROXY_CONTROL_IN}>&"$in"; } 2>/dev/null || { PROXY_CONTROL_IN=""; return 0; }
  { exec {PROXY_CONTROL_OUT}<&"$out"; } 2>/dev/null || { exec {PROXY_CONTROL_IN}>&-; PROXY_CONTROL_IN="" PROXY_CONTROL_OUT=""; }
  # bash's own copies go: close_proxy_control's close is then the shell's end of input.
  { exec {in}>&- {out}<&-; } 2>/dev/null || true
}

close_proxy_control() {
  [[ -n "$PROXY_CONTROL_IN" ]] || return 0
  { exec {PROXY_CONTROL_IN}>&- {PROXY_CONTROL_OUT}<&-; } 2>/dev/null || true
  PROXY_CONTROL_IN="" PROXY_CONTROL_OUT=""
}

# slipway-upstream ARGS through the control shell: its output and exit status, or status 3 with
# nothing run when there is no control shell or it has gone (the caller then execs).
proxy_control() { # args...
  local arg line n=$RANDOM$RANDOM
  [[ -n "$PROXY_CONTROL_IN" ]] || return 3
  for arg in "$@"; do [[ "$arg" =~ ^(--canary|--show|[ab]|[0-9]{1,3})$ ]] || die "internal: '$arg' is not a slipway-upstream argument"; done
  # A shell that has gone would answer a write with SIGPIPE, which ends a shell: not this one.
  (trap '' PIPE && printf '%s %s\n' "$n" "$*" >&"$PROXY_CONTROL_IN") 2>/dev/null || return 3
  # Numbered, so that a late answer to an earlier command (one that timed out) is not taken for this one's.
  while IFS= read -r -t 10 line <&"$PROXY_CONTROL_OUT"; do
    if [[ "$line" =~ ^slipway-control-exit\ ([0-9]+)\ ([0-9]+)$ ]]; then
      [[ "${BASH_REMATCH[1]}" != "$n" ]] || return "${BASH_REMATCH[2]}"
    else
      printf '%s\n' "$line"
    fi
  done
  # No answer in 10 s, or the shell ended: the switch is idempotent, so the caller's exec redoes it.
  return 3
}

# slipway-upstream ARGS in the proxy: through the control shell when one is open, else an exec.
proxy_upstream() { # args...
  local status=0
  proxy_control "$@" || status=$?
  ((status == 3)) || return "$status"
  proxy_exec slipway-upstream "$@"
}

# --- the route --------------------------------------------------------------------
# Points the proxy at SLOT. The switch is idempotent, so a `docker exec` that fails to start (the
# runtime, busy on a loaded host: "OCI runtime exec failed ... connection reset by peer") is
# tried again; the proxy's own refusal (no socket in that slot) is final.
switch_proxy() { # slot; sets SWITCHED_INSTANCE to what the proxy reached right after (or "")
  local attempt out
  SWITCHED_INSTANCE=""
  for attempt in 1 2 3; do
    if out=$(proxy_upstream "$1" 2>&1); then
      printf '%s\n' "$out" >&2
      SWITCHED_INSTANCE=$(sed -n 's/^upstream now: slot [ab] (instance: \([^ )]*\))$/\1/p' <<<"$out")
      [[ "$SWITCHED_INSTANCE" != none ]] || SWITCHED_INSTANCE=""
      return 0
    fi
    printf '%s\n' "$out" >&2
    [[ "$out" == *"OCI runtime exec failed"* ]] || return 1
    log "the proxy's exec did not start (attempt $attempt of 3); trying again"
    sleep 1
  done
  return 1
}

# The release slot the proxy sends traffic to (a or b); .env's API_SLOT when the proxy is down.
active_slot() {
  local slot
  slot=$(proxy_route)
  [[ "${slot%% *}" == b ]] && echo b || echo a
}

# The proxy's route: the active slot, then during a canary step its slot and share ("a b 10");
# .env's API_SLOT when the proxy is down.
proxy_route() { proxy_upstream --show 2>/dev/null || env_get API_SLOT; }
