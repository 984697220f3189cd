# Sourced by the workflows' steps and deployments.sh: `gh api` as its callers need it.
# shellcheck shell=bash
#
# When a call fails, gh prints GitHub's error body on *stdout*, --jq or not (cli/cli
# pkg/cmd/api processResponse; cli/cli#5209), so `x=$(gh api … --jq …) || x=0` reads
# {"message":"Not Found",…} as the answer. gh_api prints gh's output only when the call
# succeeded; else one ::error:: line naming the call and GitHub's message, and status 1.
gh_api() { # gh api arguments...
  local out err arg endpoint=""
  for arg in "$@"; do [[ -n "$endpoint" || "$arg" == -* ]] || endpoint=$arg; done
  err=$(mktemp)
  if out=$(gh api "$@" 2>"$err"); then
    rm -f "$err"
    [[ -z "$out" ]] || printf '%s\n' "$out"
    return 0
  fi
  echo "::error::gh api ${endpoint%%\?*} failed: $(tr -d '\r' <"$err" | tr '\n' ' ' | head -c 300)" >&2
  rm -f "$err"
  return 1
}

