# Sourced by lib.sh: repairing what a cut-off operation left, in three steps: observe the host
# (every store read once), plan (a pure function of that observation), apply. status.sh prints
# the same observation's plan as "the next command will", so what it says is what repair does.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# --- observe -------------------------------------------------------------------------
# One fact a line, for plan_repair:
#   env SLOT TAG PROFILES                    .env's API_SLOT, API_TAG and COMPOSE_PROFILES
#   route ACTIVE [CANARY_SLOT PERCENT]       the proxy's route file
#   phase PHASE TAG                          the phase last recorded (lib/state.sh)
#   last REF                                 releases.log's newest record, pinned ("-": none)
#   op ACTION TAG                            an interrupted deploy's or rollback's lock note
#   keep MODE                                KEEP_PREVIOUS
#   container ID SLOT HEALTH RUNNING NAME REF DIGEST HOSTNAME
#                                            each api container (DIGEST: its image's registry digest,
#                                            "-": none or not needed; HOSTNAME: what /health names)
#   kept REF PREVIOUS                        what a finished operation keeps beside REF (kept_release)
observe_host() { # interrupted_lock_note
  local note=$1 route_fd route id slot health running name image image_id ref last digest
  local -a ids=() facts=()
  local -A digest_of=() seen=()
  mapfile -t ids < <(api_containers)
  # The proxy is asked while the containers are inspected: a deploy waits on both.
  exec {route_fd}< <(proxy_route)
  ((${#ids[@]} == 0)) || mapfile -t facts < <(docker inspect -f '{{slice .Id 0 12}} {{index .Config.Labels "com.docker.compose.service"}} {{with index .State "Health"}}{{.Status}}{{else}}{{.State.Status}}{{end}} {{.State.Running}} {{.Name}} {{.Config.Image}} {{.Config.Hostname}} {{.Image}}' "${ids[@]}" 2>/dev/null)
  read -r route <&"$route_fd" || route=$(env_get API_SLOT)
  exec {route_fd}<&-
  echo "env $(env_slot) $(env_get API_TAG) $(env_get COMPOSE_PROFILES)"
  echo "route ${route:-a}"
  echo "phase $(current_phase | cut -d' ' -f1,2)"
  last=$(last_recorded)
  echo "last ${last:--}"
  [[ ! "$note" =~ op=(deploy|rollback):([^ ]+) ]] || echo "op ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
  echo "keep $(keep_previous)"
  local -a kept_lines=() unpinned=()
  for id in "${facts[@]}"; do
    read -r id slot health running name image hostname image_id <<<"$id"
    image=${image##*/}
    ref=${image#*:}
    [[ "$ref" == *@* ]] || unpinned+=("$image_id")
    [[ -n "${seen[$ref]:-}" ]] || kept_lines+=("kept $ref $(kept_release "$ref" | grep . || echo -)")
    seen[$ref]=1
  done
  # A registry digest matters only where a container created from a plain tag might be kept as a
  # pinned release (can_keep): one `docker image inspect`, and none on the usual path.
  if ((${#facts[@]} > 1 && ${#unpinned[@]} > 0)) && [[ "${kept_lines[*]}" == *@sha256:* ]]; then
    while read -r image_id digest; do digest_of[$image_id]=$digest; done < <(image_digests "${unpinned[@]}")
  fi
  for id in "${facts[@]}"; do
    read -r id slot health running name image hostname image_id <<<"$id"
    image=${image##*/}
    echo "container $id ${slot#api-} $health $running ${name#/} ${image#*:} ${digest_of[$image_id]:--} $hostname"
  done
  ((${#kept_lines[@]} == 0)) || printf '%s\n' "${kept_lines[@]}"
}

# Whether reconcile's observation still holds: a roll trusts it for 5 s only (a deploy's backup
# and migrations come between).
observation_fresh() { ((${#OBSERVED[@]} > 0 && EPOCHSECONDS - OBSERVED_AT <= 5)); }

# From a fresh observation (OBSERVED): the kept container a roll to REF can switch to at once, as
# switchable_container decides it but with no docker call: the only container in the idle slot,
# created from REF itself, healthy and running. Prints "ID NAME HOSTNAME", or nothing.
observed_switchable() { # ref
  local kind id slot health running name ref digest hostname idle match="" n=0
  observation_fresh || return 0
  idle=$(other_slot "$(env_slot)")
  while read -r kind id slot health running name ref digest hostname; do
    [[ "$kind" == container && "$slot" == "$idle" ]] || continue
    n=$((n + 1))
    [[ "$ref" == "$1" && "$health" == healthy && "$running" == true ]] && match="$id $name $hostname"
  done < <(printf '%s\n' "${OBSERVED[@]}")
  ((n != 1)) || [[ -z "$match" ]] || echo "$match"
}

# The api containers of SLOT as observed (OBSERVED): their IDs, one a line.
observed_slot() { # slot
  local kind id slot _
  while read -r kind id slot _; do
    [[ "$kind" != container || "$slot" != "$1" ]] || echo "$id"
  done < <(printf '%s\n' "${OBSERVED[@]}")
}

# "IMAGE_ID DIGEST" for each image given: its registry digest in API_IMAGE's repository, or "-".
image_digests() { # image_id...
  docker image inspect -f '{{.Id}}{{range .RepoDigests}} {{.}}{{end}}' "$@" 2>/dev/null \
    | awk -v repo="$(api_image)@" '{ d = "-"; for (i = 2; i <= NF; i++) if (index($i, repo) == 1) { d = substr($i, length(repo) + 1); break }; print $1, d }'
}

# --- plan (pure: the observation in, actions out, one a line) --------------------------
#   switch SLOT FROM_SLOT NAME              point the proxy at SLOT
#   uncanary SLOT CANARY_SLOT PERCENT       take an interrupted canary's share back
#   name TAG SLOT OLD_TAG OLD_SLOT          make .env name what serves (name_serving)
#   record ACTION TAG PREVIOUS              write the record the interrupted operation did not
#   remove ID NAME SLOT REF HEALTH          drain and remove a leftover container
#   keep-old ID NAME MODE                   stop (or remove) the kept release, as KEEP_PREVIOUS says
#   nothing-healthy                         no healthy api container: nothing is kept, nothing removed
# Serving: the first healthy container in the slot .env names, then the proxy's, then the other;
# never the release a reverting guard or canary was taking back. Kept: what a finished operation
# would have kept beside it (kept_release), healthy or stopped, in the other slot.
plan_repair() { # < observation
  local kind a b c d e f g _ env_slot=a env_tag="" profiles="" active=a canary_slot="" canary_pct="" phase=idle phase_tag=-
  local last=- op_action="" op_tag="" keep=warm s i serving=-1 kept=-1 slot tag previous action unjudged
  local -a ids=() slots=() healths=() running=() names=() refs=() digests=()
  local -A kept_for=()
  while read -r kind a b c d e f g _; do
    case "$kind" in
      env) env_slot=$a env_tag=$b profiles=$c ;;
      route) active=$a canary_slot=$b canary_pct=$c ;;
      phase) phase=$a phase_tag=$b ;;
      last) last=$a ;;
      op) op_action=$a op_tag=$b ;;
      keep) keep=$a ;;
      container) ids+=("$a") slots+=("$b") healths+=("$c") running+=("$d") names+=("$e") refs+=("$f") digests+=("$g") ;;
      kept) kept_for[$a]=$b ;;
    esac
  done
  ((${#ids[@]} > 0)) || return 0
  for s in "$env_slot" "$active" "$(other_slot "$active")"; do
    for i in "${!ids[@]}"; do
      if ((serving < 0)) && [[ "${slots[i]}" == "$s" && "${healths[i]}" == healthy ]] \
        && ! [[ "$phase" == reverting && "${refs[i]}" == "$phase_tag" ]]; then
        serving=$i
      fi
    done
  done
  if ((serving < 0)); then
    echo nothing-healthy
    return 0
  fi
  slot=${slots[serving]} tag=${refs[serving]}
  if [[ "$slot" != "$active" ]]; then
    echo "switch $slot $active ${names[serving]}"
  elif [[ -n "$canary_slot" ]]; then
    echo "uncanary $slot $canary_slot $canary_pct"
  fi
  [[ "$env_tag" == "$tag" && "$env_slot" == "$slot" && "$profiles" == "slot-$slot" ]] || echo "name $tag $slot ${env_tag:--} $env_slot"
  previous=${kept_for[$tag]:--}
  if ! same_release "$last" "$tag"; then
    action=repair
    [[ "$op_tag" != "$tag" ]] || action=$op_action
    # Cut off in its guard window: kept (it served, and the release before stays warm beside it
    # for an instant rollback), but recorded as never fully judged; reverting would undo a
    # release nobody judged bad. What it replaced is the newest record: that is what is kept.
    unjudged=""
    [[ "$phase" != guarding ]] || ! same_release "$phase_tag" "$tag" || unjudged=" unjudged"
    echo "record $action $tag $last$unjudged"
    previous=$last
  fi
  for i in "${!ids[@]}"; do
    ((i != serving)) || continue
    if ((kept < 0)) && [[ "$previous" != - && "${slots[i]}" != "$slot" ]] && can_keep "${refs[i]}" "${digests[i]}" "${healths[i]}" "${running[i]}" "$previous"; then
      kept=$i
      continue
    fi
    echo "remove ${ids[i]} ${names[i]} ${slots[i]} ${refs[i]} ${healths[i]}"
  done
  ((kept < 0)) || [[ "$keep" == warm || "${running[kept]}" != true ]] || echo "keep-old ${ids[kept]} ${names[kept]} $keep"
}

# Whether a container (its REF, image DIGEST, HEALTH, RUNNING) can be kept as release PREVIOUS:
# the same release (a container created from a plain tag: its image has the digest PREVIOUS
# pins; one created pinned was compared by same_release), healthy or stopped (a start away).
can_keep() { # ref digest health running previous
  same_release "$1" "$5" || return 1
  [[ -z "$(ref_digest "$5")" || -n "$(ref_digest "$1")" || "$2" == "$(ref_digest "$5")" ]] || return 1
  [[ "$3" == healthy || "$4" != true ]]
}

# What an action says is wrong now, for status.sh's DRIFT lines.
drift_of_action() { # action...
  case "$1" in
    switch) echo "the proxy serves slot $3, but the healthy release .env names is in slot $2 ($4)" ;;
    uncanary) echo "the proxy still gives slot $3 $4 % of requests: a canary step an interrupted deploy left" ;;
    name) echo ".env names api:$4 in slot $5, but api:$2 in slot $3 serves (docker compose up -d would act on the wrong one)" ;;
    record) echo "releases.log's newest record is not api:$3, which serves" ;;
    remove) echo "leftover api container: $3 slot $4, api:$5, $6" ;;
    keep-old) echo "the kept release $3 still runs, but KEEP_PREVIOUS=$4" ;;
    nothing-healthy) echo "no healthy api container in either slot" ;;
  esac
}

# --- apply ---------------------------------------------------------------------------
# What an action does, in words: status.sh's "the next command will" and repair's step lines.
describe_action() { # action...
  case "$1" in
    switch) echo "point the proxy at slot $2 ($4, the release .env names), away from slot $3" ;;
    uncanary) echo "take back the canary share an interrupted deploy left (slot $3: $4 %): everything to slot $2" ;;
    name) echo "make .env name api:$2 in slot $3, which serves (it named api:$4 in slot $5)" ;;
    record) echo "record the $2 of $3, which serves, in releases.log (its operation was cut off before its record)$([[ "${5:-}" != unjudged ]] || echo "; its guard window was cut off: recorded as never fully judged, the release before kept warm")" ;;
    remove) echo "drain and remove the leftover api container $3 (slot $4, api:$5, $6)" ;;
    keep-old) if [[ "$4" == none ]]; then echo "drain and remove the release before, $3 (KEEP_PREVIOUS=none)"; else echo "stop the kept release $3 (KEEP_PREVIOUS=$4)"; fi ;;
    nothing-healthy) echo "nothing: no api container is healthy, so none is kept and none removed (see RUNBOOK.md §6)" ;;
    *) die "internal: unknown repair action '$1'" ;;
  esac
}

