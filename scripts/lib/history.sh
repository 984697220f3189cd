# Sourced by lib.sh: the release history (releases.log): the one writer of its records, and what it says came before.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

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
    "$(ref_tag "${3:--}")" "$(operator)" "${previous_digest:--}" "${4:--}" "$(approver)" "${5:--}" >>"$HISTORY_FILE" || return 1
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

# The newest record's release, pinned to the digest it ran; nothing with no history.
last_recorded() {
  local last
  last=$(history_entries | tail -n 1 | cut -f3,4 | tr '\t' ' ')
  [[ -z "$last" ]] || pin_ref "${last% *}" "${last#* }"
}

# What CURRENT replaced when its cut-off operation never recorded it (killed in the guard window):
# the newest record's release, unless that is CURRENT itself. The repair records CURRENT with
# that one as its previous (plan_repair), so status names the same release kept.
replaced_unrecorded() { # current_ref
  local last
  last=$(last_recorded)
  [[ -z "$last" ]] || same_release "$last" "$1" || echo "$last"
}

# How many migrations the latest deploy of REF applied, per the history ("-": none ran).
release_migrations() { # ref
  history_entries | awk -F'\t' -v tag="$(ref_tag "$1")" '$2 == "deploy" && $3 == tag { m = $8 } END { print (m == "" ? "-" : m) }'
}

# TAG pinned to the registry digest it had when it last ran here (per the history), if known.
pinned_release() { # tag
  pin_ref "$1" "$(history_entries | awk -F'\t' -v tag="$1" '$3 == tag && $4 ~ /^sha256:[0-9a-f]+$/ { d = $4 } END { print d }')"
}
