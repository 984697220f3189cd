#!/usr/bin/env bash
# Test scaffolding, never product code: makes a fresh Debian machine able to run the
# integration tests: a Docker engine with compose v2, sshd, a registry, the Postgres
# client tools, the shell linter and debootstrap. Idempotent.
set -euo pipefail

log() { printf '%s [install-host] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Prints what is missing; succeeds (true) when something is.
need_packages() {
  local missing=() cmd
  for cmd in dockerd shellcheck debootstrap pg_dump docker-registry ssh-keygen flock; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [[ -x /usr/sbin/sshd ]] || missing+=(sshd)
  docker compose version >/dev/null 2>&1 || missing+=("docker compose")
  ((${#missing[@]} > 0)) && echo "${missing[*]}"
}

add_trixie_source() {
  # trixie gives docker.io 26 and compose v2 (the plugin); pin it low so nothing
  # else on the machine moves to trixie.
  [[ -f /etc/apt/sources.list.d/trixie.sources ]] && return 0
  cat >/etc/apt/sources.list.d/trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/trixie-low <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
}

install_packages() {
  local missing
  if ! missing=$(need_packages); then log "host packages already present"; return 0; fi
  log "missing: $missing"
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    log "missing tools and not root on Debian: install Docker (with compose v2), openssh-server, shellcheck, postgresql-client yourself"
    return 1
  fi
  add_trixie_source
  log "apt-get update"
  apt-get update -qq
  log "installing docker.io, docker-compose (trixie), openssh-server, shellcheck, debootstrap, postgresql-client, docker-registry"
  # docker.io from trixie pulls trixie's openssh-client, so sshd must come from there too.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie docker.io docker-compose docker-cli \
    openssh-server openssh-client >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck debootstrap \
    postgresql-client docker-registry iproute2 >/dev/null
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then log "docker engine answers"; return 0; fi
  log "starting dockerd in the background (no systemd here)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  local i
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "docker engine up after ${i}s"; return 0; }
    sleep 1
  done
  log "dockerd did not answer within 60s; see /var/log/dockerd.log"
  return 1
}

main() {
  if docker info >/dev/null 2>&1 && ! need_packages >/dev/null; then log "nothing to do"; return 0; fi
  install_packages
  start_dockerd
}

main "$@"
