# Sourced by lib.sh: the deploy lock (one release operation at a time, its holder's note), and the files root and the deploy user share.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# Host-wide lock: one release operation at a time. The holder's details live in the file and
# stay there if the holder is killed, which is how status.sh tells an interrupted operation.
acquire_lock() { # what [wait_seconds]
  local what=$1 wait=${2:-0} holder
  shared_file "$LOCK_FILE" || die "cannot create the lock file $LOCK_FILE: make $SLIPWAY_DIR writable by the users who release (its group)"
  # Read-only is enough for flock, so a lock file we cannot write still excludes us correctly.
  exec 9<"$LOCK_FILE" || die "cannot open the lock file $LOCK_FILE: give the users who release read access to it (chmod 0660, group of $SLIPWAY_DIR)"
  if ((wait > 0)) && ! flock -n 9; then
    step "waiting up to ${wait}s for the deploy lock ($(cat "$LOCK_FILE" 2>/dev/null))"
    flock -w "$wait" 9 || true
  fi
  if ! flock -n 9; then
    holder=$(cat "$LOCK_FILE" 2>/dev/null)
    die "another release operation holds the deploy lock (${holder:-unknown holder}); wait for it to finish (scripts/status.sh shows it)"
  fi
  INTERRUPTED=$(cat "$LOCK_FILE" 2>/dev/null || true)
  if [[ -n "$INTERRUPTED" ]]; then
    case "$what" in
      deploy* | rollback* | repair*) log "the last release operation did not finish ($INTERRUPTED); repairing before anything else" ;;
      *) log "the last release operation did not finish ($INTERRUPTED); scripts/repair.sh (or the next deploy or rollback) repairs it" ;;
    esac
  fi
  printf 'pid=%s user=%s op=%s dir=%s since=%s\n' "$$" "$(operator)" "$what" "$SLIPWAY_DIR" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null >"$LOCK_FILE" || log "warning: cannot write the holder's details to $LOCK_FILE"
  trap 'on_exit $?' EXIT
  # Scripts this one runs (deploy's pre-deploy backup) run under this lock.
  export SLIPWAY_LOCK_HELD=$$
}

# Whether this script runs under an ancestor's lock (deploy's and restore's backup): the lock is
# held, the lock file names the marker's process as its holder, and that process is this one's
# parent or grandparent (a $(...) may fork between). The marker alone, set by hand, let a backup
# skip the lock beside a deploy.
under_parents_lock() {
  local holder pid=$PPID stat _ hop
  [[ -n "${SLIPWAY_LOCK_HELD:-}" && -f "$LOCK_FILE" ]] || return 1
  holder=$(lock_holder_pid)
  [[ -n "$holder" && "$holder" == "$SLIPWAY_LOCK_HELD" ]] || return 1
  ! flock -n "$LOCK_FILE" true 2>/dev/null || return 1
  for hop in 1 2 3; do
    [[ "$pid" != "$holder" ]] || return 0
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # After the command name (which may hold spaces): state, then the parent's pid.
    read -r _ pid _ <<<"${stat##*) }"
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  done
  return 1
}

# The pid the lock file names as its holder (the note's first field), or nothing.
lock_holder_pid() { sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$LOCK_FILE" 2>/dev/null; }

# Creates FILE, if absent, writable by the project directory's group: whoever creates it first
# (root, or the deploy user), the other can still write it.
shared_file() { # file
  [[ -e "$1" ]] && return 0
  (umask 0007 && : >>"$1") || return 1
  chgrp --reference="$SLIPWAY_DIR" "$1" 2>/dev/null || true
}

# The same for a directory: made setgid with the deployment directory's group, mode 2770, by
# whoever makes it first (root or the deploy user), so both can write in it after.
shared_dir() { # dir
  [[ -d "$1" ]] && return 0
  (umask 0007 && mkdir -p "$1") || return 1
  chgrp --reference="$SLIPWAY_DIR" "$1" 2>/dev/null || true
  chmod 2770 "$1"
}

# Once the lock is held: the note cleared (release_lock_note), and deploy's and rollback's result line.
on_exit() { # exit_status
  release_lock_note
  [[ "${SCRIPT_NAME:-}" != deploy && "${SCRIPT_NAME:-}" != rollback ]] || result_line "$1"
}

# On a clean exit (success, or a failure die() handled): the operation that owns the phase (it
# recorded one, or repaired the host) left nothing half-done, so the note is cleared and the phase
# is idle again. Any other (a backup, a failing command after a crash kill) puts back the note a
# killed operation left, and leaves its phase: neither is its to clear. die_unrepaired keeps both.
release_lock_note() {
  [[ "${CLEAN_EXIT:-0}" == 1 ]] || return 0
  ((PHASE_KEEP == 0)) || return 0
  if ((PHASE_OWNED == 0)); then
    printf '%s' "${INTERRUPTED:+$INTERRUPTED$'\n'}" 2>/dev/null >"$LOCK_FILE" || true
    return 0
  fi
  : 2>/dev/null >"$LOCK_FILE" || true
  [[ "$(current_phase)" == idle* ]] || enter_phase idle "$(env_get API_TAG)"
}

# The holder's note when the lock is free: an operation that was killed before it finished.
interrupted_operation() {
  [[ -s "$LOCK_FILE" ]] && flock -n "$LOCK_FILE" true 2>/dev/null && cat "$LOCK_FILE"
}
