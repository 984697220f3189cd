# Sourced by lib.sh: a database dump written whole or not at all, for backup.sh and the Swarm target's pre-deploy backup.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# Runs DUMP_COMMAND (pg_dump, however the target reaches the database) into a hidden partial file
# in DIR, mode 640; renames it to DIR/DB-<UTC yyyymmddThhmmssZ>.sql only when pg_dump's completion
# marker is there, so a file with the final name is always whole; then, with KEEP, deletes all but
# the newest KEEP dumps of DB. Prints the dump's path. A failure removes the partial file and dies
# naming HINT (where to look).
# DIR belongs to the deployment's group (setgid, 2770), whoever makes it first: root's first
# backup made it 0700 and root's, and every later backup of the deploy user failed, so did its
# deploys. Dumps are the group's to read, nobody else's.
write_dump() { # dir db keep hint dump_command...
  local dir=$1 db=$2 keep=$3 hint=$4 stamp final partial
  shift 4
  shared_dir "$dir" || die "cannot create $dir; no backup was written"
  [[ -w "$dir" && -x "$dir" ]] \
    || die "cannot write to $dir ($(stat -c '%U:%G %a' "$dir" 2>/dev/null)); no backup was written: as its owner or root, chgrp --reference=$SLIPWAY_DIR $dir && chmod 2770 $dir"
  while :; do
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    final="$dir/$db-$stamp.sql"
    [[ -e "$final" ]] || break
    sleep 1
  done
  partial="$dir/.$db-$stamp.sql.partial"
  step "dumping database $db to $final"
  if ! (umask 027 && "$@" >"$partial"); then
    rm -f "$partial"
    die "pg_dump failed; no backup was written (check: $hint)"
  fi
  if ! dump_complete "$partial"; then
    rm -f "$partial"
    die "the dump ended early (no completion marker); no backup was written"
  fi
  mv "$partial" "$final"
  step "backup complete: $final ($(wc -c <"$final") bytes)"
  if [[ -n "$keep" ]]; then
    local -a old=()
    mapfile -t old < <(find "$dir" -maxdepth 1 -name "$db-*.sql" -type f | sort | head -n "-$keep")
    if ((${#old[@]} > 0)); then
      rm -f "${old[@]}"
      step "pruned ${#old[@]} old backup(s), kept the newest $keep"
    fi
  fi
  echo "$final"
}

# What stops FILE from being restored, in words, or nothing (status 0) when it is a whole dump as
# write_dump keeps them: the checks restore.sh and backup.sh --verify make, before anything else.
dump_problem() { # file
  local form
  [[ -f "$1" && -r "$1" ]] || { echo "backup file '$1' does not exist or is not readable"; return 1; }
  [[ -s "$1" ]] || { echo "backup file '$1' is empty"; return 1; }
  dump_complete "$1" || { echo "'$1' is truncated or not a pg_dump file (no completion marker)"; return 1; }
  form=$(dump_form "$1") || { echo "'$1' is not a dump as backup.sh writes them ($form)"; return 1; }
}

# Whether FILE has the form of a plain pg_dump file (the rule: lib/dump-form.awk). restore.sh
# feeds the file to psql as the database superuser: a file with `\! …` and a completion marker
# passed the old check, and psql would have run the shell command. Prints why not, and fails.
dump_form() { # file
  # awk and psql read up to a NUL and drop the rest of its line: pg_dump never writes one.
  [[ "$(tr -cd '\000' <"$1" | wc -c)" == 0 ]] || { printf 'the file holds NUL bytes, which pg_dump never writes'; return 1; }
  LC_ALL=C awk -f "$SLIPWAY_LIB/dump-form.awk" "$1"
}
