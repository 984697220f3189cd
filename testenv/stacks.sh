#!/usr/bin/env bash
# Test scaffolding, never product code. The test stacks (compose projects slipwayt + 6 hex
# digits, test/support/stack.ts) and the test sshd and registries publish fixed ports on one
# Docker engine. A run that is cut off (a kill, a stopped machine) leaves them: the stacks'
# `restart: unless-stopped` brings them back with the engine, and the next run's stack then
# finds its port taken. So a run holds this machine's lock for them, and first removes what
# an earlier run left.
#
#   testenv/stacks.sh run CMD [ARGS...]   take the lock (or fail at once, naming its holder),
#                                          remove what an earlier run left, then run CMD
#   testenv/stacks.sh clean               remove it only (refused while another run holds the lock)
set -euo pipefail

LOCK=${SLIPWAY_TEST_LOCK:-/tmp/slipway-test-stacks.lock}
PROJECT_RE='^slipwayt[0-9a-f]{6}$'

log() { printf '%s [stacks] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

# The compose projects of test stacks that Docker still holds, one per line.
projects() {
  { docker ps -a --format '{{.Label "com.docker.compose.project"}}'
    docker network ls --format '{{.Name}}' | sed -n 's/_default$//p'
    docker volume ls --format '{{.Name}}' | sed -n 's/_\(db-data\|sockets\)$//p'; } | grep -E "$PROJECT_RE" | sort -u || true
}

remove_project() {
  local project=$1 ids
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
  [[ -z "$ids" ]] || xargs docker rm -f >/dev/null <<<"$ids"
  docker network ls -q --filter "label=com.docker.compose.project=$project" | xargs -r docker network rm >/dev/null
  docker volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r docker volume rm -f >/dev/null
}

# The test sshd and registries are this machine's processes, started from a temporary config
# by a test worker (test/support/sshd.ts). One whose worker was killed (its parent is now init
# or another process, not node) would answer on the next run's port with other keys; one whose
# worker lives is in use.
stop_processes() {
  local pattern='/slipway-(sshd|registry)-[^/]+/(sshd_config|config\.yml)' pid parent
  for pid in $(pgrep -f -- "$pattern" || true); do
    parent=$(ps -o ppid= -p "$pid" | tr -d ' ')
    [[ -n "$parent" ]] || continue
    # A vitest worker names itself "node (vitest N)".
    [[ "$parent" == 1 || "$(ps -o comm= -p "$parent")" != node* ]] || continue
    log "stopping a test server an earlier run left: $(ps -o args= -p "$pid")"
    kill "$pid" 2>/dev/null || true
  done
}

clean() {
  local project list
  stop_processes
  docker version >/dev/null 2>&1 || return 0
  list=$(projects)
  [[ -n "$list" ]] || return 0
  log "removing the test stacks an earlier run left: $(paste -sd ' ' <<<"$list")"
  while read -r project; do remove_project "$project"; done <<<"$list"
}

# Held through fd 9 by this process and by what it then runs, until they end.
take_lock() {
  if ! { exec 9<>"$LOCK"; } 2>/dev/null; then
    log "cannot open the lock $LOCK (another user's file?): set SLIPWAY_TEST_LOCK to a file every test user can write"
    return 1
  fi
  if ! flock -n 9; then
    log "another test run holds $LOCK ($(head -n 1 "$LOCK" 2>/dev/null || echo "holder unknown")): it uses the same stacks and ports; wait for it to end, or stop it"
    return 1
  fi
  printf 'pid %s, %s, since %s\n' "$$" "$PWD" "$(date -u +%H:%M:%S)" >"$LOCK"
  export SLIPWAY_TEST_LOCK_HELD=1
}

main() {
  case "${1:-}" in
    -h | --help) usage ;;
    run | clean)
      [[ "$1" == clean ]] || (($# >= 2)) || { usage >&2; return 2; }
      [[ -n "${SLIPWAY_TEST_LOCK_HELD:-}" ]] || take_lock
      clean
      [[ "$1" == clean ]] || exec "${@:2}"
      ;;
    *) usage >&2; return 2 ;;
  esac
}

main "$@"
