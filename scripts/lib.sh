#!/usr/bin/env bash
# Shared by every Slipway host script. Sourced, never run. Scripts run from the directory
# that holds docker-compose.prod.yml (or SLIPWAY_DIR points at it).
# shellcheck disable=SC2034  # variables here are read by the scripts that source this file

SLIPWAY_DIR=${SLIPWAY_DIR:-$PWD}
COMPOSE_FILE_NAME=docker-compose.prod.yml
HISTORY_FILE=${SLIPWAY_HISTORY:-$SLIPWAY_DIR/releases.log}
LOCK_FILE=${SLIPWAY_LOCK_FILE:-/run/lock/slipway-deploy.lock}
SCRIPT_START=$(date +%s)

log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SCRIPT_NAME:-slipway}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { echo "$(($(date +%s) - SCRIPT_START))s"; }
step() { log "[$(elapsed)] $*"; }

# Docker's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. Nothing else reaches a shell.
valid_tag() { [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; }
require_tag() {
  valid_tag "$1" || die "invalid tag '$1': use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-'), e.g. v1.2.3"
}

require_positive_int() { # name value
  [[ "$2" =~ ^[1-9][0-9]{0,5}$ ]] || die "$1 must be a positive integer, got '$2'"
}

require_project() {
  [[ -f "$SLIPWAY_DIR/$COMPOSE_FILE_NAME" ]] \
    || die "no $COMPOSE_FILE_NAME in $SLIPWAY_DIR: run from the directory that holds it, or set SLIPWAY_DIR"
  [[ -f "$SLIPWAY_DIR/.env" ]] || die "no .env in $SLIPWAY_DIR: cp .env.example .env and set POSTGRES_PASSWORD"
  command -v docker >/dev/null || die "docker is not installed on this host"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer: start it (systemctl start docker) and retry"
}

compose() { docker compose --project-directory "$SLIPWAY_DIR" -f "$SLIPWAY_DIR/$COMPOSE_FILE_NAME" "$@"; }

# Reads KEY from .env (the last assignment wins, as in compose). Prints nothing when absent.
env_get() {
  local key=$1
  sed -n "s/^${key}=//p" "$SLIPWAY_DIR/.env" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\\(.*\\)'\$/\\1/"
}

# Sets KEY=VALUE in .env atomically, keeping its mode; VALUE is already validated.
env_set() {
  local key=$1 value=$2 file="$SLIPWAY_DIR/.env" tmp
  tmp=$(mktemp "$SLIPWAY_DIR/.env.XXXXXX")
  chmod --reference="$file" "$tmp"
  if grep -q "^${key}=" "$file"; then
    sed "s/^${key}=.*/${key}=${value}/" "$file" >"$tmp"
  else
    { cat "$file"; printf '%s=%s\n' "$key" "$value"; } >"$tmp"
  fi
  mv "$tmp" "$file"
}

api_image() {
  local image
  image=$(env_get API_IMAGE)
  echo "${image:-slipway/api}"
}

# Host-wide lock: one release operation at a time. The holder's details live in the file.
acquire_lock() { # what
  local what=$1 holder
  mkdir -p "$(dirname "$LOCK_FILE")" 2>/dev/null || true
  exec 9>>"$LOCK_FILE" || die "cannot open lock file $LOCK_FILE: set SLIPWAY_LOCK_FILE to a writable path"
  if ! flock -n 9; then
    holder=$(cat "$LOCK_FILE" 2>/dev/null)
    die "another release operation holds the deploy lock (${holder:-unknown holder}); wait for it to finish, or if it died, check that pid and retry"
  fi
  printf 'pid=%s user=%s op=%s dir=%s since=%s\n' "$$" "$(operator)" "$what" "$SLIPWAY_DIR" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$LOCK_FILE"
}

operator() {
  local who=${SLIPWAY_OPERATOR:-${SUDO_USER:-${USER:-$(id -un)}}}
  echo "${who//[^A-Za-z0-9@._-]/_}"
}

# --- the release history: append-only, tab-separated -------------------------------
# time  action  tag  digest  previous  operator
record_release() { # action tag digest previous
  if [[ ! -f "$HISTORY_FILE" ]]; then
    printf '# time\taction\ttag\tdigest\tprevious\toperator\n' >>"$HISTORY_FILE"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$3" "${4:--}" "$(operator)" >>"$HISTORY_FILE"
}

# After a successful roll: append to the history, then make .env name the new release (and
# its slot, so a later `docker compose up -d` matches the running container). Prints the digest.
finish_release() { # action tag image previous
  local digest
  digest=$(image_digest "$3")
  record_release "$1" "$2" "${digest:--}" "${4:--}"
  env_set API_TAG "$2"
  if [[ -n "${ROLLED_SLOT:-}" ]]; then env_set API_SLOT "$ROLLED_SLOT"; fi
  echo "${digest:--}"
}

history_entries() {
  if [[ -f "$HISTORY_FILE" ]]; then grep -v '^#' "$HISTORY_FILE" || true; fi
}

# The release before CURRENT: the previous tag of the latest deploy of CURRENT. Repeated
# rollbacks therefore walk back through deploys instead of bouncing between two tags.
previous_release() { # current
  history_entries | awk -F'\t' -v cur="$1" '$2 == "deploy" && $3 == cur { prev = $5 } END { if (prev != "" && prev != "-") print prev }'
}

# --- containers ------------------------------------------------------------------
api_containers() { compose ps -q api 2>/dev/null; }
container_name() { docker inspect -f '{{.Name}}' "$1" | sed 's#^/##'; }
container_health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo missing; }
container_version() { docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n 's/^APP_VERSION=//p'; }

