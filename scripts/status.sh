#!/usr/bin/env bash
set -euo pipefail
SCRIPT_NAME=status
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/status.sh [--releases N]

Prints what on-call needs first: the release in .env, the containers and their health,
/health as the proxy serves it, the deploy lock, and the last N releases (default 5).
USAGE
}

main() {
  local n=5 holder
  wants_help "$@" && { usage; return 0; }
  while (($# > 0)); do
    case "$1" in
      --releases) (($# >= 2)) || die "--releases needs a number"; n=$2; shift ;;
      *) die "unknown argument '$1'; see --help" ;;
    esac
    shift
  done
  require_positive_int --releases "$n"
  require_project
  echo "release:   $(api_image):$(env_get API_TAG)"
  local slot
  slot=$(active_slot)
  echo "slot:      $slot (the proxy sends traffic to /run/slipway/api-$slot.sock)"
  echo "health:    $(proxy_health 2>/dev/null || echo 'UNAVAILABLE (proxy not answering /health)')"
  if [[ -f "$LOCK_FILE" ]] && ! flock -n "$LOCK_FILE" true; then
    holder=$(cat "$LOCK_FILE")
    echo "lock:      held ($holder)"
  else
    echo "lock:      free"
  fi
  echo
  compose ps -a --format 'table {{.Service}}\t{{.Name}}\t{{.Image}}\t{{.Status}}'
  echo
  echo "last $n releases ($HISTORY_FILE):"
  local releases
  releases=$(history_entries | tail -n "$n")
  if [[ -z "$releases" ]]; then
    echo "  (none recorded)"
  else
    # awk, not column(1): minimal hosts may lack bsdextrautils.
    awk -F'\t' '{ printf "  %-20s  %-8s  %-40s  %-19s  %-12s  %s\n", $1, $2, $3, substr($4, 1, 19), $5, $6 }' <<<"$releases"
  fi
}

main "$@"
