#!/usr/bin/env bash
# The Swarm target: what deploy.sh, rollback.sh and status.sh do on a Swarm manager
# (SLIPWAY_TARGET=swarm in .env, or --target swarm). Sourced after lib.sh, never run.
# A release is `docker stack deploy` of docker-stack.yml with the release pinned by digest;
# Swarm rolls the api's replicas health-gated, start-first, and rolls back by itself a release
# that never turns healthy. What this file adds: the lock, the secret, the pre-deploy backup
# and the migrations (one-off containers on the stack's network, before the update), the
# wait for the update with its progress, and the release history.
# shellcheck disable=SC2034  # variables here are read by the scripts that source this file

STACK_FILE_NAME=docker-stack.yml
# Chosen once, here: what the shared code asks of the target (release_digest: a Swarm release is
# the reference Swarm resolved, pinned; the manager's local images say nothing about it).
RELEASE_TARGET=swarm

stack_name() {
  local name
  name=$(env_get SLIPWAY_STACK)
  name=${name:-slipway}
  [[ "$name" =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] || die "invalid SLIPWAY_STACK '$name' in .env: use lowercase letters, digits, - and _"
  echo "$name"
}
api_service() { echo "$(stack_name)_api"; }
stack_network() { echo "$(stack_name)_default"; }
secret_name() {
  local prefix
  prefix=$(env_get SLIPWAY_SECRET_PREFIX)
  echo "${prefix:-slipway}_postgres_password"
}

require_manager() {
  [[ -f "$SLIPWAY_DIR/$STACK_FILE_NAME" ]] \
    || die "no $STACK_FILE_NAME in $SLIPWAY_DIR: ship the bundle (dagger call deploy does), or copy it from the repository"
  require_env
  command -v docker >/dev/null || die "docker is not installed on this host"
  [[ "$(docker info -f '{{.Swarm.ControlAvailable}}' 2>/dev/null)" == true ]] \
    || die "this host is not a Swarm manager, and .env (or --target) says SLIPWAY_TARGET=swarm: run on a manager (docker node ls), or set SLIPWAY_TARGET=compose"
}

# .env as KEY=VALUE lines for `docker stack deploy`, which does not read .env. Parsed, never
# sourced (a value is data, not shell), and without POSTGRES_PASSWORD: Swarm has it as a secret.
stack_env() {
  local line key value
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[1]}
    [[ "$key" != POSTGRES_PASSWORD ]] || continue
    value=$(env_get "$key")
    printf '%s=%s\n' "$key" "$value"
  done <"$SLIPWAY_DIR/.env"
}

ensure_secret() {
  local name
  name=$(secret_name)
  docker secret inspect "$name" >/dev/null 2>&1 && return 0
  step "creating the Swarm secret $name from .env's POSTGRES_PASSWORD"
  env_get POSTGRES_PASSWORD | tr -d '\n' | docker secret create "$name" - >/dev/null \
    || die "could not create the Swarm secret $name; check: docker secret ls"
}