# Waits until the container is healthy, printing each change of state and a heartbeat.
wait_healthy() { # container timeout_seconds
  local id=$1 timeout=$2 start state last="" now
  start=$(date +%s)
  while :; do
    state=$(container_health "$id")
    now=$(($(date +%s) - start))
    if [[ "$state" != "$last" || $((now % 5)) -eq 0 ]]; then step "  health: $state (${now}s of ${timeout}s)"; fi
    last=$state
    case "$state" in
      healthy) return 0 ;;
      exited | dead | missing) return 1 ;;
    esac
    ((now >= timeout)) && return 1
    sleep 1
  done
}

last_health_output() {
  docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$1" 2>/dev/null | tail -n 3
}

image_digest() { # image:tag
  local ref=$1
  docker image inspect -f '{{if .RepoDigests}}{{index .RepoDigests 0}}{{else}}{{.Id}}{{end}}' "$ref" 2>/dev/null | sed 's/.*@//'
}

# GET /health through the proxy, from inside the proxy container (no host port or curl needed).
proxy_health() { compose exec -T proxy curl -fsS --max-time 5 http://127.0.0.1:8080/health; }

# Makes sure IMAGE is on this host: pulls it, or with no_pull=1 only checks it is present.
ensure_image() { # image no_pull
  local ref=$1 no_pull=$2
  if [[ "$no_pull" == 1 ]]; then
    docker image inspect "$ref" >/dev/null 2>&1 \
      || die "image $ref is not on this host and --no-pull was given: docker pull it, or drop --no-pull"
    step "using local image $ref (--no-pull)"
  else
    step "pulling $ref"
    docker pull -q "$ref" >/dev/null || die "cannot pull $ref: check the tag exists and that this host is logged in (docker login)"
  fi
}

# Health-gated rolling replacement of the api service: start the new container in the other
# release slot (its own unix socket) beside the old, wait for Docker to call it healthy,
# point the proxy at that slot (a file nginx reads per request; no reload), check /health
# through the proxy, let requests already sent to the old container finish, then stop it
# (it drains on SIGTERM). Any failure before the switch leaves the old container serving and
# removes the new one. The caller has aligned the migrate container with TAG (run_migrations
# or align_migrate), since the new container is created with its dependencies. Sets ROLLED_SLOT.
roll_to() { # tag timeout
  local tag=$1 timeout=$2 new="" name id version served slot old_slot out
  local -a old=() now=()
  mapfile -t old < <(api_containers)
  old_slot=$(active_slot)
  slot=$([[ "$old_slot" == a ]] && echo b || echo a)
  step "starting api:$tag in slot $slot beside ${#old[@]} running container(s) (slot $old_slot)"
  # Not --no-deps: compose hashes a service's config with its dependencies, and a container
  # created without them would be recreated (ungated) by any later `docker compose up -d`.
  if ! out=$(API_TAG=$tag API_SLOT=$slot compose up -d --no-recreate --scale "api=$((${#old[@]} + 1))" api 2>&1); then
    log "$out"
    die "docker compose could not start api:$tag; the old release keeps serving"
  fi
  mapfile -t now < <(api_containers)
  for id in "${now[@]}"; do
    [[ " ${old[*]} " == *" $id "* ]] || new=$id
  done
  [[ -n "$new" ]] || die "no new api container appeared; the old release keeps serving"
  name=$(container_name "$new")
  step "waiting up to ${timeout}s for $name to turn healthy"
  if ! wait_healthy "$new" "$timeout"; then
    log "last health check output: $(last_health_output "$new" | tr '\n' ' ')"
    docker rm -f "$new" >/dev/null
    die "api:$tag never became healthy within ${timeout}s; removed $name, the old release keeps serving and nothing was recorded"
  fi
  step "switching the proxy to $name (slot $slot)"
  if ! compose exec -T proxy slipway-upstream "$slot" >&2; then
    docker rm -f "$new" >/dev/null
    die "the proxy refused the new upstream; removed $name, the old release keeps serving"
  fi
  version=$(container_version "$new")
  served=$(proxy_health | grep -o '"version":"[^"]*"' | cut -d'"' -f4 || true)
  if [[ "$served" != "$version" ]]; then
    compose exec -T proxy slipway-upstream "$old_slot" >&2 || true
    docker rm -f "$new" >/dev/null
    die "the proxy served version '${served:-none}' instead of '$version'; switched back, removed $name"
  fi
  step "proxy serves version $version; draining the old container(s)"
  if ((${#old[@]} > 0)); then
    # Requests routed before the switch are already on their way; let them land before the
    # old app closes its listener.
    sleep "${SLIPWAY_SWITCH_SETTLE:-1}"
    docker stop -t 30 "${old[@]}" >/dev/null
    docker rm "${old[@]}" >/dev/null
  fi
  step "old container(s) stopped; api:$tag is serving all traffic"
  ROLLED_SLOT=$slot
}

# The one-shot migrate container, recreated (not started) for TAG, so that its config matches
# .env once the release is recorded and a later `docker compose up -d` leaves it be.
align_migrate() { # tag
  API_TAG=$1 compose create --force-recreate migrate >/dev/null 2>&1
}

# Runs the migrations of TAG in the migrate container, streaming their output; fails with them.
run_migrations() { # tag
  align_migrate "$1" || return 1
  docker start -a "$(compose ps -aq migrate)" >&2
}

# The release slot the proxy sends traffic to (a or b); .env's API_SLOT when the proxy is down.
active_slot() {
  local slot
  slot=$(compose exec -T proxy slipway-upstream --show 2>/dev/null || env_get API_SLOT)
  [[ "$slot" == b ]] && echo b || echo a
}

# pg_dump ends a whole dump with this marker (followed, since 15.14/17.6, by \unrestrict).
dump_complete() { tail -n 8 "$1" | grep -q '^-- PostgreSQL database dump complete'; }

# Parses --help/-h the same way in every script.
wants_help() { local a; for a in "$@"; do [[ "$a" == "-h" || "$a" == "--help" ]] && return 0; done; return 1; }
