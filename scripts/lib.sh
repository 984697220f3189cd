#!/usr/bin/env bash
# Shared by every Slipway host script. Sourced, never run. Scripts run from the directory
# that holds docker-compose.prod.yml (or SLIPWAY_DIR points at it).
# shellcheck disable=SC2034  # variables here are read by the scripts that source this file

SLIPWAY_DIR=${SLIPWAY_DIR:-$PWD}
COMPOSE_FILE_NAME=docker-compose.prod.yml
HISTORY_FILE=${SLIPWAY_HISTORY:-$SLIPWAY_DIR/releases.log}
# In the project directory, so every user who can release (root, the deploy user) shares one lock.
LOCK_FILE=${SLIPWAY_LOCK_FILE:-$SLIPWAY_DIR/.deploy.lock}
# Every release operation's log, kept on the host: a dropped SSH link loses nothing.
LOG_FILE=${SLIPWAY_LOG:-$SLIPWAY_DIR/slipway.log}
SCRIPT_START=$(date +%s)

log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SCRIPT_NAME:-slipway}" "$*" >&2; }
# A failure the script handled: the host is consistent, so the lock holder's note is cleared.
# Inside $(...), a pipeline or <(...), `exit` ends only that subshell, and the script would go on
# with an empty value; so there die also signals the script's own shell, which exits as die would.
SLIPWAY_PID=$$
# Where die leaves its message for the script's own shell (result_line), from a subshell too.
DIE_NOTE=$(mktemp 2>/dev/null || echo /dev/null)
trap 'CLEAN_EXIT=1; exit 1' USR1
die() {
  log "ERROR: $*"
  CLEAN_EXIT=1
  printf '%s' "$*" >"$DIE_NOTE" 2>/dev/null || true
  [[ "$BASHPID" == "$SLIPWAY_PID" ]] || kill -USR1 "$SLIPWAY_PID" 2>/dev/null || true
  exit 1
}

