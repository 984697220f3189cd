# Sourced by lib.sh: the proxy log's figures per release slot, and its stream judged (judge.awk): one judge for the post-switch guard and the canary steps.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# --- the post-switch guard ---------------------------------------------------------
# The proxy's own view of what users get: nginx's JSON access log (its stdout, kept by Docker),
# read per time window. /health traffic (probes, the roll's own checks) does not count.
now_precise() { date +%s.%N; }

# "requests 5xx p99 p50 p95 top top_client" (seconds) of the requests the proxy sent to SLOT
# between two instants (unix seconds, or what `docker logs --since` takes); the slot a request
# went to is the last address nginx tried; TOP is how many of the 5xx went to the one client that
# got the most (TOP_CLIENT, "-" with none), so on-call can tell an attack from an outage. Prints
# "0 0 0 0 0 0 -" with no request. The one parser of the proxy's log: the guard and status.sh --kpi read it.
proxy_figures() { # slot since until
  docker logs --since "$2" --until "$3" "$(proxy_container)" 2>/dev/null | awk -v sock="/api-$1.sock" '
    /^\{/ && index($0, "\"uri\":\"/health") == 0 && match($0, /"upstream":"[^"]*"/) {
      n = split(substr($0, RSTART + 12, RLENGTH - 13), tried, ", ")
      if (n == 0 || substr(tried[n], length(tried[n]) - length(sock) + 1) != sock) next
      match($0, /"status":[0-9]+/); status = substr($0, RSTART + 9, RLENGTH - 9)
      match($0, /"duration":[0-9.]+/); duration = substr($0, RSTART + 11, RLENGTH - 11)
      client = match($0, /"client":"[^"]*"/) ? substr($0, RSTART + 10, RLENGTH - 11) : ""
      print status, duration, (client == "" ? "-" : client)
    }' | sort -k2,2n | awk '
    { rt[NR] = $2; if ($1 + 0 >= 500) { bad++; if ($3 != "-" && ++by[$3] > top) { top = by[$3]; who = $3 } } }
    function rank(p) { return rt[int(NR * p + 0.999999)] }
    END { if (NR == 0) { print "0 0 0 0 0 0 -"; exit } print NR, bad + 0, rank(0.99), rank(0.50), rank(0.95), top + 0, (who == "" ? "-" : who) }'
}

# The thresholds the guard and the canary steps judge samples by, from .env, on one line:
# GUARD_SAMPLE_SECONDS GUARD_MAX_5XX_PERCENT GUARD_P99_SECONDS GUARD_P99_FACTOR
# GUARD_BAD_SAMPLES GUARD_MIN_SAMPLE_REQUESTS. Fails (env_number named the bad value) on a
# malformed one; callers exit then, since they run where `set -e` does not (`... || revert`).
guard_thresholds() {
  local pair value
  for pair in GUARD_SAMPLE_SECONDS:3 GUARD_MAX_5XX_PERCENT:1 GUARD_P99_SECONDS:1 GUARD_P99_FACTOR:3 GUARD_BAD_SAMPLES:2 GUARD_MIN_SAMPLE_REQUESTS:5; do
    value=$(env_number "${pair%:*}" "${pair#*:}") || return 1
    printf '%s ' "$value"
  done
  echo
}

