# Sourced by lib.sh: the api containers in their two release slots, and what a roll keeps.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# --- containers ------------------------------------------------------------------
# Both slots' services, whichever one .env's COMPOSE_PROFILES enables.
compose_all() { COMPOSE_PROFILES=slot-a,slot-b compose "$@"; }

# The api containers of SLOT (a or b), or of both; running or not: a stopped leftover counts.
# By compose's labels with plain `docker ps` (see proxy_container on why not `compose ps`).
slot_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$(project_name)" \
    --filter "label=com.docker.compose.service=api-$1" --filter "label=com.docker.compose.oneoff=False"
}

# Both slots' containers, slot a's first, from one `docker ps` (label filters are ANDed, so the
# slots are picked out here).
api_containers() {
  docker ps -a --filter "label=com.docker.compose.project=$(project_name)" --filter "label=com.docker.compose.oneoff=False" \
    --format '{{.ID}} {{.Label "com.docker.compose.service"}}' \
    | awk '$2 == "api-a" || $2 == "api-b"' | sort -s -k2,2 | cut -d' ' -f1
}

other_slot() { [[ "$1" == a ]] && echo b || echo a; }

remove_slot() { # slot: force-removes its containers, if any
  local -a ids=()
  mapfile -t ids < <(slot_containers "$1")
  ((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
}

env_slot() { [[ "$(env_get API_SLOT)" == b ]] && echo b || echo a; }

container_slot() { docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n 's#^LISTEN_SOCKET=/run/slipway/api-\([ab]\)\.sock$#\1#p'; }

# The release reference a container was created from: what follows the repository in its image.
container_ref() {
  local image
  image=$(docker inspect -f '{{.Config.Image}}' "$1")
  image=${image##*/}
  echo "${image#*:}"
}

container_name() { docker inspect -f '{{.Name}}' "$1" | sed 's#^/##'; }

container_health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo missing; }

# Waits until the container is healthy, printing each change of state and a heartbeat every 5 s.
# Polls every 0.2 s: the roll waits on this, and a 1 s poll cost half a second on average.
wait_healthy() { # container timeout_seconds
  local id=$1 timeout=$2 start state last="" now shown=-1
  start=$(date +%s)
  while :; do
    state=$(container_health "$id")
    now=$(($(date +%s) - start))
    if [[ "$state" != "$last" ]] || ((now % 5 == 0 && now != shown)); then
      step "  health: $state (${now}s of ${timeout}s)"
      shown=$now
    fi
    last=$state
    case "$state" in
      healthy) return 0 ;;
      exited | dead | missing) return 1 ;;
    esac
    ((now >= timeout)) && return 1
    sleep 0.2
  done
}

last_health_output() {
  docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$1" 2>/dev/null | tail -n 3
}

# The registry digest of the API image IMAGE (from API_IMAGE's repository), or nothing for an
# image no registry served: an image ID is not something a host can pull.
image_digest() { # image reference
  docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$1" 2>/dev/null \
    | awk -v repo="$(api_image)@" 'index($0, repo) == 1 { print substr($0, length(repo) + 1); exit }'
}

# The digest a release reference runs: the one it pins, or (on Compose) its local image's
# registry digest. A Swarm release is always recorded pinned: its digest is the one it names.
release_digest() { # ref
  local digest
  digest=$(ref_digest "$1")
  [[ -n "$digest" || "$RELEASE_TARGET" == swarm ]] || digest=$(image_digest "$(api_image):$1")
  echo "$digest"
}

# GET /health through the proxy, from inside the proxy container (no host port or curl needed).
# The compose project's name, as compose derives it: COMPOSE_PROJECT_NAME (the environment's,
# then .env's), else the directory's.
project_name() {
  local name=${COMPOSE_PROJECT_NAME:-}
  [[ -n "$name" ]] || name=$(env_get COMPOSE_PROJECT_NAME)
  name=${name:-$(basename "$SLIPWAY_DIR")}
  name=${name,,}
  echo "${name//[^a-z0-9_-]/}"
}

# SERVICE's container, by the name compose gives it, without a `docker compose` call: each one
# re-reads the project (0.5-2 s on a loaded 2-core host) and a release needs the proxy and the
# database often. Falls back to asking compose when that name is not there.
# The name compose gives SERVICE's (first) container.
compose_container_name() { echo "$(project_name)-$1-1"; }

service_container() { # service
  local name
  name=$(compose_container_name "$1")
  if docker container inspect "$name" >/dev/null 2>&1; then echo "$name"; else compose ps -q "$1"; fi
}

# A variable of the database container's environment (POSTGRES_DB, POSTGRES_USER), read from its
# config: no `exec`, which a busy runtime can fail to start (exit 126, "OCI runtime exec failed").
db_env() { # name
  docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(service_container db)" | sed -n "s/^$1=//p"
}