apply_action() { # action...
  step "repair: $(describe_action "$@")"
  case "$1" in
    switch | uncanary) switch_proxy "$2" || die "the proxy refused slot $2; see docker compose -f $COMPOSE_FILE_NAME logs proxy" ;;
    name) name_serving "$2" "$3" || die "cannot write .env (disk full?); nothing else was changed: free space, then run scripts/repair.sh" ;;
    record) record_release "$2" "$3" "$4" - "$([[ "${5:-}" != unjudged ]] || echo "guard window cut off: never fully judged")" || die "cannot write $HISTORY_FILE (disk full?): free space, then run scripts/repair.sh" ;;
    remove)
      docker stop -t 30 "$2" >/dev/null 2>&1 || true
      docker rm -f "$2" >/dev/null
      ;;
    keep-old) keep_old "$2" >/dev/null ;;
  esac
}

# Brings the host back to one consistent release after an interrupted operation (a kill, a
# dropped link, a crash): the plan for what is found, applied. Does nothing on a consistent host.
# Runs under the deploy lock (INTERRUPTED: the note a killed holder left). Leaves the observation
# in OBSERVED when nothing was changed, so the roll that follows needs no second look (the
# rollback to the kept release: one `docker ps`, one `docker inspect`, then the switch).
reconcile() {
  local -a actions=()
  local action
  # The repairer owns the phase: what it finds, it brings back to idle.
  PHASE_OWNED=1
  PROXY_CONTAINER=$(service_container proxy)
  mapfile -t OBSERVED < <(observe_host "${INTERRUPTED:-}")
  OBSERVED_AT=$EPOCHSECONDS
  mapfile -t actions < <(printf '%s\n' "${OBSERVED[@]}" | plan_repair)
  ((${#actions[@]} == 0)) || OBSERVED=()
  for action in "${actions[@]}"; do
    # shellcheck disable=SC2086  # an action is words
    apply_action $action
  done
  [[ "$(current_phase)" == idle* ]] || enter_phase idle "$(env_get API_TAG)"
}
