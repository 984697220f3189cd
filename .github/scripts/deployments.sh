#!/usr/bin/env bash
# The release gate's reader of GitHub's Deployments API (through `gh api`), for deploy.yml. What a
# deployment of ours (DEPLOY_TASK) says is decided by its newest *decisive* status (one of
# DECISIVE_STATES). `inactive` is not one: GitHub adds it to earlier deployments of a
# non-production environment when a newer one succeeds (auto_inactive), which says nothing about
# whether that release was good. A rollback marks the deployment it undid (ROLLED_BACK_STATE,
# ROLLED_BACK_PREFIX; `dagger call rollback --github-token …` is the one writer of that mark), so
# the gate refuses its digest. Those rules are scripts/lib/contract.sh's, which the module reads.
#
#   deployments.sh passed-staging SHA        # prints the digest of SHA that passed staging, or fails
#   deployments.sh current ENV [EXCEPT_SHA]  # prints "id sha digest" of what ENV runs (nothing if none)
# Needs REPO (owner/name) and a GH_TOKEN that may read deployments.
set -euo pipefail
# A failed read inside $(...) stops the command too (bash does not pass -e into substitutions).
shopt -s inherit_errexit

here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=.github/scripts/gh.sh
source "$here/gh.sh"
# The gate's rules, shared with the module that marks rollbacks: DEPLOY_TASK, DECISIVE_STATES,
# ROLLED_BACK_STATE, ROLLED_BACK_PREFIX.
# shellcheck source=scripts/lib/contract.sh
source "$here/../../scripts/lib/contract.sh"
# jq's test for a decisive state, and bash's pattern for one.
DECISIVE_JQ=$(printf '.state == "%s" or ' "${DECISIVE_STATES[@]}")
DECISIVE_JQ=${DECISIVE_JQ% or }
DECISIVE_RE=$(IFS='|'; echo "^(${DECISIVE_STATES[*]})"$'\t')

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
fail() { echo "::error::$*" >&2; exit 1; }
valid_sha() { [[ "$1" =~ ^[0-9a-f]{40}$ ]]; }
valid_env() { [[ "$1" =~ ^[a-z][a-z0-9_-]{0,39}$ ]]; }

# Our deployments of ENV (of SHA, if given), newest first: "id sha digest". Read whole before
# anything is decided, each line checked for its form: a failed read fails the command, never
# passes as a list (gh prints an error body on stdout).
list() { # env [sha]
  local query="environment=$1&task=$DEPLOY_TASK&per_page=100" out line
  [[ -z "${2:-}" ]] || query+="&sha=$2"
  out=$(gh_api --paginate "repos/$REPO/deployments?$query" \
    --jq '.[] | "\(.id) \(.sha) \(.payload.digest // "-")"') || fail "cannot read the $1 deployments of $REPO"
  while IFS= read -r line; do
    [[ -z "$line" || "$line" =~ ^[0-9]+\ [0-9a-f]{40}\ (sha256:[0-9a-f]{64}|-)$ ]] || fail "unexpected deployment record from GitHub: '${line:0:120}'"
  done <<<"$out"
  printf '%s\n' "$out"
}

