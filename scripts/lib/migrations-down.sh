# Sourced by lib.sh: rollback.sh --migrations on either target, before the roll (plan_down:
# which migrations, from which release's files, refused unless the rehearsal lost nothing) and
# after it (apply_down: each down section on the real database).
# shellcheck shell=bash
# shellcheck disable=SC2034  # DOWN_* are read by the scripts that source lib.sh

DOWN_UNDO=() DOWN_SOURCE="" DOWN_DUMP=""

# Lines on stdin as one: "a; b; c".
joined() { paste -sd ';' | sed 's/;/; /g'; }

# One migration's down section (dbmate rollback, one transaction); tried again, like deploy's
# migrations, when it gave up waiting for its lock (the transaction undid everything).
migration_down() { # source_ref version
  local out attempt tries
  tries=$(env_number MIGRATION_LOCK_TRIES 3)
  for ((attempt = 1; ; attempt++)); do
    if out=$(dbmate_down "$1" 2>&1) && grep -q "Rolling back: ${2}_" <<<"$out"; then
      printf '%s\n' "$out" >&2
      return 0
    fi
    printf '%s\n' "$out" >&2
    if ((attempt >= ${tries%.*})) || ! grep -q 'lock timeout' <<<"$out"; then return 1; fi
    log "the down section waited longer than MIGRATION_LOCK_TIMEOUT for its lock (attempt $attempt of ${tries%.*}); trying again in 2s"
    sleep 2
  done
}

# Before the roll to TAG: the migrations it lacks (DOWN_UNDO, newest first), the release whose
# files hold their down sections (DOWN_SOURCE: MIGRATE_TAG, else CURRENT), a fresh backup
# (DOWN_DUMP, written by BACKUP...) and the rehearsal on a copy of it. Dies, with nothing
# changed, when a down section is unknown, fails on the copy, cannot be judged, or loses data
# (unless ACCEPT_LOSS is 1).
plan_down() { # tag current accept_loss backup_command...
  local tag=$1 current=$2 accept=$3 list v status=0 stake
  shift 3
  DOWN_UNDO=()
  list=$(undone_migrations "$tag") \
    || die "cannot tell which migrations $tag lacks (its image or the database did not answer); nothing was changed"
  [[ -z "$list" ]] || mapfile -t DOWN_UNDO <<<"$list"
  DOWN_SOURCE=$(env_get MIGRATE_TAG)
  DOWN_SOURCE=${DOWN_SOURCE:-$current}
  if ((${#DOWN_UNDO[@]} == 0)); then
    step "no migrations to roll back: the database has none that $tag does not ship"
    return 0
  fi
  for v in "${DOWN_UNDO[@]}"; do
    down_sql "$DOWN_SOURCE" "$v" | grep -q . \
      || die "migration $v is not in $DOWN_SOURCE's image, so its down section is unknown; nothing was changed. Undo it by hand (after a backup), or roll back without --migrations"
  done
  step "backup before rolling back the migrations (the rehearsal's copy is restored from it)"
  DOWN_DUMP=$("$@")
  rehearse_down "$DOWN_SOURCE" "$DOWN_DUMP" "${DOWN_UNDO[@]}" || status=$?
  if ((status == 2)); then
    die "$DOWN_REPORT, so nothing was changed on the real database; fix that down section, or roll back without --migrations (the schema stays)"
  elif ((status != 0)); then
    die "cannot tell whether the down sections would lose data: $DOWN_REPORT; nothing was changed. Roll back without --migrations (the schema stays)"
  fi
  stake=$(joined <<<"$DOWN_LOSSES")
  step "rehearsal: $DOWN_REPORT; ${stake:-no data lost}"
  if [[ -n "$stake" ]] && ((!accept)); then
    die "rolling back the migrations would lose data: $stake; nothing was changed. Roll back without --migrations (the schema stays), or add --accept-data-loss (the backup $DOWN_DUMP has it)"
  fi
  [[ -z "$stake" ]] || step "data loss accepted (--accept-data-loss): $stake"
}

# After the roll to TAG: what the undone release wrote since the backup, counted again; then each
# down section in its own transaction, newest first. Records and dies on a failure.
apply_down() { # tag current accept_loss
  local tag=$1 current=$2 accept=$3 v stake rolled_back=""
  if ((!accept)) && stake=$(recheck_emptied "$DOWN_EMPTIED") && [[ -n "$stake" ]]; then
    finish_release rollback "$tag" "$current" - "migrations kept: values written since the check"
    die "values were written after the check to what the down sections remove ($(joined <<<"$stake")); $tag serves, the schema stays as it is. Run scripts/rollback.sh --migrations $tag again to check anew"
  fi
  rm -f "$DOWN_EMPTIED"
  for v in "${DOWN_UNDO[@]}"; do
    step "rolling back migration $v (its down section, in one transaction)"
    if ! migration_down "$DOWN_SOURCE" "$v"; then
      finish_release rollback "$tag" "$current" - "migrations rolled back: ${rolled_back:-none}; $v's down section failed"
      die "the down section of migration $v failed, so its transaction was undone: the schema and data are as they were before it ($tag serves; the backup is $DOWN_DUMP). Fix that down section, or leave the schema as it is"
    fi
    rolled_back="${rolled_back:+$rolled_back }$v"
  done
  env_set MIGRATE_TAG "$tag"
  step "rolled back ${#DOWN_UNDO[@]} migration(s): ${DOWN_UNDO[*]}; backup: $DOWN_DUMP"
}
