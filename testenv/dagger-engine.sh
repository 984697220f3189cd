#!/usr/bin/env bash
# Test scaffolding, never product code. Provides the Dagger engine that test/dagger-engine.test.ts
# drives with the real `dagger` CLI, pinned to the version in dagger.json:
#   1. a `dagger` already on PATH whose engine answers with that version (a laptop, a CI runner);
#   2. otherwise the engine, CLI and SDK images built from the unmodified source beside the
#      project (../shared/dagger-engine/build.sh, cached under ~/.cache), started as a privileged
#      container with a registry mirror holding the project's base images under their public names;
#   3. otherwise nothing: the engine tests skip and say what is missing.
# Writes .testenv/dagger.env (what the tests export before calling `dagger`) or .testenv/dagger-skip.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
state="$repo/.testenv"
version=$(sed -n 's/.*"engineVersion": *"\(v[0-9.]*\)".*/\1/p' "$repo/dagger.json")
build_script=${SLIPWAY_DAGGER_BUILD:-$repo/../shared/dagger-engine/build.sh}
trivy_version=$(sed -n 's/.*TRIVY_VERSION = "\([0-9.]*\)".*/\1/p' "$repo/dagger/src/commands/trivy.ts")

# shellcheck source=testenv/pins.sh
source "$here/pins.sh"

log() { printf '%s [dagger-engine] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

skip() { # reason
  printf '%s\n' "$1" >"$state/dagger-skip"
  rm -f "$state/dagger.env"
  log "engine tests will skip: $1"
}

# Runs a step and appends "name seconds" to the timings file the README's figures come from.
timed() { # name command...
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  printf '%s %s\n' "$name" "$(($(date +%s) - start))" >>"$state/dagger-times"
  log "$name: $(($(date +%s) - start)) s"
}

cli_on_path() {
  local out
  command -v dagger >/dev/null 2>&1 || return 1
  out=$(DAGGER_NO_UPDATE_CHECK=1 DO_NOT_TRACK=1 timeout 180 dagger core version 2>/dev/null) || {
    log "a dagger CLI is on PATH but its engine does not answer; building one instead"
    return 1
  }
  [[ "$out" == *"$version"* ]] || { log "the dagger on PATH runs ${out:-an unknown version}, not $version; building $version instead"; return 1; }
  printf 'DAGGER_NO_UPDATE_CHECK=1\nDO_NOT_TRACK=1\nDAGGER_NO_NAG=1\nSLIPWAY_DAGGER_SOURCE=path\n' >"$state/dagger.env"
  log "using the dagger CLI on PATH ($(command -v dagger), engine $version)"
}

# The engine runs the Trivy image too; where it cannot be pulled, a stand-in with the Trivy this
# test environment builds from source (the official image: trivy on PATH as the entrypoint).
trivy_image() {
  SLIPWAY_TRIVY_BIN=$(cat "$state/trivy-path") "$here/standins.sh" "aquasec/trivy:$trivy_version"
}

built_engine() {
  : >"$state/dagger-times"
  log "building Dagger $version from source with $build_script (cached after the first run; log: .testenv/dagger-build.log)"
  timed "build (CLI, engine, SDK images)" bash "$build_script" build >"$state/dagger-build.log" 2>&1 \
    || { log "the build failed: tail .testenv/dagger-build.log"; tail -n 20 "$state/dagger-build.log" >&2; return 1; }
  timed "trivy image" trivy_image
  clear_stopped
  timed "engine start (mirror filled)" bash "$build_script" start "$(pin_node)" "$(pin_postgres)" "aquasec/trivy:$trivy_version" \
    >>"$state/dagger-build.log" 2>&1 || { tail -n 20 "$state/dagger-build.log" >&2; return 1; }
  bash "$build_script" env | sed -n 's/^export //p' | tr ' ' '\n' >"$state/dagger.env"
  network_facts >>"$state/dagger.env"
  echo "SLIPWAY_DAGGER_SOURCE=built" >>"$state/dagger.env"
  log "engine $version built from source is running"
}

# A machine that restarts keeps Docker's state but not its processes: the engine and mirror
# containers are there, stopped, and build.sh start only starts what it creates. Removing them
# (the engine's cache volume stays) lets start recreate both, with the mirror's new address.
clear_stopped() {
  local name running
  for name in "dagger-engine-$version" "dagger-$version-mirror"; do
    running=$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null) || continue
    if [[ "$running" != true ]]; then
      log "found $name stopped (a restarted machine): recreating the engine and its mirror"
      bash "$build_script" stop
      return 0
    fi
  done
}

# Where the engine's containers find this machine (the engine network's gateway) and the mirror
# registry (by address: the engine resolves names with its own DNS).
network_facts() {
  local engine net mirror
  engine=$(sed -n 's#^_EXPERIMENTAL_DAGGER_RUNNER_HOST=docker-container://##p' "$state/dagger.env")
  net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$engine")
  mirror=$(docker network inspect "$net" -f '{{range .Containers}}{{println .Name}}{{end}}' | grep mirror | head -n1)
  echo "SLIPWAY_ENGINE_GATEWAY=$(docker network inspect "$net" -f '{{(index .IPAM.Config 0).Gateway}}')"
  echo "SLIPWAY_ENGINE_REGISTRY=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$mirror"):5000"
  echo "SLIPWAY_HOST_REGISTRY=$(docker port "$mirror" 5000/tcp | head -n1)"
}

main() {
  trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
  mkdir -p "$state"
  rm -f "$state/dagger-skip"
  [[ -n "$version" ]] || { skip "cannot read engineVersion from dagger.json"; return 0; }
  cli_on_path && return 0
  if [[ ! -f "$build_script" ]]; then
    skip "no Dagger engine: no dagger CLI with a $version engine on PATH, and no $build_script to build one from source"
    return 0
  fi
  # A build that exists but fails is a failure, not a skip: it would hide a broken module.
  built_engine
}

main "$@"
