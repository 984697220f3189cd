#!/usr/bin/env bash
# Test scaffolding, never product code. Makes sure every base image the project pins is
# present locally: a real pull first, and only when that fails (no registry here) a local
# stand-in with the same public name, built from a debootstrap'd Debian that honours the
# official image's contract. The project's Dockerfiles and compose file then run unchanged.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SLIPWAY_TESTENV_CACHE:-$HOME/.cache/slipway-testenv}
base_image=slipway-testenv/bookworm-minbase:1

log() { printf '%s [standins] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# shellcheck source=testenv/pins.sh
source "$here/pins.sh"
pinned_images() { pin_node; pin_nginx; pin_postgres; }

ensure_base() {
  docker image inspect "$base_image" >/dev/null 2>&1 && return 0
  local rootfs="$cache/rootfs-bookworm"
  if [[ ! -x "$rootfs/bin/bash" ]]; then
    log "debootstrap bookworm minbase into $rootfs (about 30 s)"
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { log "debootstrap failed; see $cache/debootstrap.log"; return 1; }
  fi
  log "importing $base_image"
  tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
}

build_standin() {
  local image=$1 kind=$2 ctx
  ctx=$(mktemp -d)
  cp "$here/standins/"* "$ctx/"
  case "$kind" in
    node)
      cp "$(readlink -f "$(command -v node)")" "$ctx/node"
      cp -r "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$ctx/npm"
      cp /etc/ssl/certs/ca-certificates.crt "$ctx/" ;;
    trivy)
      [[ -x "${SLIPWAY_TRIVY_BIN:-}" ]] || { log "set SLIPWAY_TRIVY_BIN to a built trivy for $image"; return 1; }
      cp "$SLIPWAY_TRIVY_BIN" "$ctx/trivy"
      cp /etc/ssl/certs/ca-certificates.crt "$ctx/" ;;
  esac
  log "building stand-in $image from standins/$kind.Dockerfile"
  docker build -q --build-arg BASE="$base_image" --label "$RECIPE_LABEL=$(recipe)" -f "$ctx/$kind.Dockerfile" -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# Stand-ins carry the hash of the recipes they were built from: a machine that keeps its Docker
# state (a restart) rebuilds one whose recipe changed since. A pulled image (it has a registry
# digest) is the real thing and is kept.
RECIPE_LABEL=org.slipway.standin.recipe
recipe() { cat "$here/standins/"* | sha256sum | cut -c1-16; }
current_image() { # image: present and either pulled or built from today's recipes
  local digests label
  digests=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$1" 2>/dev/null) || return 1
  # Pulled from its own repository (a push to a test registry adds that registry's name instead).
  grep -q "^${1%:*}@" <<<"$digests" && return 0
  label=$(docker image inspect -f "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$1")
  [[ "$label" == "$(recipe)" ]] || { log "stand-in $1 was built from older recipes: rebuilding it"; return 1; }
}

ensure_image() {
  local image=$1 kind
  if current_image "$image"; then return 0; fi
  if docker pull -q "$image" >/dev/null 2>&1; then log "pulled $image"; return 0; fi
  case "$image" in
    node:*) kind=node ;; postgres:*) kind=postgres ;; nginx:*) kind=nginx ;; aquasec/trivy:*) kind=trivy ;;
    docker:*-dind) kind=dind ;;
    *) log "no stand-in recipe for $image"; return 1 ;;
  esac
  ensure_base
  build_standin "$image" "$kind"
}

# With no arguments: the images the product pins. With arguments: those images.
main() {
  mkdir -p "$cache"
  local image
  local -a images=("$@")
  ((${#images[@]} > 0)) || mapfile -t images < <(pinned_images)
  for image in "${images[@]}"; do
    [[ -n "$image" ]] && ensure_image "$image"
  done
  log "base images ready: ${images[*]}"
}

main "$@"
