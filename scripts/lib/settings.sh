# Sourced by lib.sh: the settings .env may hold: each number and duration checked (check_env), and the free disk a release needs.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# A numeric setting from .env (the guard's, the migration retries), or its default; refuses, in
# one line naming the key, what its kind in ENV_VALUES does not admit (valid_value: one grammar
# for check_env and every reader, decimal only).
env_number() { # KEY default
  local value kind
  value=$(env_get "$1")
  value=${value:-$2}
  kind=$(value_kind "$1")
  valid_value "${kind:-number}" "$value" || die "$1 in .env must be $(kind_words "${kind:-number}"), e.g. $1=$2, got '$value'"
  echo "$value"
}

# KEY's kind in ENV_VALUES (int, number, …), or nothing for a key it does not list.
value_kind() { # key
  local spec key kind example
  for spec in $ENV_VALUES; do
    IFS=: read -r key kind example <<<"$spec"
    [[ "$key" != "$1" ]] || { echo "$kind"; return 0; }
  done
}

# Every number and duration .env may set, as KEY:kind:example. Checked by check_env before a
# command changes anything, so a malformed value fails it in one line, naming the key.
ENV_VALUES="GUARD_SECONDS:window:30 GUARD_SAMPLE_SECONDS:number:3 GUARD_BAD_SAMPLES:int:2
  GUARD_MIN_SAMPLE_REQUESTS:int:5 GUARD_MIN_REQUESTS:int:20 GUARD_MAX_5XX_PERCENT:number:1
  GUARD_P99_SECONDS:number:1 GUARD_P99_FACTOR:number:3 GUARD_WINDOW_REQUESTS:int:100 GUARD_MIN_CLIENTS:int:2 HOOK_TIMEOUT:seconds:60 MIGRATION_LOCK_TRIES:int:3
  KPI_P99_SECONDS:number:1 KPI_MAX_ERROR_PERCENT:number:0.1 KPI_MIN_AVAILABILITY_PERCENT:number:99.9
  API_REPLICAS:count:2 HTTP_PORT:port:8000 SHUTDOWN_GRACE_MS:int:20000 MIN_FREE_MB:int:1024
  MIGRATION_LOCK_TIMEOUT:pgduration:1s MIGRATION_STATEMENT_TIMEOUT:pgduration:15min API_START_PERIOD:duration:30s"

# What KIND admits, for the one-line errors.
kind_words() { # kind
  case "$1" in
    int) echo "a whole number in decimal, no leading zero" ;;
    number) echo "a number in decimal, no leading zero, sign or exponent" ;;
    count) echo "a count from 1 to 9999" ;;
    port) echo "a port from 1 to 65535" ;;
    seconds) echo "a number of seconds from 1 to 3600" ;;
    window) echo "a number of seconds from 0, which is off, to $GUARD_SECONDS_MAX" ;;
    pgduration) echo "a Postgres duration such as 1s or 15min" ;;
    duration) echo "a duration such as 30s or 1m30s" ;;
  esac
}

# Decimal only: no leading zero (bash reads 08 as bad octal, so `((guard > 0))` on GUARD_SECONDS=08
# failed and skipped the guard), no sign, exponent or space.
valid_value() { # kind value
  case "$1" in
    int) [[ "$2" =~ ^(0|[1-9][0-9]{0,8})$ ]] ;;
    count) [[ "$2" =~ ^[1-9][0-9]{0,3}$ ]] ;;
    # A limit that must end: 0 would be none at all (timeout 0 never fires), an hour is the most.
    seconds) [[ "$2" =~ ^[1-9][0-9]{0,3}$ ]] && ((10#$2 <= 3600)) ;;
    # The guard's window: 0 (off) to the contract's GUARD_SECONDS_MAX, as --guard takes it.
    window) [[ "$2" =~ ^(0|[1-9][0-9]{0,3})$ ]] && ((10#$2 <= GUARD_SECONDS_MAX)) ;;
    number) [[ "$2" =~ ^(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?$ ]] ;;
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
      || die "$key in .env is '$value', which is not a valid $kind ($(kind_words "$kind")); use e.g. $key=$example"
  done
  # keep_old reads it only after the switch, too late to refuse a bad value.
  keep_previous >/dev/null
}