# REF's image as the api service runs it: tag@digest once Swarm resolved it (--resolve-image).
# Each prints nothing, and succeeds, when the service does not exist yet.
service_image() { docker service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "$(api_service)" 2>/dev/null || true; }
service_update() { # "state started_at", or "" for a service never updated
  docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.StartedAt}}{{end}}' "$(api_service)" 2>/dev/null || true
}
# The reference (tag@sha256:...) a service image names, as the history records releases.
image_ref() { # image
  local image=${1##*/}
  echo "${image#*:}"
}

# The api tasks that should run, as "image state" lines (state: running, starting, ...).
running_tasks() {
  docker service ps --no-trunc "$(api_service)" --filter desired-state=running --format '{{.Image}} {{.CurrentState}}' 2>/dev/null \
    | awk '{ print $1, tolower($2) }' || true
}

# .env's values reach the stack file's interpolation as exported variables (export is a builtin),
# never as `env KEY=VALUE` arguments, which every user of the host could read in ps.
stack_deploy() { # ref
  local kv
  step "docker stack deploy $(stack_name) with api $(api_image):$1"
  (
    cd "$SLIPWAY_DIR" || exit 1
    while IFS= read -r kv; do export "${kv%%=*}=${kv#*=}"; done < <(stack_env)
    export API_TAG=$1 MIGRATE_TAG=$1
    exec docker stack deploy --detach=true --with-registry-auth --resolve-image always --prune=false \
      -c "$STACK_FILE_NAME" "$(stack_name)" >&2
  )
}

# Waits for the api's rolling update (started after BEFORE, the update status beforehand) to
# finish with every replica on IMAGE_REF: 0 done, 1 Swarm rolled it back or paused it, 2 timeout.
wait_update() { # before ref timeout
  local before=$1 ref=$2 timeout=$3 start now update state tasks replicas shown=-1 last="" on_ref total image task_state
  start=$(date +%s)
  replicas=$(docker service inspect -f '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$(api_service)")
  while :; do
    now=$(($(date +%s) - start))
    update=$(service_update)
    state=${update%% *}
    [[ "$update" == "$before" ]] && state=pending
    [[ -n "$update" ]] || state=created
    tasks=$(running_tasks)
    on_ref=0
    total=0
    while read -r image task_state; do
      [[ -n "$image" ]] || continue
      total=$((total + 1))
      [[ "$task_state" == running && ("$image" == *":$ref" || "$image" == *":$ref@sha256:"*) ]] && on_ref=$((on_ref + 1))
    done <<<"$tasks"
    if [[ "$state $on_ref" != "$last" ]] || ((now % 5 == 0 && now != shown)); then
      step "  update: ${state}, ${on_ref}/${replicas} replicas running $(ref_tag "$ref") (${now}s of ${timeout}s)"
      shown=$now
      last="$state $on_ref"
    fi
    # Swarm's own rollback of a release that failed its health checks: wait for it to finish,
    # so the lock is released only once the old release serves again.
    [[ " rollback_completed rollback_paused paused " != *" $state "* ]] || return 1
    # `completed` can come before the old tasks are gone (SWARM.md): also count the replicas.
    if [[ "$state" == completed || "$state" == created || "$state" == pending ]] \
      && ((on_ref == replicas && total == replicas)); then
      return 0
    fi
    ((now >= timeout)) && return 2
    sleep 1
  done
}

# Roll the api to REF, health-gated by Swarm; returns as wait_update does.
# How long a rolling update may take: TIMEOUT per replica (Swarm replaces them one at a time).
roll_budget() { # timeout
  local replicas
  replicas=$(env_number API_REPLICAS 2)
  echo $(($1 * ${replicas%.*} + 30))
}

swarm_roll() { # ref timeout
  local before budget
  before=$(service_update)
  budget=$(roll_budget "$2")
  stack_deploy "$1" || die "docker stack deploy failed; the running release is unchanged"
  step "waiting up to ${budget}s for Swarm's rolling update to $(ref_tag "$1")"
  wait_update "$before" "$1" "$budget"
}

# After a roll: the reference the service runs (tag@digest, as Swarm resolved it).
swarm_release() { image_ref "$(service_image)"; }

# What an interrupted deploy left: Swarm finishes or rolls back an update by itself, so wait
# for it, then make .env name what the service runs.
swarm_reconcile() {
  local update running last action
  # The repairer owns what it finds: its clean exit clears the killed operation's note (lib.sh).
  PHASE_OWNED=1
  update=$(service_update)
  if [[ "${update%% *}" == updating || "${update%% *}" == rollback_started ]]; then
    step "repair: an update of $(api_service) is still under way (${update%% *}); waiting for Swarm to finish it"
    for _ in $(seq 1 300); do
      update=$(service_update)
      [[ "${update%% *}" == updating || "${update%% *}" == rollback_started ]] || break
      sleep 1
    done
  fi
  running=$(swarm_release)
  [[ -n "$running" ]] || return 0
  if ! same_release "$running" "$(env_get API_TAG)"; then
    step "repair: .env named api:$(env_get API_TAG), but $(api_service) runs $running; recording that"
    name_serving "$running" -
  fi
  last=$(history_entries | tail -n 1 | cut -f3,4 | tr '\t' ' ')
  if ! same_release "$(pin_ref "${last% *}" "${last#* }")" "$running"; then
    # The operation that rolled to it was killed before it wrote its record.
    action=repair
    [[ "${INTERRUPTED:-}" =~ op=(deploy|rollback):"$(ref_tag "$running")"(@| |$) ]] && action=${BASH_REMATCH[1]}
    step "repair: recording the $action of $running that was interrupted before its record"
    record_release "$action" "$running" "$(pin_ref "${last% *}" "${last#* }")" -
  fi
}

swarm_deploy() { # ref timeout skip_backup
  local tag=$1 timeout=$2 skip_backup=$3 current result status=0
  swarm_reconcile
  current=$(env_get API_TAG)
  pre_hook pre-deploy deploy "$tag" "${current:--}"
  ensure_secret
  if [[ -z "$(service_image)" ]]; then
    step "first release of stack $(stack_name): starting every service with $tag"
    stack_deploy "$tag" || die "docker stack deploy failed; see the error above"
    step "running the migrations of $tag"
    run_migrations "$tag" || die "the migrations of $tag failed on the new stack; fix them and deploy again"
    wait_update "" "$tag" "$(roll_budget "$timeout")" || die "the api did not come up with $tag; see: docker service ps $(api_service)"
  else
    if ((skip_backup)); then
      step "pre-deploy backup skipped (--skip-backup)"
    else
      step "pre-deploy backup"
      swarm_backup >/dev/null
    fi
    step "running migrations with $tag (before the update: the api turns ready only once they are in)"
    run_migrations "$tag" || die "migrations of $tag failed; nothing was rolled and ${current:-the old release} keeps serving. Fix the migration and deploy again"
    swarm_roll "$tag" "$timeout" || status=$?
    if ((status == 1)); then
      die "Swarm rolled api back to ${current:-the previous release}: $tag never turned healthy (see: docker service ps $(api_service)); nothing else changed"
    elif ((status == 2)); then
      die "the rolling update to $tag did not finish within ${timeout}s; Swarm goes on with it (or rolls it back): see scripts/status.sh"
    fi
  fi
  result=$(swarm_release)
  name_serving "$result" -
  finish_release deploy "$result" "${current:--}" "${MIGRATIONS_APPLIED:--}"
  post_hook post-deploy deploy "$result" "${current:--}" "${MIGRATIONS_APPLIED:--}"
  CLEAN_EXIT=1
  step "deployed $result on $(api_service) in $(elapsed); recorded in $HISTORY_FILE"
}

swarm_rollback() { # ref-or-empty timeout [migrations accept_loss]
  local tag=$1 timeout=$2 migrations=${3:-0} accept=${4:-0} current status=0 result schema_only=0
  swarm_reconcile
  # A --migrations rollback killed during its rehearsal leaves the copy.
  ((!migrations)) || drop_rehearsals
  current=$(env_get API_TAG)
  if [[ -z "$tag" ]]; then
    tag=$(previous_release "$current")
    [[ -n "$tag" ]] || die "no release before '${current:-?}' in $HISTORY_FILE; name one: scripts/rollback.sh <tag>"
  elif [[ "$tag" != *@* ]]; then
    tag=$(pinned_release "$tag")
  fi
  require_ref "$tag"
  if same_release "$tag" "$current"; then
    ((migrations)) || die "$tag is already the current release; name another: scripts/rollback.sh <tag>"
    schema_only=1
  fi
  pre_hook pre-rollback rollback "$tag" "${current:--}"
  ((!migrations)) || plan_down "$tag" "$current" "$accept" swarm_backup
  result=$current
  if ((!schema_only)); then
    step "rolling back $(api_service) from ${current:-?} to $tag$( ((migrations)) || echo " (no migrations: the schema stays)")"
    swarm_roll "$tag" "$timeout" || status=$?
    ((status == 0)) || die "the rollback to $tag did not finish (Swarm $([[ $status == 1 ]] && echo "rolled it back" || echo "is still at it")); see scripts/status.sh"
    result=$(swarm_release)
    name_serving "$result" -
  fi
  ((${#DOWN_UNDO[@]} == 0)) || apply_down "$result" "$current" "$accept"
  finish_release rollback "$result" "$current" - "${DOWN_UNDO[*]:+migrations rolled back: ${DOWN_UNDO[*]}}"
  post_hook post-rollback rollback "$result" "${current:--}"
  CLEAN_EXIT=1
  step "rolled back to $result in $(elapsed); recorded in $HISTORY_FILE"
}

swarm_status() { # releases
  local update
  echo "target:   swarm, stack $(stack_name) (.env SLIPWAY_TARGET)"
  echo "release:  $(env_get API_TAG) (.env)"
  if [[ -z "$(service_image)" ]]; then
    echo "service:  $(api_service) does not exist: no release on this swarm yet (scripts/deploy.sh <tag>)"
    return 0
  fi
  echo "service:  $(api_service) runs $(swarm_release)"
  update=$(service_update)
  echo "update:   ${update:-none yet}"
  echo "hooks:    $(hooks_line)"
  echo "tasks:"
  docker service ps "$(api_service)" --filter desired-state=running --format '  {{.Name}} {{.Node}} {{.Image}} {{.CurrentState}}' 2>&1 || true
  echo "services:"
  docker stack services "$(stack_name)" --format '  {{.Name}} {{.Replicas}} {{.Image}}' 2>&1 || true
  local note
  if note=$(interrupted_operation); then echo "drift: an operation was interrupted before it finished: $note"; fi
  if ! same_release "$(swarm_release)" "$(env_get API_TAG)"; then
    echo "drift: .env names $(env_get API_TAG) but the service runs $(swarm_release); scripts/repair.sh records it"
  fi
  echo "last $1 releases:"
  history_entries | tail -n "$1" | cut -f1-5 | sed 's/^/  /'
}

# The database, from one-off containers on the stack's network (lib/swarm-db.sh).
# shellcheck source=scripts/lib/swarm-db.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/swarm-db.sh"
