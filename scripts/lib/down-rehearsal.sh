# Sourced by lib.sh. Whether undoing a release's migrations (rollback.sh --migrations) would lose
# data, judged by what the database would lose, not by reading SQL: the down sections run on a
# copy restored from a fresh backup, and what holds data is measured before and after them.
# shellcheck shell=bash
# shellcheck disable=SC2034  # DOWN_* are read by rollback.sh

# What holds data in database DB, one line per table (its quoted name) and per column:
#   schema.table<TAB>*<TAB>rows<TAB>
#   schema.table<TAB>column<TAB>non-NULL values<TAB>checksum of the values
# Every ordinary, partitioned and materialized table outside the system schemas, in one scan a
# table (the checksum is a sum of hashtext over each value's text: cheap, order-free). dbmate's
# own schema_migrations is left out: the down sections change it on purpose.
data_snapshot() { # db
  db_psql "$1" -v ON_ERROR_STOP=1 -F $'\t' <<'SQL'
SELECT format(
  'SELECT %L, c, n, h FROM (SELECT count(*) AS "*"%s FROM %I.%I) s, LATERAL (VALUES (%L, s."*", NULL::numeric)%s) v(c, n, h)',
  format('%I.%I', n.nspname, t.relname),
  string_agg(format(', count(%1$I) AS %2$I, coalesce(sum(hashtext(%1$I::text)), 0) AS %3$I', a.attname, 'n_' || a.attnum, 'h_' || a.attnum), '' ORDER BY a.attnum),
  n.nspname, t.relname, '*',
  string_agg(format(', (%L, s.%I, s.%I)', a.attname, 'n_' || a.attnum, 'h_' || a.attnum), '' ORDER BY a.attnum))
FROM pg_class t
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE t.relkind IN ('r', 'p', 'm') AND NOT t.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND NOT (n.nspname = 'public' AND t.relname = 'schema_migrations')
GROUP BY n.nspname, t.relname
\gexec
SQL
}

# What the database holds that data_snapshot cannot count: one line naming it, or nothing.
unmeasured_data() { # db
  db_psql "$1" -c "SELECT concat_ws('; ',
      (SELECT count(*) || ' large object(s)' FROM pg_largeobject_metadata HAVING count(*) > 0),
      (SELECT count(*) || ' foreign table(s)' FROM pg_class WHERE relkind = 'f' HAVING count(*) > 0))" </dev/null
}

# The values a change from snapshot BEFORE to AFTER (files) lost, one line each:
#   "schema.table: N row(s)", "schema.table.column: N value(s)", "schema.table.column: values changed".
# A table or column gone counts as holding nothing. Pure: awk over the two files.
lost_values() { # before after
  awk -F'\t' '
    NR == FNR { after[$1 FS $2] = $3; hash[$1 FS $2] = $4; next }
    {
      key = $1 FS $2; n = $3 + 0; left = (key in after) ? after[key] + 0 : 0
      what = ($2 == "*") ? $1 : $1 "." $2
      unit = ($2 == "*") ? "row(s)" : "value(s)"
      if (left < n) print what ": " (n - left) " " unit
      else if ($2 != "*" && (key in after) && hash[key] != $4) print what ": values changed"
    }' "$2" "$1"
}

# The tables and columns whose values a change from BEFORE to AFTER removed (gone, or fewer):
# what must still hold nothing on the real database right before its down sections run.
emptied() { # before after
  awk -F'\t' 'NR == FNR { after[$1 FS $2] = $3; next } { key = $1 FS $2; if (!(key in after) || after[key] + 0 < $3 + 0) print $1 "\t" $2 }' "$2" "$1"
}

# Room for one copy: the database's size against the free space where Postgres keeps its data,
# which Postgres itself reports (COPY FROM PROGRAM, as the superuser the stack runs it as), so
# it works wherever the database runs. Fails with one line saying how much it needs.
room_for_copy() {
  local size free need
  size=$(db_psql "" -c "SELECT pg_database_size(oid) FROM pg_database WHERE datname = current_database()" </dev/null) || return 1
  # KiB, as df prints them.
  free=$(db_psql "" -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TEMP TABLE slipway_df (line text);
COPY slipway_df FROM PROGRAM 'df -Pk "$PGDATA" | tail -n 1';
SELECT split_part(regexp_replace(line, '\s+', ' ', 'g'), ' ', 4) FROM slipway_df;
SQL
  ) || return 1
  [[ "$size" =~ ^[0-9]+$ && "$free" =~ ^[0-9]+$ ]] || return 1
  need=$((size * 2 / 1024 + 64 * 1024))
  ((free >= need)) || {
    log "the rehearsal needs about $((need / 1024)) MiB free where the database keeps its data (twice its $((size / 1024 / 1024)) MiB, and some), and $((free / 1024)) MiB are free"
    return 1
  }
}

