#!/usr/bin/env bash
# Test scaffolding, never product code. The fresh-machine lane: removes everything of this
# project's that Docker holds (containers, volumes, networks, images, the build cache, the Dagger
# engine's state), as a new machine has none of it, then runs `npm test`. Kept: the tool caches
# under ~/.cache (Trivy, actionlint, the Dagger build, the debootstrap rootfs) and the host's
# packages, which a new machine pays for once in setup (README: the fresh figures add them).
#
#   testenv/fresh.sh            reset, then npm test
#   testenv/fresh.sh --reset    reset only
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s [fresh] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

# Names of what this project's tests and setup create: compose projects slipwayt*, the test
# Postgres, the Swarm nodes, the test sshd and registries, the Dagger engine and its mirror.
ours() { grep -E '^(slipway|dagger-engine-|dagger-v)' || true; }

remove_containers() {
  local ids
  ids=$( { docker ps -a --format '{{.Names}}' | ours; docker ps -a --filter 'label=com.docker.compose.project' \
    --format '{{.Names}} {{.Label "com.docker.compose.project"}}' | awk '$2 ~ /^slipway/ {print $1}'; } | sort -u)
  [[ -z "$ids" ]] || { log "removing containers: $(wc -l <<<"$ids")"; xargs docker rm -f >/dev/null <<<"$ids"; }
}

remove_volumes() {
  local vols
  vols=$(docker volume ls -q | ours)
  [[ -z "$vols" ]] || { log "removing volumes: $(wc -l <<<"$vols")"; xargs docker volume rm -f >/dev/null <<<"$vols"; }
}

remove_networks() {
  local nets
  nets=$(docker network ls --format '{{.Name}}' | ours)
  [[ -z "$nets" ]] || { log "removing networks: $(wc -l <<<"$nets")"; xargs docker network rm >/dev/null <<<"$nets"; }
}

# The project's images, also as tagged for the test registries (127.0.0.1:5000, :5003), the
# stand-ins for the base images (labelled by standins.sh), and the engine's images built from
# the cached binaries with the SDK runtimes' stand-ins it pushes to its mirror
# (127.0.0.1:15990). An image named twice goes with its first name.
remove_images() {
  local imgs
  imgs=$( { docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^((127\.0\.0\.1:[0-9]+/)?(slipway|slipway-testenv|dagger-build)|127\.0\.0\.1:15990)/' || true
    docker images -q --filter 'label=org.slipway.standin.recipe'; } | sort -u)
  [[ -z "$imgs" ]] || { log "removing images: $(wc -l <<<"$imgs")"; xargs docker rmi -f >/dev/null 2>&1 <<<"$imgs" || true; }
  log "pruning dangling images and the build cache"
  docker image prune -f >/dev/null
  docker builder prune -af >/dev/null
}

reset() {
  if ! docker version >/dev/null 2>&1; then
    log "no Docker engine answers: nothing to reset"
    return 0
  fi
  bash testenv/swarm.sh purge
  remove_containers
  remove_volumes
  remove_networks
  remove_images
  rm -rf .testenv
  log "reset done: $(docker images -q | wc -l) image(s) left on this engine (not this project's)"
}

main() {
  case "${1:-}" in
    -h | --help) usage; return 0 ;;
    --reset) reset; return 0 ;;
    "") ;;
    *) usage >&2; return 2 ;;
  esac
  local start=$SECONDS status=0 sampler
  reset
  mkdir -p .testenv
  # How much disk a fresh run takes at its peak: a machine with less free fails in odd places.
  while sleep 5; do df -B1 --output=avail /var/lib/docker | tail -n 1; done >.testenv/fresh-disk.log 2>/dev/null &
  sampler=$!
  npm test || status=$?
  kill "$sampler" 2>/dev/null || true
  log "npm test after a reset: exit $status in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
  log "free disk under /var/lib/docker: $(sort -n .testenv/fresh-disk.log | head -n 1 | awk '{printf "%.1f GiB", $1 / 2^30}') at the least, $(head -n 1 .testenv/fresh-disk.log | awk '{printf "%.1f GiB", $1 / 2^30}') at the start"
  return "$status"
}

main "$@"
