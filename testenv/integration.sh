#!/usr/bin/env bash
# Test scaffolding: the integration suites. The Swarm suite (its own docker-in-docker nodes,
# registry port and network; nothing shared with the others) runs alongside the rest, which run
# one file at a time; its output is kept in .testenv/swarm-suite.log and printed after theirs.
#
#   testenv/integration.sh [vitest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s [integration] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

main() {
  local swarm_log=.testenv/swarm-suite.log swarm_pid status=0 swarm_status=0
  local -a lenient=()
  # A file filter (testenv/integration.sh test/x.test.ts) leaves one lane empty; the full run
  # must find its files.
  (($# == 0)) || lenient=(--passWithNoTests)
  mkdir -p .testenv
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
