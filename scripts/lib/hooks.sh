# Sourced by lib.sh: the project's hooks/ executables, run around a release with the release in SLIPWAY_* variables.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# --- hooks: the project's own executables in hooks/, run around a release -----------------
# pre-deploy, post-deploy, pre-rollback, post-rollback, post-guard-rollback. Each gets the
# release in SLIPWAY_* environment variables (values only: nothing of them is ever spliced into
# a command line) and HOOK_TIMEOUT seconds (default 60, 1 to 3600), after which it is killed.
HOOKS_LOG=${SLIPWAY_HOOKS_LOG:-$SLIPWAY_DIR/hooks.log}

# Runs hooks/NAME if it is there and executable; returns its exit status (124: killed at the
# limit), 0 when there is none. A pre-* hook's failure is the caller's to act on; a post-* one
# is logged, recorded in HOOKS_LOG for status.sh, and never undoes a release.
# A hook holds nothing of ours: it runs without the deploy lock's descriptor (9), in a session
# and process group of its own, and whatever it left running there (a CDN purge sent to the
# background) is ended when it returns: a child that kept the lock's descriptor held the lock,
# and the next rollback was refused.
run_hook() { # name command ref previous_ref migrations
  local name=$1 file="$SLIPWAY_DIR/hooks/$1" limit status=0 pid
  [[ -f "$file" && -x "$file" ]] || return 0
  limit=$(env_number HOOK_TIMEOUT 60)
  step "hook $name (at most ${limit}s)"
  # setsid runs in place (a background job of a shell without job control leads no group), so
  # the hook's session and group are PID's.
  (cd "$SLIPWAY_DIR" && exec env "SLIPWAY_COMMAND=$2" "SLIPWAY_HOOK=$name" "SLIPWAY_ENVIRONMENT=$(env_get SLIPWAY_ENVIRONMENT)" \
    "SLIPWAY_TAG=$(ref_tag "$3")" "SLIPWAY_DIGEST=$(release_digest "$3")" \
    "SLIPWAY_PREVIOUS_TAG=$([[ -z "${4:-}" || "$4" == - ]] || ref_tag "$4")" \
    "SLIPWAY_PREVIOUS_DIGEST=$([[ -z "${4:-}" || "$4" == - ]] || release_digest "$4")" \
    "SLIPWAY_OPERATOR=$(operator)" "SLIPWAY_MIGRATIONS=${5:--}" "SLIPWAY_DIR=$SLIPWAY_DIR" \
    setsid timeout --kill-after=5 "$limit" "$file" </dev/null >&2 9<&-) &
  pid=$!
  wait "$pid" || status=$?
  kill -TERM -- "-$pid" 2>/dev/null || true
  ((status == 0)) && return 0
  HOOK_FAILURE="hooks/$name $( ((status == 124 || status == 137)) && echo "was killed after ${limit}s (HOOK_TIMEOUT)" || echo "exited $status")"
  if [[ "$name" == post-* ]]; then
    log "warning: $HOOK_FAILURE; the release stands (a post-* hook never undoes one)"
    { shared_file "$HOOKS_LOG" && printf '%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HOOK_FAILURE" "$(ref_tag "$3")" >>"$HOOKS_LOG"; } 2>/dev/null \
      || log "warning: could not record it in $HOOKS_LOG"
  fi
  return "$status"
}

# A pre-* hook that fails stops the command before anything has changed.
pre_hook() { # name command ref previous_ref
  run_hook "$@" || die "$HOOK_FAILURE, so nothing was changed; fix hooks/$1 (or remove it) and run the command again"
}

post_hook() { run_hook "$@" || true; }

# status.sh's hooks: line.
hooks_line() {
  local installed
  installed=$(find "$SLIPWAY_DIR/hooks" -maxdepth 1 -type f -perm -u+x ! -name '*.example' -printf '%f ' 2>/dev/null || true)
  installed=${installed% }
  printf '%s' "${installed:-none installed}"
  [[ ! -s "$HOOKS_LOG" ]] || printf '; LAST FAILURE: %s' "$(tail -n 1 "$HOOKS_LOG" | tr '\t' ' ')"
  echo
}
