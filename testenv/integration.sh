#!/usr/bin/env bash
# Test scaffolding: the integration suites. The Swarm suite (its own docker-in-docker nodes,
# registry port and network; nothing shared with the others) runs alongside the rest, which run
# one file at a time; its output is kept in .testenv/swarm-suite.log and printed after theirs.
#
#   testenv/integration.sh [vitest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s [integration] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# A run from a fresh state takes about 17 GiB of Docker's disk at its peak (testenv/fresh.sh
# measures it). Short of that, the stacks' databases fail their writes while reads still pass,
# far from the cause: refuse at once instead.
disk_room() {
  local need=${SLIPWAY_TEST_MIN_FREE_GB:-18} dir=/var/lib/docker free
  [[ -d "$dir" ]] || dir=/var/lib
  free=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1024 / 1024) }')
  ((free >= need)) && return 0
  log "only $free GiB free under $dir; the integration suites need about $need GiB (a run from a fresh state peaks at about 17 GiB): free some (docker system prune), or set SLIPWAY_TEST_MIN_FREE_GB"
  return 1
}

main() {
  # One run at a time on this engine, and none of an earlier run's stacks left (testenv/stacks.sh).
  [[ -n "${SLIPWAY_TEST_LOCK_HELD:-}" ]] || exec bash testenv/stacks.sh run bash "$0" "$@"
  local swarm_log=.testenv/swarm-suite.log swarm_pid status=0 swarm_status=0
  local -a lenient=()
  # A file filter (testenv/integration.sh test/x.test.ts) leaves one lane empty; the full run
  # must find its files.
  (($# == 0)) || lenient=(--passWithNoTests)
  mkdir -p .testenv
  disk_room
  # Both lanes build the same tags at their start: built once here, each finds them cached.
  (($# > 0)) || npx tsx test/support/build-images.ts
  log "the Swarm suite runs alongside the others; its output: $swarm_log (printed at the end)"
  npx vitest run --project swarm "${lenient[@]}" "$@" >"$swarm_log" 2>&1 &
  swarm_pid=$!
  npx vitest run --project integration "${lenient[@]}" "$@" || status=$?
  wait "$swarm_pid" || swarm_status=$?
  log "the Swarm suite (exit $swarm_status):"
  cat "$swarm_log"
  ((status == 0 && swarm_status == 0))
}

main "$@"