# A deployment's newest decisive status: "state<TAB>created_at<TAB>description", or "none".
verdict() { # id
  local out
  out=$(gh_api "repos/$REPO/deployments/$1/statuses?per_page=100" \
    --jq "[.[] | select($DECISIVE_JQ)][0]"'
      | if . == null then "none" else "\(.state)\t\(.created_at)\t\(.description // "")" end') || fail "cannot read the statuses of deployment $1"
  [[ "$out" == none || "$out" =~ $DECISIVE_RE ]] || fail "unexpected status of deployment $1 from GitHub: '${out:0:120}'"
  printf '%s\n' "$out"
}

# The newest decisive status across ENV's deployments of SHA: "state<TAB>at<TAB>digest<TAB>note", or
# nothing. The note last: a tab is whitespace to read, so an empty field before another would vanish.
newest_verdict() { # env sha
  local id dsha digest v state at note best=""  best_at="" deployments
  deployments=$(list "$1" "$2")
  while read -r id dsha digest; do
    [[ -n "$id" ]] || continue
    v=$(verdict "$id")
    [[ "$v" != none ]] || continue
    IFS=$'\t' read -r state at note <<<"$v"
    if [[ -z "$best_at" || "$at" > "$best_at" ]]; then best_at=$at best=$state$'\t'$at$'\t'$digest$'\t'$note; fi
  done <<<"$deployments"
  [[ -z "$best" ]] || printf '%s\n' "$best"
}

rolled_back() { [[ "$1" == "$ROLLED_BACK_STATE" && "$2" == "$ROLLED_BACK_PREFIX"* ]]; }

passed_staging() { # sha
  local sha=$1 best best_state="" best_at="" best_note="" best_digest="" prod prod_state prod_at prod_note _
  valid_sha "$sha" || fail "invalid commit SHA '$sha'"
  # The newest decisive status across every staging deployment of this commit decides.
  best=$(newest_verdict staging "$sha")
  [[ -z "$best" ]] || IFS=$'\t' read -r best_state best_at best_digest best_note <<<"$best"
  # A rollback closes the gate wherever it happened: production rolled back is refused too.
  prod=$(newest_verdict production "$sha")
  if [[ -n "$prod" ]]; then
    IFS=$'\t' read -r prod_state prod_at _ prod_note <<<"$prod"
    if rolled_back "$prod_state" "$prod_note"; then
      fail "$sha was rolled back on production ($prod_note, $prod_at); production takes only what passed staging and stayed: deploy a fixed commit to staging first"
    fi
  fi
  case "$best_state" in
    success) echo "$best_digest" ;;
    failure | error)
      if rolled_back "$best_state" "$best_note"; then
        fail "$sha was rolled back on staging ($best_note, $best_at); production takes only what passed staging and stayed: deploy a fixed commit to staging first"
      fi
      fail "the newest staging deploy of $sha ended in $best_state ($best_at${best_note:+: $best_note}); let staging deploy it again, or promote another commit"
      ;;
    *) fail "$sha has not passed staging (no staging deploy of it reached success)$(why_no_record "$sha"); let staging deploy it first" ;;
  esac
}

# Why a commit on main may have no staging deploy at all: its ci run was superseded.
why_no_record() { # sha
  local conclusion
  conclusion=$(gh_api "repos/$REPO/actions/runs?head_sha=$1&event=push&per_page=20" \
    --jq '[.workflow_runs[] | select(.name == "ci")][0].conclusion // ""' 2>/dev/null) || conclusion=""
  [[ "$conclusion" =~ ^[a-z_]*$ ]] || conclusion=""
  if [[ "$conclusion" == cancelled ]]; then
    echo ": its ci run was cancelled, superseded by a newer push to main (GitHub keeps one pending run per concurrency group), so it has no release record; re-run ci for it, or promote the newer commit"
  elif [[ -n "$conclusion" && "$conclusion" != success ]]; then
    echo ": its ci run ended '$conclusion', so it was never published"
  fi
}

# What ENV runs: the newest deployment whose decisive status is success.
current() { # env [except_sha]
  local env=$1 except=${2:-} id dsha digest v deployments
  deployments=$(list "$env")
  while read -r id dsha digest; do
    [[ -n "$id" && "$dsha" != "$except" ]] || continue
    v=$(verdict "$id")
    if [[ "$v" == success$'\t'* ]]; then
      echo "$id $dsha $digest"
      return 0
    fi
  done <<<"$deployments"
}

main() {
  [[ "${1:-}" == -h || "${1:-}" == --help ]] || [[ -n "${REPO:-}" ]] || fail "REPO is not set (owner/name)"
  case "${1:-}" in
    passed-staging) passed_staging "${2:?SHA}" ;;
    current) valid_env "${2:-}" || fail "invalid environment '${2:-}'"; current "$2" "${3:-}" ;;
    -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
