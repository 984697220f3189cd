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

# Whether FILE has the form of a plain pg_dump file, as write_dump keeps them: pg_dump's header;
# psql meta-commands only where pg_dump writes them (its `\restrict KEY` before the first
# statement, the matching `\unrestrict KEY` last); COPY only FROM stdin, its data ended by `\.`.
# restore.sh feeds the file to psql as the database superuser: a file with `\! …` and a
# completion marker passed the old check, and psql would have run the shell command. Prints why
# not, and fails, on the first line that breaks the form.
dump_form() { # file
  # awk and psql read up to a NUL and drop the rest of its line: pg_dump never writes one.
  [[ "$(tr -cd '\000' <"$1" | wc -c)" == 0 ]] || { printf 'the file holds NUL bytes, which pg_dump never writes'; return 1; }
  LC_ALL=C awk '
    function bad(why) { printf "line %d %s", NR, why; failed = 1; exit 1 }
    NR == 1 && $0 != "--" { bad("is not pg_dump'"'"'s header") }
    NR == 2 && $0 != "-- PostgreSQL database dump" { bad("is not pg_dump'"'"'s header") }
    in_copy { if ($0 == "\\.") in_copy = 0; next }
    done && $0 != "" { bad("comes after \\unrestrict, where pg_dump writes nothing") }
    /^COPY / {
      if ($0 !~ /^COPY .* FROM stdin;$/ || $0 ~ / PROGRAM /) bad("is a COPY that pg_dump never writes (only COPY … FROM stdin)")
      in_copy = 1; sql = 1; next
    }
    /^\\/ {
      if (key == "" && !sql && $0 ~ /^\\restrict [A-Za-z0-9]+$/) { key = substr($0, 11); next }
      if (key != "" && $0 == "\\unrestrict " key) { done = 1; next }
      bad("is a psql meta-command (" substr($0, 1, 12) "…) where pg_dump writes none")
    }
    $0 !~ /^(--.*)?$/ { sql = 1 }
    END {
      if (failed) exit 1
      if (NR < 3) { printf "line %d: the file ends before pg_dump'"'"'s header does", NR; exit 1 }
      if (in_copy) { printf "line %d: the file ends inside COPY data", NR; exit 1 }
      if (key != "" && !done) { printf "line %d: no \\unrestrict for the \\restrict at the top", NR; exit 1 }
    }' "$1"
}
