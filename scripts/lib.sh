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
# compose, or swarm once lib-swarm.sh is sourced (the scripts choose it once, from target_kind).
RELEASE_TARGET=compose
# What reconcile observed (lib/reconcile.sh) and when (observation_fresh says whether it holds).
OBSERVED=() OBSERVED_AT=0

log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SCRIPT_NAME:-slipway}" "$*" >&2; }
# A failure the script handled: the host is consistent, so the lock holder's note is cleared.
# Inside $(...), a pipeline or <(...), `exit` ends only that subshell, and the script would go on
# with an empty value; so there die also signals the script's own shell, which exits as die would.
SLIPWAY_PID=$$
# What die said, for result_line: a subshell's die leaves it in DIE_NOTE for the script's shell,
# which takes it when the signal arrives.
DIE_MESSAGE=""
# In the deployment directory, which only its group and root can write: a fixed name in /tmp was
# anyone's to plant a symlink at, and a root die wrote through it.
DIE_NOTE="$SLIPWAY_DIR/.slipway-die.$$"
trap 'DIE_MESSAGE=$(cat "$DIE_NOTE" 2>/dev/null || true); rm -f "$DIE_NOTE"; CLEAN_EXIT=1; exit 1' USR1
die() {
  log "ERROR: $*"
  CLEAN_EXIT=1
  DIE_MESSAGE=$*
  if [[ "$BASHPID" != "$SLIPWAY_PID" ]]; then
    [[ -L "$DIE_NOTE" ]] || printf '%s' "$*" >"$DIE_NOTE" 2>/dev/null || true
    kill -USR1 "$SLIPWAY_PID" 2>/dev/null || true
  fi
  exit 1
}

