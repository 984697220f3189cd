# The form of a plain pg_dump file, as write_dump keeps them (lib/dump.sh dump_form reads it):
# pg_dump's header; psql meta-commands only where pg_dump writes them (its `\restrict KEY` before
# the first statement, the matching `\unrestrict KEY` last, blank lines only after it); COPY only
# FROM stdin, its data ended by `\.`. Prints why not, at the first line that breaks the form, and
# exits 1; prints nothing and exits 0 for a file in the form.
function bad(why) { printf "line %d %s", NR, why; failed = 1; exit 1 }
NR == 1 && $0 != "--" { bad("is not pg_dump's header") }
NR == 2 && $0 != "-- PostgreSQL database dump" { bad("is not pg_dump's header") }
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
  if (NR < 3) { printf "line %d: the file ends before pg_dump's header does", NR; exit 1 }
  if (in_copy) { printf "line %d: the file ends inside COPY data", NR; exit 1 }
  if (key != "" && !done) { printf "line %d: no \\unrestrict for the \\restrict at the top", NR; exit 1 }
}