container_running() { [[ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" == true ]]; }

db_running() { container_running "$(service_container db)"; }

container_instance() { docker inspect -f '{{.Config.Hostname}}' "$1"; }

# Makes sure IMAGE is on this host: pulls it, or with no_pull=1 only checks it is present.
ensure_image() { # image no_pull
  local ref=$1 no_pull=$2
  if [[ "$no_pull" == 1 ]]; then
    docker image inspect "$ref" >/dev/null 2>&1 \
      || die "image $ref is not on this host and --no-pull was given: docker pull it, or drop --no-pull"
    step "using local image $ref (--no-pull)"
  else
    step "pulling $ref"
    if [[ "$ref" == *@sha256:* ]]; then
      docker pull -q "$ref" >/dev/null \
        || die "cannot pull $ref: the registry has no image with digest ${ref#*@} (or this host is not logged in: docker login); deploy a digest that ci published"
    else
      docker pull -q "$ref" >/dev/null || die "cannot pull $ref: check the tag exists and that this host is logged in (docker login)"
    fi
  fi
}

# The release before the current one stays in its slot, so that rolling back to it is a proxy
# switch (KEEP_PREVIOUS=warm, the default: it keeps running, idle, at the cost of its memory),
# or a `docker start` and a health check (stopped: no memory, only its writable layer on disk),
# or, with none, a full roll as for any older release. Either way `docker compose up -d` leaves
# it be: its slot is outside .env's profile. Extra containers (from older versions) go.
keep_old() { # old container ids... ; prints what it did
  local mode
  mode=$(keep_previous)
  (($# > 0)) || { echo "no old release to keep"; return 0; }
  (($# == 1)) || docker rm -f "${@:2}" >/dev/null
  case "$mode" in
    warm)
      echo "the old release ($(container_ref "$1")) stays warm in slot $(container_slot "$1"), idle, for an instant rollback (KEEP_PREVIOUS=warm)"
      ;;
    stopped | none)
      # Requests routed before the switch are already on their way; let them land before the
      # old app closes its listener (it drains on SIGTERM).
      sleep "${SLIPWAY_SWITCH_SETTLE:-1}"
      docker stop -t 30 "$1" >/dev/null
      if [[ "$mode" == none ]]; then
        docker rm "$1" >/dev/null
        echo "the old release drained and was removed (KEEP_PREVIOUS=none)"
      else
        echo "the old release ($(container_ref "$1")) drained and is kept stopped in slot $(container_slot "$1") (KEEP_PREVIOUS=stopped)"
      fi
      ;;
  esac
}

# KEEP_PREVIOUS from .env: warm (default), stopped or none.
keep_previous() {
  local mode
  mode=$(env_get KEEP_PREVIOUS)
  case "${mode:-warm}" in
    warm | stopped | none) echo "${mode:-warm}" ;;
    *) die "KEEP_PREVIOUS in .env must be warm, stopped or none, got '$mode'" ;;
  esac
}

# The container in the idle slot that runs release REF and can be switched to: healthy, or
# stopped (rollback starts it). Nothing when there is none, or the slot holds anything else.
kept_container() { # ref
  local -a ids=()
  mapfile -t ids < <(slot_containers "$(other_slot "$(env_slot)")")
  ((${#ids[@]} == 1)) && keepable "${ids[0]}" "$1" && echo "${ids[0]}"
  return 0
}

# Whether container ID runs release REF and can be switched to: healthy, or stopped (a start
# and a health check away). Not one still starting, unhealthy, or from another image.
keepable() { # id ref
  same_release "$(container_ref "$1")" "$2" || return 1
  # A container created from a plain tag: its image must have the digest asked for.
  [[ -z "$(ref_digest "$2")" || "$(image_digest "$(docker inspect -f '{{.Image}}' "$1")")" == "$(ref_digest "$2")" ]] || return 1
  [[ "$(container_health "$1")" == healthy ]] || ! container_running "$1"
}

# The kept container a roll to REF can switch to: kept_container's, created from REF itself,
# pinned or not as REF is. .env then names what the container was created from, so a later
# `docker compose up -d` keeps it (one from plain `v2` switched to as `v2@sha256:…` would be
# recreated, ungated); any other is replaced by a new container.
switchable_container() { # ref
  local id
  id=$(kept_container "$1")
  [[ -z "$id" || "$(container_ref "$id")" != "$1" ]] || echo "$id"
}

# "<name> api:v1 healthy; " for each container in SLOT, for messages.
slot_summary() { # slot
  local id
  for id in $(slot_containers "$1"); do
    printf '%s api:%s %s; ' "$(container_name "$id")" "$(container_ref "$id")" "$(container_health "$id")"
  done
}