# The last line deploy.sh and rollback.sh print, for machines (the Dagger module reads it; no
# prose is parsed): `slipway-result {"outcome":"ok"|"failed","action":…,"tag":…,"digest":…,
# "previous":…,"slot":…,"verdict":…,"error":…}` on stderr. RESULT_* are set by record_release;
# the verdict (the guard's and each canary step's, with their figures, "; "-joined) by note_verdict.
RESULT_ACTION="" RESULT_TAG="" RESULT_DIGEST="" RESULT_PREVIOUS="" RESULT_VERDICT=""
note_verdict() { RESULT_VERDICT="${RESULT_VERDICT:+$RESULT_VERDICT; }$1"; }
# A JSON string of TEXT on one line: every control character escaped (JSON admits none raw; an ESC
# in an error message made the module refuse the whole line, and its failure notice was never
# posted; a raw \r hid the line from a terminal).
json_string() { # text
  # Bytes, not characters: in a UTF-8 locale one invalid byte anywhere made the match fail.
  local LC_ALL=C
  local text=${1//\\/\\\\} out="" code
  text=${text//\"/\\\"}
  text=${text//$'\t'/\\t}
  text=${text//$'\n'/\\n}
  text=${text//$'\r'/\\r}
  while [[ "$text" =~ ^([^[:cntrl:]]*)([[:cntrl:]])(.*)$ ]]; do
    printf -v code '\\u%04x' "'${BASH_REMATCH[2]}"
    out+=${BASH_REMATCH[1]}$code
    text=${BASH_REMATCH[3]}
  done
  printf '"%s"' "$out$text"
}
result_line() { # exit_status
  local outcome=ok error=""
  if (($1 != 0)); then
    outcome=failed
    error=${DIE_MESSAGE:-exit $1}
  fi
  printf 'slipway-result {"outcome":"%s","action":%s,"tag":%s,"digest":%s,"previous":%s,"slot":%s,"verdict":%s,"error":%s}\n' \
    "$outcome" "$(json_string "${RESULT_ACTION:-${SCRIPT_NAME:-}}")" "$(json_string "$RESULT_TAG")" "$(json_string "$RESULT_DIGEST")" \
    "$(json_string "$RESULT_PREVIOUS")" "$(json_string "$( [[ -f "$SLIPWAY_DIR/.env" ]] && env_get API_SLOT)")" \
    "$(json_string "$RESULT_VERDICT")" "$(json_string "$error")" >&2
}
elapsed() { echo "$(($(date +%s) - SCRIPT_START))s"; }
step() { log "[$(elapsed)] $*"; }

# A release reference (nothing else reaches a shell): Docker's tag grammar, or a tag pinned to the registry digest of the image it named when
# it was tested (v2@sha256:...), which docker and compose pull and run exactly, whatever the tag
# points at by then. .env's API_TAG holds the reference.
valid_ref() { [[ "$1" =~ $REF_PATTERN ]]; }
require_ref() {
  valid_ref "$1" || die "invalid tag '$1': use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-'), e.g. v1.2.3, optionally pinned as v1.2.3@sha256:<64 hex digits>"
}
ref_tag() { echo "${1%%@*}"; }
ref_digest() { if [[ "$1" == *@* ]]; then echo "${1#*@}"; fi; }
# TAG@DIGEST, or TAG when there is no digest ("" or "-").
pin_ref() { # tag digest
  if [[ "${2:-}" =~ $DIGEST_PATTERN ]]; then echo "$1@$2"; else echo "$1"; fi
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

# Installs the bundle staged in DIR (relative to SLIPWAY_DIR; its entries: BUNDLE_ENTRIES in
# lib/contract.sh) in place, file by file with rename, so every file is whole, old or new; then
# drops the staging directory and any stale ones a cut-off transfer left. Runs under the deploy lock, after the tag validated.
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
  # This script was started from the staged copy, now gone: what it reads later (judge.awk) is
  # the installed one.
  SLIPWAY_LIB="$SLIPWAY_DIR/scripts/lib"
  find "$SLIPWAY_DIR/incoming" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null || true
}

api_image() {
  local image
  image=$(env_get API_IMAGE)
  echo "${image:-slipway/api}"
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

# pg_dump ends a whole dump with this marker (followed, since 15.14/17.6, by \unrestrict).
dump_complete() { tail -n 8 "$1" | grep -q '^-- PostgreSQL database dump complete'; }

# Parses --help/-h the same way in every script.
wants_help() { local a; for a in "$@"; do [[ "$a" == "-h" || "$a" == "--help" ]] && return 0; done; return 1; }

# The rest, one job a file in lib/ (settings, the lock, hooks, history, the release's phases, containers,
# the proxy's route, the roll, repair, the guard and the canary, migrations, and the migration-rollback rehearsal).
SLIPWAY_LIB=$(dirname "${BASH_SOURCE[0]}")/lib
# shellcheck source=scripts/lib/contract.sh
source "$SLIPWAY_LIB/contract.sh"
# shellcheck source=scripts/lib/settings.sh
source "$SLIPWAY_LIB/settings.sh"
# shellcheck source=scripts/lib/lock.sh
source "$SLIPWAY_LIB/lock.sh"
# shellcheck source=scripts/lib/hooks.sh
source "$SLIPWAY_LIB/hooks.sh"
# shellcheck source=scripts/lib/dump.sh
source "$SLIPWAY_LIB/dump.sh"
# shellcheck source=scripts/lib/history.sh
source "$SLIPWAY_LIB/history.sh"
# shellcheck source=scripts/lib/state.sh
source "$SLIPWAY_LIB/state.sh"
# shellcheck source=scripts/lib/containers.sh
source "$SLIPWAY_LIB/containers.sh"
# shellcheck source=scripts/lib/proxy.sh
source "$SLIPWAY_LIB/proxy.sh"
# shellcheck source=scripts/lib/roll.sh
source "$SLIPWAY_LIB/roll.sh"
# shellcheck source=scripts/lib/reconcile.sh
source "$SLIPWAY_LIB/reconcile.sh"
# shellcheck source=scripts/lib/guard.sh
source "$SLIPWAY_LIB/guard.sh"
# shellcheck source=scripts/lib/migrations.sh
source "$SLIPWAY_LIB/migrations.sh"
# shellcheck source=scripts/lib/down-rehearsal.sh
source "$SLIPWAY_LIB/down-rehearsal.sh"
# shellcheck source=scripts/lib/migrations-down.sh
source "$SLIPWAY_LIB/migrations-down.sh"