# Runs the down sections of VERSIONS (newest first, from SOURCE's migration files) on a copy of
# DUMP and measures what they lose. Sets DOWN_LOSSES (lines as lost_values prints them),
# DOWN_EMPTIED (file: what they emptied, for recheck_emptied) and DOWN_REPORT. Returns 1 when
# the check could not be made (DOWN_REPORT says why), 2 when a down section failed on the copy.
rehearse_down() { # source_ref dump version...
  local source=$1 dump=$2 db start before after out v status=0
  shift 2
  DOWN_LOSSES="" DOWN_REPORT=""
  DOWN_EMPTIED=$(mktemp)
  db="slipway_rehearsal_$(date -u +%Y%m%d%H%M%S)_$$"
  start=$(date +%s)
  room_for_copy || { DOWN_REPORT="there is no room for a copy of the database"; return 1; }
  step "rehearsing the down sections of $* on a copy of the database ($db, from $(basename "$dump"))"
  db_psql postgres -c "CREATE DATABASE $db" >/dev/null </dev/null || { DOWN_REPORT="the copy could not be created"; return 1; }
  before=$(mktemp) after=$(mktemp) out=$(mktemp)
  if ! db_psql "$db" -q -v ON_ERROR_STOP=1 --single-transaction <"$dump" >/dev/null 2>"$out"; then
    DOWN_REPORT="the backup did not restore into the copy: $(tail -n 2 "$out" | tr '\n' ' ')"
    status=1
  elif step "copy restored: measuring what holds data there, then its down sections" \
    && DOWN_REPORT=$(unmeasured_data "$db") && [[ -n "$DOWN_REPORT" ]]; then
    DOWN_REPORT="the database holds data this check cannot count ($DOWN_REPORT)"
    status=1
  elif ! data_snapshot "$db" 2>"$out" | LC_ALL=C sort >"$before" || [[ -s "$out" ]]; then
    DOWN_REPORT="the data could not be measured: $(head -n 2 "$out" | tr '\n' ' ')"
    status=1
  else
    for v in "$@"; do
      if ! POSTGRES_DB=$db dbmate_down "$source" >"$out" 2>&1 || ! grep -q "Rolling back: ${v}_" "$out"; then
        DOWN_REPORT="the down section of migration $v failed on the copy: $(grep -iE 'error|fatal' "$out" | tail -n 1)"
        status=2
        break
      fi
    done
    if ((status == 0)); then
      if ! data_snapshot "$db" 2>"$out" | LC_ALL=C sort >"$after" || [[ -s "$out" ]]; then
        DOWN_REPORT="the data could not be measured after the down sections: $(head -n 2 "$out" | tr '\n' ' ')"
        status=1
      else
        DOWN_LOSSES=$(lost_values "$before" "$after")
        emptied "$before" "$after" >"$DOWN_EMPTIED"
        DOWN_REPORT="$# down section(s) in $(($(date +%s) - start))s on a copy of the data"
      fi
    fi
  fi
  rm -f "$before" "$after" "$out"
  db_psql postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null </dev/null \
    || log "warning: could not drop the rehearsal database $db; the next command drops it"
  return "$status"
}

# Of what the rehearsal saw emptied (file), what the real database holds now: values written
# after the backup the copy came from (the undone release served meanwhile). One line each.
recheck_emptied() { # emptied_file
  local table col n
  while IFS=$'\t' read -r table col; do
    # TABLE is quoted as Postgres quotes it (data_snapshot); COL goes in as a psql variable.
    n=$(db_psql "" -v tbl="$table" -v col="$col" <<'SQL'
SELECT CASE
  WHEN to_regclass(:'tbl') IS NULL THEN 0
  WHEN :'col' = '*' THEN (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', :'tbl'), false, true, '')))[1]::text::bigint
  WHEN NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(:'tbl') AND attname = :'col' AND NOT attisdropped) THEN 0
  ELSE (xpath('/row/n/text()', query_to_xml(format('SELECT count(%I) AS n FROM %s', :'col', :'tbl'), false, true, '')))[1]::text::bigint
END
SQL
    ) || { echo "$table ($col): could not be counted"; continue; }
    ((n == 0)) || if [[ "$col" == "*" ]]; then echo "$table: $n row(s)"; else echo "$table.$col: $n value(s)"; fi
  done <"$1"
}