# The last line deploy.sh and rollback.sh print, for machines (the Dagger module reads it; no
# prose is parsed): `slipway-result {"outcome":"ok"|"failed","action":…,"tag":…,"digest":…,
# "previous":…,"slot":…,"error":…}` on stderr. RESULT_* are set by record_release.
RESULT_ACTION="" RESULT_TAG="" RESULT_DIGEST="" RESULT_PREVIOUS=""
json_string() { # text
  local text=${1//\\/\\\\}
  text=${text//\"/\\\"}
  text=${text//$'\t'/ }
  printf '"%s"' "${text//$'\n'/ }"
}
result_line() { # exit_status
  local outcome=ok error=""
  if (($1 != 0)); then
    outcome=failed
    error=$(cat "$DIE_NOTE" 2>/dev/null || true)
    error=${error:-exit $1}
  fi
  rm -f "$DIE_NOTE" 2>/dev/null || true
  printf 'slipway-result {"outcome":"%s","action":%s,"tag":%s,"digest":%s,"previous":%s,"slot":%s,"error":%s}\n' \
    "$outcome" "$(json_string "${RESULT_ACTION:-${SCRIPT_NAME:-}}")" "$(json_string "$RESULT_TAG")" "$(json_string "$RESULT_DIGEST")" \
    "$(json_string "$RESULT_PREVIOUS")" "$(json_string "$( [[ -f "$SLIPWAY_DIR/.env" ]] && env_get API_SLOT)")" "$(json_string "$error")" >&2
}
elapsed() { echo "$(($(date +%s) - SCRIPT_START))s"; }
step() { log "[$(elapsed)] $*"; }

# A release reference (nothing else reaches a shell): Docker's tag grammar, or a tag pinned to the registry digest of the image it named when
# it was tested (v2@sha256:...), which docker and compose pull and run exactly, whatever the tag
# points at by then. .env's API_TAG holds the reference.
valid_ref() { [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$ ]]; }
require_ref() {
  valid_ref "$1" || die "invalid tag '$1': use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-'), e.g. v1.2.3, optionally pinned as v1.2.3@sha256:<64 hex digits>"
}
ref_tag() { echo "${1%%@*}"; }
ref_digest() { if [[ "$1" == *@* ]]; then echo "${1#*@}"; fi; }
# TAG@DIGEST, or TAG when there is no digest ("" or "-").
pin_ref() { # tag digest
  if [[ "${2:-}" =~ ^sha256:[0-9a-f]{64}$ ]]; then echo "$1@$2"; else echo "$1"; fi
}
# Whether two references name the same release: same tag, and the same digest where both pin one.
same_release() { # ref ref
  local a b
  a=$(ref_digest "$1") b=$(ref_digest "$2")
  [[ "$(ref_tag "$1")" == "$(ref_tag "$2")" && (-z "$a" || -z "$b" || "$a" == "$b") ]]
}

# Who runs a release and who approved it (CI passes the GitHub actor and the reviewer): names for
# the record, never shell.
# `--operator NAME` / `--approver NAME` as the scripts parse them: validated, then exported.
person_option() { # flag value
  (($# >= 2)) || die "$1 needs a name"
  [[ "$2" =~ ^[A-Za-z0-9][A-Za-z0-9@._-]{0,63}$ ]] || die "invalid $1 '$2': use letters, digits, '@', '.', '_', '-' (max 64), e.g. a GitHub login"
  if [[ "$1" == --operator ]]; then export SLIPWAY_OPERATOR=$2; else export SLIPWAY_APPROVER=$2; fi
}

require_positive_int() { # name value
  [[ "$2" =~ ^[1-9][0-9]{0,5}$ ]] || die "$1 must be a positive integer, got '$2'"
}

require_env() {
  [[ -f "$SLIPWAY_DIR/.env" ]] || die "no .env in $SLIPWAY_DIR: cp .env.example .env and set POSTGRES_PASSWORD"
  check_env
}

require_project() {
  [[ -f "$SLIPWAY_DIR/$COMPOSE_FILE_NAME" ]] \
    || die "no $COMPOSE_FILE_NAME in $SLIPWAY_DIR: run from the directory that holds it, or set SLIPWAY_DIR"
  require_env
  command -v docker >/dev/null || die "docker is not installed on this host"
  docker version -f '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker engine does not answer: start it (systemctl start docker) and retry"
}

# Where releases go: compose (one host, the default) or swarm (a Swarm manager: lib-swarm.sh).
target_kind() { # [--target's value]
  local kind=${1:-$(env_get SLIPWAY_TARGET)}
  kind=${kind:-compose}
  [[ "$kind" == compose || "$kind" == swarm ]] \
    || die "invalid target '$kind' (--target, or SLIPWAY_TARGET in .env): use compose or swarm"
  echo "$kind"
}

compose() { docker compose --project-directory "$SLIPWAY_DIR" -f "$SLIPWAY_DIR/$COMPOSE_FILE_NAME" "$@"; }

# Reads KEY from .env (the last assignment wins, as in compose). Prints nothing when absent.
env_get() { # key: its last value in .env, without surrounding quotes (read by bash: called often)
  local key=$1 line value found=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" == "$key="* ]] && value=${line#"$key="} && found=1
  done <"$SLIPWAY_DIR/.env"
  ((found)) || return 0
  [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]] && value=${BASH_REMATCH[1]}
  printf '%s\n' "$value"
}

# Sets KEY=VALUE pairs in .env in one atomic rename, keeping its mode and owner; values are
# already validated. One rename for all keys: API_TAG and API_SLOT must never disagree on disk.
env_set() { # KEY VALUE [KEY VALUE ...]
  local file="$SLIPWAY_DIR/.env" tmp key value
  tmp=$(mktemp "$SLIPWAY_DIR/.env.XXXXXX")
  chmod --reference="$file" "$tmp"
  # Root releasing on a host the deploy user owns must not leave .env readable by root alone.
  chown --reference="$file" "$tmp" 2>/dev/null || true
  cp "$file" "$tmp"
  while (($# >= 2)); do
    key=$1 value=$2
    shift 2
    if grep -q "^${key}=" "$tmp"; then
      sed -i "s/^${key}=.*/${key}=${value}/" "$tmp"
    else
      printf '%s=%s\n' "$key" "$value" >>"$tmp"
    fi
  done
  sync "$tmp" 2>/dev/null || true
  mv "$tmp" "$file" || { rm -f "$tmp"; return 1; }
}

# What deploy ships and installs (the Dagger module's DEPLOY_BUNDLE); never .env or host state.
BUNDLE_ENTRIES=(docker-compose.prod.yml docker-stack.yml .env.example RUNBOOK.md scripts proxy hooks)

# Installs the bundle staged in DIR (relative to SLIPWAY_DIR) in place, file by file with rename,
# so every file is whole, old or new; then drops the staging directory and any stale ones a cut-off
# transfer left. Runs under the deploy lock, after the tag validated.
install_bundle() { # dir
  local staged="$SLIPWAY_DIR/$1" entry file
  [[ -d "$staged" ]] || die "no staged bundle at $staged: ship it again (dagger call deploy does); nothing was changed"
  for entry in "${BUNDLE_ENTRIES[@]}"; do
    [[ -e "$staged/$entry" ]] || die "the staged bundle $1 lacks $entry (a transfer cut off?): ship it again; nothing was installed"
  done
  step "installing the shipped bundle ($1)"
  while IFS= read -r -d '' file; do
    mkdir -p "$SLIPWAY_DIR/$(dirname "$file")"
    mv -f "$staged/$file" "$SLIPWAY_DIR/$file"
  done < <(cd "$staged" && find "${BUNDLE_ENTRIES[@]}" \( -type f -o -type l \) -print0)
  rm -rf "$staged"
  find "$SLIPWAY_DIR/incoming" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null || true
}

api_image() {
  local image
  image=$(env_get API_IMAGE)
  echo "${image:-slipway/api}"
}

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
  [[ -z "$INTERRUPTED" ]] || log "the last release operation did not finish ($INTERRUPTED); repairing before anything else"
  printf 'pid=%s user=%s op=%s dir=%s since=%s\n' "$$" "$(operator)" "$what" "$SLIPWAY_DIR" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null >"$LOCK_FILE" || log "warning: cannot write the holder's details to $LOCK_FILE"
  trap 'on_exit $?' EXIT
  # Scripts this one runs (deploy's pre-deploy backup) run under this lock.
  export SLIPWAY_LOCK_HELD=$$
}

# Creates FILE, if absent, writable by the project directory's group: whoever creates it first
# (root, or the deploy user), the other can still write it.
shared_file() { # file
  [[ -e "$1" ]] && return 0
  (umask 0007 && : >>"$1") || return 1
  chgrp --reference="$SLIPWAY_DIR" "$1" 2>/dev/null || true
}

# Once the lock is held: the note cleared (release_lock_note), and deploy's and rollback's result line.
on_exit() { # exit_status
  release_lock_note
  [[ "${SCRIPT_NAME:-}" != deploy && "${SCRIPT_NAME:-}" != rollback ]] || result_line "$1"
}

# On a clean exit (success, or a failure die() handled), nothing is left half-done: clear the note.
release_lock_note() {
  if [[ "${CLEAN_EXIT:-0}" == 1 ]]; then : 2>/dev/null >"$LOCK_FILE" || true; fi
}

# The holder's note when the lock is free: an operation that was killed before it finished.
interrupted_operation() {
  [[ -s "$LOCK_FILE" ]] && flock -n "$LOCK_FILE" true 2>/dev/null && cat "$LOCK_FILE"
}

# Long operations outlive a dropped SSH link or closed terminal: SIGHUP and SIGPIPE are ignored
# (and so by every child), and all output also goes to LOG_FILE through `tee -p`, which keeps
# writing the file after the terminal's pipe is gone, so the script never meets a broken pipe.
survive_disconnect() {
  trap '' HUP PIPE
  { shared_file "$LOG_FILE" && [[ -w "$LOG_FILE" ]]; } 2>/dev/null || { log "warning: cannot write $LOG_FILE; output goes to the terminal only"; return 0; }
  exec > >(tee -p -a "$LOG_FILE") 2> >(tee -p -a "$LOG_FILE" >&2)
}

operator() {
  local who=${SLIPWAY_OPERATOR:-${SUDO_USER:-${USER:-$(id -un)}}}
  echo "${who//[^A-Za-z0-9@._-]/_}"
}

approver() {
  local who=${SLIPWAY_APPROVER:--}
  echo "${who//[^A-Za-z0-9@._-]/_}"
}

# --- hooks: the project's own executables in hooks/, run around a release -----------------
# pre-deploy, post-deploy, pre-rollback, post-rollback, post-guard-rollback. Each gets the
# release in SLIPWAY_* environment variables (values only: nothing of them is ever spliced into
# a command line) and HOOK_TIMEOUT seconds (default 60), after which it is killed.
HOOKS_LOG=${SLIPWAY_HOOKS_LOG:-$SLIPWAY_DIR/hooks.log}

# Runs hooks/NAME if it is there and executable; returns its exit status (124: killed at the
# limit), 0 when there is none. A pre-* hook's failure is the caller's to act on; a post-* one
# is logged, recorded in HOOKS_LOG for status.sh, and never undoes a release.
run_hook() { # name command ref previous_ref migrations
  local name=$1 file="$SLIPWAY_DIR/hooks/$1" limit status=0
  [[ -f "$file" && -x "$file" ]] || return 0
  limit=$(env_number HOOK_TIMEOUT 60)
  step "hook $name (at most ${limit%.*}s)"
  (cd "$SLIPWAY_DIR" && env "SLIPWAY_COMMAND=$2" "SLIPWAY_HOOK=$name" "SLIPWAY_ENVIRONMENT=$(env_get SLIPWAY_ENVIRONMENT)" \
    "SLIPWAY_TAG=$(ref_tag "$3")" "SLIPWAY_DIGEST=$(release_digest "$3")" \
    "SLIPWAY_PREVIOUS_TAG=$([[ -z "${4:-}" || "$4" == - ]] || ref_tag "$4")" \
    "SLIPWAY_PREVIOUS_DIGEST=$([[ -z "${4:-}" || "$4" == - ]] || release_digest "$4")" \
    "SLIPWAY_OPERATOR=$(operator)" "SLIPWAY_MIGRATIONS=${5:--}" "SLIPWAY_DIR=$SLIPWAY_DIR" \
    timeout --kill-after=5 "${limit%.*}" "$file" </dev/null >&2) || status=$?
  ((status == 0)) && return 0
  HOOK_FAILURE="hooks/$name $( ((status == 124 || status == 137)) && echo "was killed after ${limit%.*}s (HOOK_TIMEOUT)" || echo "exited $status")"
  if [[ "$name" == post-* ]]; then
    log "warning: $HOOK_FAILURE; the release stands (a post-* hook never undoes one)"
    { shared_file "$HOOKS_LOG" && printf '%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HOOK_FAILURE" "$(ref_tag "$3")" >>"$HOOKS_LOG"; } 2>/dev/null \
      || log "warning: could not record it in $HOOKS_LOG"
  fi
  return "$status"
}
# A pre-* hook that fails stops the command before anything has changed.
pre_hook() { # name command ref previous_ref
  run_hook "$@" || die "$HOOK_FAILURE, so nothing was changed; fix hooks/$1 (or remove it) and run the command again"
}
post_hook() { run_hook "$@" || true; }
# status.sh's hooks: line.
hooks_line() {
  local installed
  installed=$(find "$SLIPWAY_DIR/hooks" -maxdepth 1 -type f -perm -u+x ! -name '*.example' -printf '%f ' 2>/dev/null || true)
  installed=${installed% }
  printf '%s' "${installed:-none installed}"
  [[ ! -s "$HOOKS_LOG" ]] || printf '; LAST FAILURE: %s' "$(tail -n 1 "$HOOKS_LOG" | tr '\t' ' ')"
  echo
}

# --- the release history: append-only, tab-separated -------------------------------
# time  action  tag  digest  previous  operator  previous_digest  migrations  approver  note
# (files begun before the last three columns existed keep six-column lines; readers accept both).
# digest is the registry digest the release ran ("-": a local image no registry served);
# migrations is how many the release applied ("-": none were run).
record_release() { # action ref previous_ref migrations [note]
  local digest previous_digest
  digest=$(release_digest "$2")
  previous_digest=$([[ -z "${3:-}" || "$3" == - ]] || release_digest "$3")
  shared_file "$HISTORY_FILE" || return 1
  if [[ ! -s "$HISTORY_FILE" ]]; then
    printf '# time\taction\ttag\tdigest\tprevious\toperator\tprevious_digest\tmigrations\tapprover\tnote\n' >>"$HISTORY_FILE"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$(ref_tag "$2")" "${digest:--}" \
    "$(ref_tag "${3:--}")" "$(operator)" "${previous_digest:--}" "${4:--}" "$(approver)" "${5:--}" >>"$HISTORY_FILE"
  RESULT_ACTION=$1 RESULT_TAG=$(ref_tag "$2") RESULT_DIGEST=${digest:--} RESULT_PREVIOUS=$(ref_tag "${3:--}")
}

# After a successful roll (which already made .env name the new release): append it to the
# history. Run as a plain command, never inside $(...), so a failed write fails the script.
# Sets RELEASE_DIGEST.
finish_release() { # action ref previous_ref migrations
  RELEASE_DIGEST=$(release_digest "$2")
  RELEASE_DIGEST=${RELEASE_DIGEST:-"- (a local image: no registry digest)"}
  record_release "$@" || die "the release is live but could not be recorded in $HISTORY_FILE (disk full?); fix that, then run scripts/repair.sh"
}

history_entries() {
  if [[ -f "$HISTORY_FILE" ]]; then grep -v '^#' "$HISTORY_FILE" || true; fi
}

# The release the newest record of CURRENT (whose action matches ACTIONS, a regex) moved away
# from, pinned to the digest it ran.
moved_from() { # current_ref actions
  local prev
  prev=$(history_entries | awk -F'\t' -v cur="$(ref_tag "$1")" -v dig="$(ref_digest "$1")" -v acts="^($2)$" '
    $2 ~ acts && $3 == cur && (dig == "" || $4 == dig) { prev = $5; pd = $7 }
    END { if (prev != "" && prev != "-") print prev "\t" pd }')
  [[ -n "$prev" ]] || return 0
  if [[ -n "${prev#*$'\t'}" ]]; then pin_ref "${prev%%$'\t'*}" "${prev#*$'\t'}"; else pinned_release "${prev%%$'\t'*}"; fi
}

# The release before CURRENT (a reference): the previous release of the latest deploy of CURRENT.
# Repeated rollbacks therefore walk back through deploys instead of bouncing between two tags,
# and return to what ran even if its tag was re-pointed since.
previous_release() { moved_from "$1" deploy; } # current_ref

# The release a finished operation leaves in the idle slot beside CURRENT: the one its newest
# record moved away from. A deploy keeps the release before it; a rollback keeps the release it
# undid, so a mistaken rollback is undone at once (scripts/rollback.sh <that release>).
kept_release() { moved_from "$1" '[a-z-]+'; } # current_ref

# How many migrations the latest deploy of REF applied, per the history ("-": none ran).
release_migrations() { # ref
  history_entries | awk -F'\t' -v tag="$(ref_tag "$1")" '$2 == "deploy" && $3 == tag { m = $8 } END { print (m == "" ? "-" : m) }'
}

# TAG pinned to the registry digest it had when it last ran here (per the history), if known.
pinned_release() { # tag
  pin_ref "$1" "$(history_entries | awk -F'\t' -v tag="$1" '$3 == tag && $4 ~ /^sha256:[0-9a-f]+$/ { d = $4 } END { print d }')"
}

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
# "ID SLOT HEALTH" for each container given, in one `docker inspect` (HEALTH as container_health).
container_states() { # id...
  (($# > 0)) || return 0
  # IDs as `docker ps` prints them (12 digits): one that vanished meanwhile is just not listed.
  # `index`, not `.State.Health`: inspecting several objects formats a map, where a missing key
  # (a container with no health check) is an error that would drop every line.
  docker inspect -f '{{slice .Id 0 12}} {{index .Config.Labels "com.docker.compose.service"}} {{with index .State "Health"}}{{.Status}}{{else}}{{.State.Status}}{{end}}' "$@" 2>/dev/null \
    | sed 's/ api-\([ab]\) / \1 /'
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
# The digest a release reference runs: the one it pins, or its image's registry digest.
release_digest() { # ref
  local digest
  digest=$(ref_digest "$1")
  echo "${digest:-$(image_digest "$(api_image):$1")}"
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
service_container() { # service
  local name
  name="$(project_name)-$1-1"
  if docker container inspect "$name" >/dev/null 2>&1; then echo "$name"; else compose ps -q "$1"; fi
}
proxy_container() { service_container proxy; }
# A variable of the database container's environment (POSTGRES_DB, POSTGRES_USER), read from its
# config: no `exec`, which a busy runtime can fail to start (exit 126, "OCI runtime exec failed").
db_env() { # name
  docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(service_container db)" | sed -n "s/^$1=//p"
}
container_running() { [[ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" == true ]]; }
db_running() { container_running "$(service_container db)"; }

proxy_exec() { # command...
  local id
  id=$(proxy_container)
  [[ -n "$id" ]] || { log "the proxy container is not running"; return 1; }
  docker exec "$id" "$@"
}

proxy_health() { proxy_exec curl -fsS --max-time 5 http://127.0.0.1:8080/health; }
# Which container the proxy reaches: the instance header of /health through it.
proxy_instance() {
  proxy_exec curl -fsS --max-time 5 -o /dev/null -D - http://127.0.0.1:8080/health \
    | tr -d '\r' | sed -n 's/^x-slipway-instance: *//Ip'
}
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

# Health-gated rolling replacement of the API: start the new release in the idle slot (its own
# compose service and unix socket) beside the serving one, check it runs the image asked for,
# wait for Docker to call it healthy, make .env name it, point the proxy at its slot (a file
# nginx reads per request; no reload), check the proxy reaches that very container, watch what
# users get for the guard window, then keep the old release in its slot for rollback (see
# keep_old). Any failure before the switch leaves the old container serving and removes the new
# one. When the idle slot already holds TAG (the release kept by the last roll), that container
# is started if need be and switched to: no pull, no new container. The caller has run reconcile.
#
# Why a kill at any step is safe: the slots are separate services and .env's COMPOSE_PROFILES
# names the serving one, so `docker compose up -d` only ever manages the container .env names,
# which is healthy from the moment .env names it (written before the switch); the other slot is
# left alone, and the proxy's backup upstream sends requests to whichever slot is live.
roll_to() { # tag timeout [guard_seconds] [canary_steps canary_seconds canary_min_requests]
  local tag=$1 timeout=$2 guard=${3:-0} canary=${4:-} new name served slot old_slot out prev_tag want started switched
  local -a old=()
  started=$(now_precise)
  # .env's slot, not the proxy's (a `docker exec`, slow on a loaded host): reconcile, which ran
  # first, made them agree.
  old_slot=$(env_slot)
  slot=$(other_slot "$old_slot")
  prev_tag=$(env_get API_TAG)
  mapfile -t old < <(slot_containers "$old_slot")
  if [[ -n "$canary" ]] && ! { ((${#old[@]} > 0)) && [[ "$(container_health "${old[0]}")" == healthy ]]; }; then
    die "--canary needs a healthy release serving beside the new one, and slot $old_slot has none; nothing was changed: deploy without --canary"
  fi
  new=$(switchable_container "$tag")
  if [[ -n "$new" ]]; then
    name=$(container_name "$new")
    step "api:$tag is kept in slot $slot ($name, $(container_health "$new")): no pull, no migrate run, no new container"
    container_running "$new" \
      || docker start "$new" >/dev/null || die "could not start the kept $name; run scripts/rollback.sh again (it then starts a new container)"
  else
    if [[ -n "$(slot_containers "$slot")" ]]; then
      step "removing what slot $slot holds ($(slot_summary "$slot")) to make room for api:$tag"
      remove_slot "$slot"
    fi
    step "starting api:$tag in slot $slot beside ${#old[@]} container(s) in slot $old_slot"
    # TAG reaches .env only with the switch below; until then the idle slot's service is outside
    # the active profile, and `docker compose up -d` leaves it be.
    # Not --no-deps, though it is faster: compose then drops depends_on from the container's
    # config hash, and the next `docker compose up -d` recreates the serving release.
    if ! out=$(export "API_${slot^^}_TAG=$tag" && compose up -d "api-$slot" 2>&1); then
      log "$out"
      remove_slot "$slot"
      die "docker compose could not start api:$tag; the old release keeps serving"
    fi
    new=$(slot_containers "$slot" | head -n 1)
    [[ -n "$new" ]] || die "no new api container appeared; the old release keeps serving"
    name=$(container_name "$new")
    want=$(docker image inspect -f '{{.Id}}' "$(api_image):$tag")
    if [[ "$(docker inspect -f '{{.Image}}' "$new")" != "$want" ]]; then
      docker rm -f "$new" >/dev/null
      die "$name does not run $(api_image):$tag; removed it, the old release keeps serving"
    fi
  fi
  step "waiting up to ${timeout}s for $name to turn healthy"
  if ! wait_healthy "$new" "$timeout"; then
    log "last health check output: $(last_health_output "$new" | tr '\n' ' ')"
    docker rm -f "$new" >/dev/null
    die "api:$tag never became healthy within ${timeout}s; removed $name, the old release keeps serving and nothing was recorded"
  fi
  [[ -z "$canary" ]] || canary_steps "$canary" "$5" "$6"
  step "recording api:$tag (slot $slot) in .env before the switch"
  if ! env_set API_TAG "$tag" API_SLOT "$slot" COMPOSE_PROFILES "slot-$slot" "API_${slot^^}_TAG" "$tag"; then
    docker rm -f "$new" >/dev/null
    die "cannot write .env (disk full?); removed $name, the old release keeps serving"
  fi
  step "switching the proxy to $name (slot $slot)"
  switched=$(now_precise)
  switch_proxy "$slot" || undo_roll "the proxy refused the new upstream"
  # A proxy image older than its instance report answers with a second exec.
  served=${SWITCHED_INSTANCE:-$(proxy_instance || true)}
  if [[ "$served" != "$(container_instance "$new")" ]]; then
    switch_proxy "$old_slot" || true
    undo_roll "the proxy reached '${served:-nothing}', not $name; switched back"
  fi
  if ((guard > 0 && ${#old[@]} > 0)); then
    step "guard: watching what users get from $name for ${guard}s; the old release stays warm in slot $old_slot"
    guard_window "$slot" "$guard" "$switched" "$(proxy_figures "$old_slot" "$started" "$switched" | cut -d' ' -f3)" \
      || guard_revert "$GUARD_VERDICT"
  fi
  step "proxy reaches $name (api:$tag); $(keep_old "${old[@]}")"
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

# --- the post-switch guard ---------------------------------------------------------
# The proxy's own view of what users get: nginx's JSON access log (its stdout, kept by Docker),
# read per time window. /health traffic (probes, the roll's own checks) does not count.
now_precise() { date +%s.%N; }

# "requests 5xx p99 p50 p95" (seconds) of the requests the proxy sent to SLOT between two
# instants (unix seconds, or what `docker logs --since` takes); the slot a request went to is the
# last address nginx tried. Prints "0 0 0 0 0" with no request. The one parser of the proxy's
# log: the guard and status.sh --kpi read it.
proxy_figures() { # slot since until
  docker logs --since "$2" --until "$3" "$(proxy_container)" 2>/dev/null | awk -v sock="/api-$1.sock" '
    /^\{/ && index($0, "\"uri\":\"/health") == 0 && match($0, /"upstream":"[^"]*"/) {
      n = split(substr($0, RSTART + 12, RLENGTH - 13), tried, ", ")
      if (n == 0 || substr(tried[n], length(tried[n]) - length(sock) + 1) != sock) next
      match($0, /"status":[0-9]+/); status = substr($0, RSTART + 9, RLENGTH - 9)
      match($0, /"duration":[0-9.]+/); print status, substr($0, RSTART + 11, RLENGTH - 11)
    }' | sort -k2,2n | awk '
    { rt[NR] = $2; if ($1 + 0 >= 500) bad++ }
    function rank(p) { return rt[int(NR * p + 0.999999)] }
    END { if (NR == 0) { print "0 0 0 0 0"; exit } print NR, bad + 0, rank(0.99), rank(0.50), rank(0.95) }'
}

# A numeric setting from .env (the guard's, the migration retries), or its default; refuses
# what is not a plain number.
env_number() { # KEY default
  local value
  value=$(env_get "$1")
  value=${value:-$2}
  [[ "$value" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$1 in .env must be a number, e.g. $1=$2, got '$value'"
  echo "$value"
}

# Every number and duration .env may set, as KEY:kind:example. Checked by check_env before a
# command changes anything, so a malformed value fails it in one line, naming the key.
ENV_VALUES="GUARD_SECONDS:int:30 GUARD_SAMPLE_SECONDS:number:3 GUARD_BAD_SAMPLES:int:2
  GUARD_MIN_SAMPLE_REQUESTS:int:5 GUARD_MIN_REQUESTS:int:20 GUARD_MAX_5XX_PERCENT:number:1
  GUARD_P99_SECONDS:number:1 GUARD_P99_FACTOR:number:3 HOOK_TIMEOUT:int:60 MIGRATION_LOCK_TRIES:int:3
  KPI_P99_SECONDS:number:1 KPI_MAX_ERROR_PERCENT:number:0.1 KPI_MIN_AVAILABILITY_PERCENT:number:99.9
  API_REPLICAS:count:2 HTTP_PORT:port:8000 SHUTDOWN_GRACE_MS:int:20000 MIN_FREE_MB:int:1024
  MIGRATION_LOCK_TIMEOUT:pgduration:1s MIGRATION_STATEMENT_TIMEOUT:pgduration:15min API_START_PERIOD:duration:30s"

valid_value() { # kind value
  case "$1" in
    int) [[ "$2" =~ ^[0-9]{1,9}$ ]] ;;
    count) [[ "$2" =~ ^[1-9][0-9]{0,3}$ ]] ;;
    number) [[ "$2" =~ ^[0-9]{1,9}(\.[0-9]{1,9})?$ ]] ;;
    port) [[ "$2" =~ ^[1-9][0-9]{0,4}$ ]] && (($2 <= 65535)) ;;
    pgduration) [[ "$2" =~ ^[0-9]{1,9}(us|ms|s|min|h|d)?$ ]] ;;
    duration) [[ "$2" =~ ^([0-9]{1,9}(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]] ;;
    *) return 1 ;;
  esac
}

# A full disk fails the database's writes at once while its reads still pass, and loses the
# very log lines that would say so: a release (its pull, its backup, its new container's layer)
# must not be what fills it. Fails in one line when a disk the release writes to has less than
# MIN_FREE_MB free (default 1024): the one holding the deployment (backups, the history) and
# Docker's (images, the database's volume).
require_free_disk() {
  local min path free
  min=$(env_number MIN_FREE_MB 1024)
  for path in "$SLIPWAY_DIR" /var/lib/docker; do
    [[ -d "$path" ]] || continue
    free=$(df -Pk "$path" 2>/dev/null | awk 'NR == 2 { print int($4 / 1024) }')
    [[ -n "$free" ]] || continue
    ((free >= ${min%.*})) || die "only ${free} MiB free on the disk holding $path (MIN_FREE_MB is ${min%.*}); nothing was changed: free some (docker image prune -a, old backups/), then retry"
  done
}

check_env() {
  local spec key kind example value
  for spec in $ENV_VALUES; do
    IFS=: read -r key kind example <<<"$spec"
    value=$(env_get "$key")
    [[ -z "$value" ]] || valid_value "$kind" "$value" \
      || die "$key in .env is '$value', which is not a valid $kind; use e.g. $key=$example"
  done
  keep_previous >/dev/null
}

# One sample's verdict, "ok: ..." or "BAD: <what tripped>": COUNT requests, ERRORS of them 5xx,
# their p99 (seconds), against a 5xx percent and a p99 limit. Fewer than MIN requests is too
# few to judge, which is ok. The guard and the canary judge with it.
sample_verdict() { # count errors p99 max_5xx_percent p99_limit min
  awk -v n="$1" -v e="$2" -v p="$3" -v m="$4" -v l="$5" -v min="$6" 'BEGIN {
    r = n ? 100 * e / n : 0
    if (n < min) { printf "ok: %d requests, too few to judge", n; exit }
    if (r > m) { printf "BAD: 5xx %.1f %% > %s %% (%d of %d requests)", r, m, e, n; exit }
    if (p > l) { printf "BAD: p99 %.3f s > %.3f s (%d requests)", p, l, n; exit }
    printf "ok: %d requests, 5xx %.1f %%, p99 %.3f s", n, r, p }'
}

# The thresholds the guard and the canary steps judge samples by, from .env, on one line:
# GUARD_SAMPLE_SECONDS GUARD_MAX_5XX_PERCENT GUARD_P99_SECONDS GUARD_P99_FACTOR
# GUARD_BAD_SAMPLES GUARD_MIN_SAMPLE_REQUESTS. Fails (env_number named the bad value) on a
# malformed one; callers exit then, since they run where `set -e` does not (`... || revert`).
guard_thresholds() {
  local pair value
  for pair in GUARD_SAMPLE_SECONDS:3 GUARD_MAX_5XX_PERCENT:1 GUARD_P99_SECONDS:1 GUARD_P99_FACTOR:3 GUARD_BAD_SAMPLES:2 GUARD_MIN_SAMPLE_REQUESTS:5; do
    value=$(env_number "${pair%:*}" "${pair#*:}") || return 1
    printf '%s ' "$value"
  done
  echo
}

# Samples the new slot every GUARD_SAMPLE_SECONDS for SECONDS after the switch. A sample with at
# least GUARD_MIN_SAMPLE_REQUESTS requests is bad when its 5xx share exceeds GUARD_MAX_5XX_PERCENT
# or its p99 exceeds max(GUARD_P99_SECONDS, GUARD_P99_FACTOR x the old release's pre-switch p99).
# GUARD_BAD_SAMPLES bad samples fail the guard (sets GUARD_VERDICT, returns 1). Fewer than
# GUARD_MIN_REQUESTS requests in the whole window is too little to judge: it passes, and says so.
guard_window() { # slot seconds switched_at baseline_p99
  local slot=$1 seconds=$2 start=$3 from=$3 base=${4:-0} fig thresholds every max5xx p99min factor bad_limit min_sample min_total
  local limit now end count errors p99 verdict bad=0 total=0 total_errors=0
  thresholds=$(guard_thresholds) || exit 1
  read -r every max5xx p99min factor bad_limit min_sample <<<"$thresholds"
  min_total=$(env_number GUARD_MIN_REQUESTS 20) || exit 1
  limit=$(awk -v a="$p99min" -v b="$factor" -v c="$base" 'BEGIN { l = b * c; if (a > l) l = a; print l }')
  end=$(awk -v f="$start" -v s="$seconds" 'BEGIN { printf "%.3f", f + s }')
  while :; do
    sleep "$every"
    now=$(now_precise)
    # Without the proxy's log (another logging driver), nothing can be judged: say so, keep the release.
    fig=$(proxy_figures "$slot" "$from" "$now") || { log "guard: cannot read the proxy's access log (docker logs); passing unjudged"; return 0; }
    read -r count errors p99 _ <<<"$fig"
    total=$((total + count)) total_errors=$((total_errors + errors))
    verdict=$(sample_verdict "$count" "$errors" "$p99" "$max5xx" "$limit" "$min_sample")
    if [[ "$verdict" == BAD:* ]]; then
      bad=$((bad + 1))
      if ((bad >= ${bad_limit%.*})); then
        # Nothing before the switch back, which writes .env first (see guard_revert).
        GUARD_VERDICT=${verdict#BAD: }
        return 1
      fi
    fi
    step "  guard: $(awk -v a="$now" -v b="$start" -v c="$seconds" 'BEGIN { printf "%.0fs of %ss:", a - b, c }') $verdict"
    from=$now
    awk -v a="$now" -v b="$end" 'BEGIN { exit !(a < b) }' || break
  done
  if ((total < ${min_total%.*})); then
    step "guard: passed, but only $total requests reached the new release (< GUARD_MIN_REQUESTS $min_total): too little traffic to judge"
  else
    step "guard: passed ($total requests, $total_errors 5xx, $bad bad sample(s) of $bad_limit allowed)"
  fi
}

# The guard failed: the old release, still running in its slot, takes the traffic back (a file
# write, no container start), .env names it again, the new container goes, and the history
# records a guard-rollback with the figures. Exits non-zero.
guard_revert() { # verdict   (roll_to's locals: tag slot new name old_slot prev_tag)
  # .env first, before anything else (even a log line): killed after it, the next command's
  # repair keeps what .env names, the old release, and switches the proxy to it.
  env_set API_TAG "$prev_tag" API_SLOT "$old_slot" COMPOSE_PROFILES "slot-$old_slot" \
    || log "warning: could not write .env (disk full?): it still names $tag, which scripts/repair.sh would restore; free space, then run scripts/rollback.sh $prev_tag"
  step "guard: $1; .env names $prev_tag again; switching the proxy back to slot $old_slot"
  take_back guard-rollback "$1" "the guard tripped ($1) but the proxy refused slot $old_slot; run scripts/rollback.sh now"
  post_hook post-guard-rollback guard-rollback "$prev_tag" "$tag"
  die "rolled back automatically: $1; $prev_tag serves again and $name was removed"
}

# --- canary steps (deploy --canary) ---------------------------------------------------
# The new release in its slot takes each percent share of new requests in turn while the stable
# one serves the rest (slipway-upstream --canary: a file the proxy reads per request). Both
# releases share one database schema, which is why a release's migrations must keep the release
# before it working (expand/contract). .env names the stable release until every step passed: a
# kill during a step leaves a share that the next command's reconcile takes back.
canary_steps() { # steps seconds min_requests   (roll_to's locals: tag slot new name old_slot prev_tag)
  local pct out
  for pct in ${1//,/ }; do
    step "canary: $name (api:$tag) takes $pct % of new requests for ${2}s; $prev_tag in slot $old_slot serves the rest"
    out=$(proxy_exec slipway-upstream --canary "$slot" "$pct" 2>&1) || canary_revert "the proxy refused the canary share ($out)"
    printf '%s\n' "$out" >&2
    canary_step "$pct" "$2" "$3" || canary_revert "$CANARY_VERDICT"
  done
  step "canary: every step passed; $name takes all requests"
}

# One step, judged from the proxy's log every GUARD_SAMPLE_SECONDS: a sample is bad when the
# canary's 5xx share exceeds the stable slot's share in the same sample by GUARD_MAX_5XX_PERCENT,
# or its p99 exceeds max(GUARD_P99_SECONDS, GUARD_P99_FACTOR x the stable slot's p99 then); so a
# fault both releases share (the database) is not the canary's. GUARD_BAD_SAMPLES bad samples
# fail the step. Fewer than MIN requests to the canary by the step's end: it runs on, up to its
# length again, then fails closed (MIN 0 judges whatever came). Sets CANARY_VERDICT, returns 1.
canary_step() { # percent seconds min_requests   (roll_to's locals: slot old_slot)
  local pct=$1 seconds=$2 min=$3 start from now end deadline fig base limits verdict thresholds every max5xx p99min factor bad_limit min_sample
  local count errors p99 b_count b_errors b_p99 bad=0 total=0 total_errors=0 waiting=0
  thresholds=$(guard_thresholds) || exit 1
  read -r every max5xx p99min factor bad_limit min_sample <<<"$thresholds"
  start=$(now_precise)
  from=$start
  end=$(awk -v f="$start" -v s="$seconds" 'BEGIN { printf "%.3f", f + s }')
  deadline=$(awk -v f="$start" -v s="$seconds" 'BEGIN { printf "%.3f", f + 2 * s }')
  while :; do
    sleep "$every"
    now=$(now_precise)
    # Unlike the guard's, a canary with no figures is not promoted: it fails closed.
    if ! fig=$(proxy_figures "$slot" "$from" "$now") || ! base=$(proxy_figures "$old_slot" "$from" "$now"); then
      CANARY_VERDICT="cannot read the proxy's access log (docker logs) at $pct %"
      return 1
    fi
    read -r count errors p99 _ <<<"$fig"
    read -r b_count b_errors b_p99 _ <<<"$base"
    total=$((total + count)) total_errors=$((total_errors + errors))
    limits=$(awk -v m="$max5xx" -v n="$b_count" -v e="$b_errors" -v pm="$p99min" -v f="$factor" -v p="$b_p99" 'BEGIN {
      l = f * p; if (pm > l) l = pm
      printf "%g %g", m + (n ? 100 * e / n : 0), l }')
    verdict=$(sample_verdict "$count" "$errors" "$p99" "${limits% *}" "${limits#* }" "$min_sample")
    if [[ "$verdict" == BAD:* ]]; then
      bad=$((bad + 1))
      if ((bad >= ${bad_limit%.*})); then
        CANARY_VERDICT="${verdict#BAD: } at $pct % (stable: $b_count requests, $b_errors 5xx)"
        return 1
      fi
    fi
    step "  canary $pct %: $(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.0fs", a - b }') of ${seconds}s: $verdict (stable: $b_count requests, $b_errors 5xx, p99 ${b_p99} s)"
    from=$now
    awk -v a="$now" -v b="$end" 'BEGIN { exit !(a >= b) }' || continue
    ((total < min)) || break
    if awk -v a="$now" -v b="$deadline" 'BEGIN { exit !(a >= b) }'; then
      CANARY_VERDICT="too little traffic to judge: $total requests reached the canary in $(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.0f", a - b }')s at $pct % (< --canary-min-requests $min)"
      return 1
    fi
    ((waiting++)) || step "  canary $pct %: only $total of the $min requests needed so far; waiting up to ${seconds}s more"
  done
  step "canary $pct %: passed ($total requests, $total_errors 5xx, $bad bad sample(s) of $bad_limit allowed)"
}

# A canary step failed: the stable release, which .env still names, takes every request back (a
# file write, no container start), the canary container goes, and the history records a
# canary-rollback with the figures. Exits non-zero.
canary_revert() { # verdict   (roll_to's locals: tag new name old_slot prev_tag)
  step "canary: $1; sending every request to slot $old_slot ($prev_tag) again"
  take_back canary-rollback "$1" "the canary failed ($1) but the proxy refused slot $old_slot; run scripts/repair.sh now"
  die "canary rolled back automatically: $1; $prev_tag serves every request again and $name was removed"
}

# The guard's and a failed canary's last steps: the stable release, running in its slot, takes
# every request (a file write, no container start); requests already routed land; the new
# container goes; the history records ACTION with the figures.
take_back() { # action verdict refused_message   (roll_to's locals: tag new old_slot prev_tag)
  switch_proxy "$old_slot" || die "$3"
  sleep "${SLIPWAY_SWITCH_SETTLE:-1}"
  docker stop -t 30 "$new" >/dev/null 2>&1 || true
  docker rm -f "$new" >/dev/null
  record_release "$1" "$prev_tag" "$tag" - "$2" \
    || log "warning: could not record the $1 in $HISTORY_FILE"
}

# Before the switch went through: .env names the old release again, then the new container goes.
undo_roll() { # why   (roll_to's locals: prev_tag old_slot new name)
  if ! env_set API_TAG "$prev_tag" API_SLOT "$old_slot" COMPOSE_PROFILES "slot-$old_slot"; then
    log "warning: could not restore .env; scripts/repair.sh will"
  fi
  docker rm -f "$new" >/dev/null
  die "$1; removed $name, the old release keeps serving"
}

# Brings the host back to one consistent release after an interrupted operation (a kill, a
# dropped link, a crash): the proxy points at a slot with a healthy container, .env names it (so
# `docker compose up -d` keeps it), the history records it, and the other slot holds nothing but
# the release before it, kept as keep_old keeps it. Does nothing on a consistent host. Runs under
# the deploy lock.
reconcile() {
  local id active canary="" slot serving="" tag last action kept="" previous active_fd state state_slot health
  local -a all=() states=()
  mapfile -t all < <(api_containers)
  ((${#all[@]} > 0)) || return 0
  # The proxy is asked while the containers are inspected: a deploy waits on both.
  exec {active_fd}< <(proxy_route)
  mapfile -t states < <(container_states "${all[@]}")
  read -r active canary <&"$active_fd" || active=a
  exec {active_fd}<&-
  [[ "$active" == b ]] || active=a
  # The slot .env names first: .env moves to a new release only once it is healthy, so a roll
  # killed after that point is carried forward, as `docker compose up -d` would.
  for slot in $(printf '%s\n' "$(env_slot)" "$active" "$(other_slot "$active")" | awk '!seen[$0]++'); do
    for state in "${states[@]}"; do
      read -r id state_slot health <<<"$state"
      [[ -z "$serving" && "$state_slot" == "$slot" && "$health" == healthy ]] && serving=$id
    done
  done
  if [[ -z "$serving" ]]; then
    log "repair: no api container is healthy; nothing to keep, so nothing is removed"
    return 0
  fi
  slot=$(container_slot "$serving")
  if [[ "$slot" != "$active" ]]; then
    step "repair: the proxy's slot $active is not the release .env names; pointing the proxy at slot $slot ($(container_name "$serving"))"
    switch_proxy "$slot" || die "the proxy refused slot $slot; see docker compose -f $COMPOSE_FILE_NAME logs proxy"
  elif [[ -n "$canary" ]]; then
    # A canary step was cut off: .env still names the stable release, which takes it all back.
    step "repair: the proxy still gave a canary share (slot ${canary% *}: ${canary#* } %) that an interrupted deploy left; sending everything to slot $slot"
    switch_proxy "$slot" || die "the proxy refused slot $slot; see docker compose -f $COMPOSE_FILE_NAME logs proxy"
  fi
  tag=$(container_ref "$serving")
  if [[ "$(env_get API_TAG)" != "$tag" || "$(env_get API_SLOT)" != "$slot" || "$(env_get COMPOSE_PROFILES)" != "slot-$slot" ]]; then
    step "repair: .env named api:$(env_get API_TAG) in slot $(env_get API_SLOT), but api:$tag in slot $slot serves; recording that"
    env_set API_TAG "$tag" API_SLOT "$slot" COMPOSE_PROFILES "slot-$slot" "API_${slot^^}_TAG" "$tag"
  fi
  last=$(history_entries | tail -n 1 | cut -f3,4 | tr '\t' ' ')
  if ! same_release "$(pin_ref "${last% *}" "${last#* }")" "$tag"; then
    # The operation that switched to TAG was killed before it wrote its record.
    action=repair
    [[ "${INTERRUPTED:-}" =~ op=(deploy|rollback):"$tag"( |$) ]] && action=${BASH_REMATCH[1]}
    step "repair: recording the $action of $tag that was interrupted before its record"
    record_release "$action" "$tag" "$(pin_ref "${last% *}" "${last#* }")"
  fi
  # What a finished operation would have kept, healthy or stopped, in the other slot.
  previous=$(kept_release "$tag")
  for id in "${all[@]}"; do
    [[ "$id" == "$serving" ]] && continue
    if [[ -z "$kept" && -n "$previous" && "$(container_slot "$id")" != "$slot" ]] && keepable "$id" "$previous"; then
      kept=$id
      continue
    fi
    step "repair: removing leftover api container $(container_name "$id") (slot $(container_slot "$id"), api:$(container_ref "$id"), $(container_health "$id"))"
    docker stop -t 30 "$id" >/dev/null 2>&1 || true
    docker rm -f "$id" >/dev/null
  done
  if [[ -n "$kept" && "$(keep_previous)" != warm ]] && container_running "$kept"; then
    step "repair: $(keep_old "$kept")"
  fi
}

# The migrate service runs the release whose migrations the database has (.env's MIGRATE_TAG):
# recreated for TAG after TAG's migrations ran, it applies them again (nothing to do) and idles,
# so its config matches .env and a later `docker compose up -d` leaves it be. A release with no
# pending migration, a rollback and a guard revert leave it alone: the schema did not change.
align_migrate() { # tag
  env_set MIGRATE_TAG "$1" || return 1
  # One compose call (each re-reads the project), not `create` then `start`.
  compose up -d --no-deps --force-recreate migrate >/dev/null 2>&1
}

# `dbmate up` with REF's image in a one-off migrate container (the caller's environment picks
# the database: POSTGRES_DB).
dbmate_up() { # ref
  MIGRATE_TAG=$1 compose run --rm --no-deps -T migrate node_modules/.bin/dbmate --wait --wait-timeout 60s up
}
# How many migrations a run's output says dbmate tried, and applied (a failed one is rolled back).
tried_count() { grep -c '^Applying: ' "$1" || true; }  # output_file
applied_count() { grep -c '^Applied: ' "$1" || true; } # output_file

# Runs the migrations of REF in a one-off container, streaming their output; fails with them.
# A migration that gave up waiting for a lock (MIGRATION_LOCK_TIMEOUT: API queries queue behind
# it) is tried again, MIGRATION_LOCK_TRIES times in all: dbmate rolled it back, and what the
# earlier tries applied stays applied. Then aligns the migrate service with REF. Sets
# MIGRATIONS_APPLIED (how many dbmate applied).
run_migrations() { # ref
  local out attempt=1 tries status
  tries=$(env_number MIGRATION_LOCK_TRIES 3)
  out=$(mktemp)
  MIGRATIONS_APPLIED=0
  while :; do
    status=0
    dbmate_up "$1" 2>&1 | tee "$out" >&2 || status=$?
    MIGRATIONS_APPLIED=$((MIGRATIONS_APPLIED + $(applied_count "$out")))
    ((status != 0)) || break
    if ((attempt >= ${tries%.*})) || ! grep -q 'lock timeout' "$out"; then
      ((attempt == 1)) || log "the migration still waited too long for its lock after $attempt attempts (MIGRATION_LOCK_TRIES)"
      rm -f "$out"
      return 1
    fi
    log "a migration waited longer than MIGRATION_LOCK_TIMEOUT for its lock (attempt $attempt of ${tries%.*}); trying again in 2s"
    attempt=$((attempt + 1))
    sleep 2
  done
  rm -f "$out"
  align_migrate "$1"
}

# psql in the db container as its superuser, on database DB (default: the app's), reading SQL
# from stdin; one `docker exec` (not `compose exec`), with the container's own POSTGRES_USER/DB.
db_psql() { # [db] [psql options...]
  local db=${1:-}
  shift || true
  # shellcheck disable=SC2016  # expanded by the container's shell, from its environment
  docker exec -i "$(service_container db)" sh -c 'db=$1; shift; exec psql -X -At -U "$POSTGRES_USER" -d "${db:-$POSTGRES_DB}" "$@"' sh "$db" "$@"
}

# Migration versions REF's image ships that the database has not applied, one per line. Reads the
# image's db/migrations without starting the app (a container that only lists a directory).
# The migration versions IMAGE ships, one per line, sorted: a `docker run` of its own `ls`.
shipped_migrations() { # ref
  docker run --rm --network none --entrypoint sh "$(api_image):$1" -c 'ls /app/db/migrations' \
    | sed -n 's/^\([0-9][0-9]*\)_.*\.sql$/\1/p' | sort
}
# Of the versions on stdin (as shipped_migrations prints them), those the database has not
# applied. The database is asked first, so a shipped_migrations still running overlaps it.
pending_migrations() {
  local applied
  applied=$(db_psql "" -c "SELECT version FROM schema_migrations" </dev/null 2>/dev/null | sort) || applied=""
  comm -23 - <(printf '%s\n' "$applied") | sed '/^$/d'
}

# Rehearses REF's migrations on a copy of the data before they touch the real database: DUMP (the
# fresh pre-deploy backup) is restored into a throwaway database beside the real one, REF's
# pending migrations run there with the real timeouts, and the copy is dropped. A migration that
# only fails on existing data (NOT NULL over NULLs, a unique index over duplicates) fails here.
# Sets REHEARSAL_REPORT. Returns non-zero when the migrations fail on the copy.
rehearse_migrations() { # ref dump
  local ref=$1 dump=$2 db start out status=0
  db="slipway_rehearsal_$(date -u +%Y%m%d%H%M%S)_$$"
  step "rehearsing the migrations of $ref on a copy of the database ($db, from $(basename "$dump"))"
  start=$(date +%s)
  db_psql postgres -c "CREATE DATABASE $db" >/dev/null || { log "cannot create the rehearsal database (disk full?)"; return 1; }
  out=$(mktemp)
  if ! db_psql "$db" -q -v ON_ERROR_STOP=1 --single-transaction <"$dump" >/dev/null 2>"$out"; then
    log "the pre-deploy backup did not restore into the rehearsal database: $(tail -n 3 "$out" | tr '\n' ' ')"
    status=1
  elif ! POSTGRES_DB=$db dbmate_up "$ref" >"$out" 2>&1; then
    sed 's/^/  rehearsal: /' "$out" >&2
    status=1
  fi
  REHEARSAL_REPORT="$(tried_count "$out") migration(s) in $(($(date +%s) - start))s on a copy of the data"
  rm -f "$out"
  db_psql postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null \
    || log "warning: could not drop the rehearsal database $db; the next deploy drops it"
  return "$status"
}

# The newest migration version the real database has applied.
# --- rolling back a release's migrations (rollback.sh --migrations) -----------------------
# The applied versions TARGET does not ship: what the release being undone added, newest first.
undone_migrations() { # target_ref
  local shipped applied
  shipped=$(shipped_migrations "$1") || return 1
  applied=$(db_psql "" -c "SELECT version FROM schema_migrations" </dev/null | sort) || return 1
  comm -13 <(printf '%s\n' "$shipped") <(printf '%s\n' "$applied") | sed '/^$/d' | sort -r
}

# The `-- migrate:down` section of VERSION's file in IMAGE's db/migrations.
down_sql() { # ref version
  # shellcheck disable=SC2016  # expanded by the container's shell
  docker run --rm --network none --entrypoint sh "$(api_image):$1" -c 'cat /app/db/migrations/"$1"_*.sql' sh "$2" \
    | sed -n '/^-- migrate:down/,$p' | sed '1d'
}

# Whether the down sections would lose data: rehearsed on a copy (lib/down-rehearsal.sh).
# shellcheck source=scripts/lib/down-rehearsal.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/down-rehearsal.sh"

# dbmate rollback, once: the newest applied migration's down section, in one transaction, with
# the deploy's lock_timeout, using the migration files of REF.
dbmate_down() { # ref
  MIGRATE_TAG=$1 compose run --rm --no-deps -T migrate node_modules/.bin/dbmate --wait --wait-timeout 60s rollback
}

schema_version() {
  local version
  version=$(db_psql "" -c "SELECT max(version) FROM schema_migrations") || return 1
  echo "${version:-none}"
}

# The rehearsal databases a killed deploy left behind (rehearse_migrations drops its own).
leftover_rehearsals() {
  db_psql postgres -c "SELECT datname FROM pg_database WHERE datname ~ '^slipway_rehearsal_[0-9]+_[0-9]+$'" 2>/dev/null || true
}

# Drops them: every deploy and repair.sh do; status.sh names them as drift.
drop_rehearsals() {
  local name
  for name in $(leftover_rehearsals); do
    step "repair: dropping the rehearsal database $name an interrupted deploy left"
    db_psql postgres -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null || log "warning: could not drop $name"
  done
}

# Points the proxy at SLOT. The switch is idempotent, so a `docker exec` that fails to start (the
# runtime, busy on a loaded host: "OCI runtime exec failed ... connection reset by peer") is
# tried again; the proxy's own refusal (no socket in that slot) is final.
switch_proxy() { # slot; sets SWITCHED_INSTANCE to what the proxy reached right after (or "")
  local attempt out
  SWITCHED_INSTANCE=""
  for attempt in 1 2 3; do
    if out=$(proxy_exec slipway-upstream "$1" 2>&1); then
      printf '%s\n' "$out" >&2
      SWITCHED_INSTANCE=$(sed -n 's/^upstream now: slot [ab] (instance: \([^ )]*\))$/\1/p' <<<"$out")
      [[ "$SWITCHED_INSTANCE" != none ]] || SWITCHED_INSTANCE=""
      return 0
    fi
    printf '%s\n' "$out" >&2
    [[ "$out" == *"OCI runtime exec failed"* ]] || return 1
    log "the proxy's exec did not start (attempt $attempt of 3); trying again"
    sleep 1
  done
  return 1
}

# The release slot the proxy sends traffic to (a or b); .env's API_SLOT when the proxy is down.
active_slot() {
  local slot
  slot=$(proxy_route)
  [[ "${slot%% *}" == b ]] && echo b || echo a
}
# The proxy's route: the active slot, then during a canary step its slot and share ("a b 10");
# .env's API_SLOT when the proxy is down.
proxy_route() { proxy_exec slipway-upstream --show 2>/dev/null || env_get API_SLOT; }

# pg_dump ends a whole dump with this marker (followed, since 15.14/17.6, by \unrestrict).
dump_complete() { tail -n 8 "$1" | grep -q '^-- PostgreSQL database dump complete'; }

# Parses --help/-h the same way in every script.
wants_help() { local a; for a in "$@"; do [[ "$a" == "-h" || "$a" == "--help" ]] && return 0; done; return 1; }