# The one judge of the post-switch guard and the canary steps: the proxy's access log followed as
# a stream from START, judged request by request (lib/judge.awk has the rule), for SECONDS.
# Trips within a handful of requests of a release failing them: WATCH_VERDICT says why (with
# WHERE, " at 10 %", and beside a canary what the stable release got), returns 1. Fewer than MIN
# requests in the whole window is too little to judge: the guard (no BASE slot) passes and says
# so; a canary step (a BASE) runs on, up to SECONDS again, then fails closed, and so it does when
# the proxy's log cannot be followed. LABEL starts the progress lines ("guard", "canary 10 %").
watch_slot() { # label where slot base_slot|- seconds start baseline_p99 min
  local label=$1 where=$2 slot=$3 base_slot=$4 seconds=$5 start=$6 baseline=${7:-0} min=${8%.*}
  local thresholds every max5xx p99min factor bad_limit min_sample window min_clients proxy follow_fd line verdict="" kind rest count errors single elapsed
  thresholds=$(guard_thresholds) || exit 1
  read -r every max5xx p99min factor bad_limit min_sample <<<"$thresholds"
  window=$(env_number GUARD_WINDOW_REQUESTS 100) || exit 1
  # How many clients must see a 5xx before it counts against the release (judge.awk, by client).
  min_clients=$(env_number GUARD_MIN_CLIENTS 2) || exit 1
  # A window smaller than the least sample could never judge.
  ((${window%.*} >= ${min_sample%.*} && ${window%.*} > 0)) || window=$((${min_sample%.*} > 0 ? ${min_sample%.*} : 1))
  [[ -r "$SLIPWAY_LIB/judge.awk" ]] || die "cannot read $SLIPWAY_LIB/judge.awk (the guard's judge): reinstall the bundle (dagger call deploy ships it)"
  proxy=$(proxy_container)
  # Bounded, whatever happens to this script: twice the window, and a margin.
  exec {follow_fd}< <(follow_proxy_log "$proxy" "$start" "$((2 * ${seconds%.*} + 30))")
  while IFS= read -r line; do
    read -r kind rest <<<"$line"
    case "$kind" in
      STEP | WAIT) step "  $label: $rest" ;;
      *) verdict=$line ;;
    esac
  done < <(judge_stream -f "$SLIPWAY_LIB/judge.awk" -v sock="/api-$slot.sock" -v base="$([[ "$base_slot" == - ]] || echo "/api-$base_slot.sock")" \
    -v start="$start" -v seconds="$seconds" -v every="$every" -v max5xx="$max5xx" -v p99min="$p99min" -v factor="$factor" \
    -v baseline="$baseline" -v min_sample="${min_sample%.*}" -v min_total="$min" -v window="${window%.*}" -v bad="${bad_limit%.*}" -v min_clients="${min_clients%.*}" <&"$follow_fd")
  # The follower sees its reader gone at its next write, within 0.2 s, and stops.
  exec {follow_fd}<&-
  read -r kind rest <<<"$verdict"
  case "$kind" in
    PASS)
      read -r count errors single <<<"$rest"
      # 5xx that one client alone got did not count (judge.awk): on-call sees there were some.
      if ((${single:-0} > 0 && ${min_clients%.*} > 1)); then errors="$errors 5xx, at most ${single} from one client"; else errors="$errors 5xx"; fi
      if ((count < min)); then
        step "$label: passed, but only $count requests reached the new release (< GUARD_MIN_REQUESTS $min): too little traffic to judge"
        note_verdict "$label: passed unjudged ($count requests < $min)"
      else
        step "$label: passed ($count requests, $errors)"
        note_verdict "$label: passed ($count requests, $errors)"
      fi
      return 0
      ;;
    TRIP)
      rest=${verdict#TRIP }
      if [[ "$rest" == *$'\t'* ]]; then WATCH_VERDICT="${rest%%$'\t'*}$where ${rest#*$'\t'}"; else WATCH_VERDICT="$rest$where"; fi
      ;;
    STARVED)
      read -r count elapsed <<<"$rest"
      WATCH_VERDICT="too little traffic to judge: $count requests reached the canary in ${elapsed}s$where (< --canary-min-requests $min)"
      ;;
    *)
      # The log could not be followed (another logging driver): nothing can be judged. The guard
      # keeps the release and says so; a canary is not promoted.
      if [[ "$base_slot" == - ]]; then
        log "$label: cannot follow the proxy's access log (docker logs); passing unjudged"
        note_verdict "$label: passed unjudged (the proxy's log could not be followed)"
        return 0
      fi
      WATCH_VERDICT="cannot follow the proxy's access log (docker logs)$where"
      ;;
  esac
  note_verdict "$label: failed: $WATCH_VERDICT"
  return 1
}

# awk reading a stream line by line as it comes. mawk (Debian's and Ubuntu's awk) reads a pipe a
# 4 KiB block at a time: on a quiet host the judge saw the clock's ticks 30 s late, so a 1 s canary
# step took 33 s and a trip waited for the buffer. gawk and busybox awk read what has come.
judge_stream() { # awk arguments...
  if awk -W version 2>/dev/null | grep -q '^mawk'; then awk -W interactive "$@"; else awk "$@"; fi
}

# The proxy's access log from SINCE on, as docker logs -f writes it, with a "TICK <unix time>"
# line every 0.2 s between (judge.awk's clock), for at most SECONDS. Ends once its reader has
# gone (the next write fails) or the follow ends; the follow is then stopped too.
# --since alone makes Docker decode the whole log (up to 50 MB, docker-compose.prod.yml) before
# the first line, while the clock already ticks: a 1 s canary step saw none of its requests on a
# busy host. --tail reads from the end; SINCE is at most seconds back, far fewer lines than this.
FOLLOW_TAIL_LINES=10000
follow_proxy_log() { # container since seconds
  local logs
  timeout "$3" docker logs -f --since "$2" --tail "$FOLLOW_TAIL_LINES" "$1" 2>/dev/null &
  logs=$!
  while kill -0 "$logs" 2>/dev/null && printf 'TICK %s\n' "$EPOCHREALTIME" 2>/dev/null; do sleep 0.2; done
  kill "$logs" 2>/dev/null || true
}
