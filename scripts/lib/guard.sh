# Sourced by lib.sh: the proxy log's figures per release slot, sampled and judged: one verdict for the post-switch guard and the canary steps.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh

# --- the post-switch guard ---------------------------------------------------------
# The proxy's own view of what users get: nginx's JSON access log (its stdout, kept by Docker),
# read per time window. /health traffic (probes, the roll's own checks) does not count.
now_precise() { date +%s.%N; }

# "requests 5xx p99 p50 p95" (seconds) of the requests the proxy sent to SLOT between two
# instants (unix seconds, or what `docker logs --since` takes); the slot a request went to is the
# last address nginx tried. Prints "0 0 0 0 0" with no request. The one parser of the proxy's
# log: the guard and status.sh --kpi read it.
proxy_figures() { # slot since until
  docker logs --since "$2" --until "$3" "$(proxy_container)" 2>/dev/null | awk -v sock="/api-$1.sock" '
    /^\{/ && index($0, "\"uri\":\"/health") == 0 && match($0, /"upstream":"[^"]*"/) {
      n = split(substr($0, RSTART + 12, RLENGTH - 13), tried, ", ")
      if (n == 0 || substr(tried[n], length(tried[n]) - length(sock) + 1) != sock) next
      match($0, /"status":[0-9]+/); status = substr($0, RSTART + 9, RLENGTH - 9)
      match($0, /"duration":[0-9.]+/); print status, substr($0, RSTART + 11, RLENGTH - 11)
    }' | sort -k2,2n | awk '
    { rt[NR] = $2; if ($1 + 0 >= 500) bad++ }
    function rank(p) { return rt[int(NR * p + 0.999999)] }
    END { if (NR == 0) { print "0 0 0 0 0"; exit } print NR, bad + 0, rank(0.99), rank(0.50), rank(0.95) }'
}

# One sample's verdict, "ok: ..." or "BAD: <what tripped>": COUNT requests, ERRORS of them 5xx,
# their p99 (seconds), against a 5xx percent and a p99 limit. Fewer than MIN requests is too
# few to judge, which is ok. The guard and the canary judge with it.
sample_verdict() { # count errors p99 max_5xx_percent p99_limit min
  awk -v n="$1" -v e="$2" -v p="$3" -v m="$4" -v l="$5" -v min="$6" 'BEGIN {
    r = n ? 100 * e / n : 0
    if (n < min) { printf "ok: %d requests, too few to judge", n; exit }
    if (r > m) { printf "BAD: 5xx %.1f %% > %s %% (%d of %d requests)", r, m, e, n; exit }
    if (p > l) { printf "BAD: p99 %.3f s > %.3f s (%d requests)", p, l, n; exit }
    printf "ok: %d requests, 5xx %.1f %%, p99 %.3f s", n, r, p }'
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

# The one sampler of the post-switch guard and the canary steps: what the proxy sent to SLOT, one
# sample every GUARD_SAMPLE_SECONDS for SECONDS from START. A sample with at least
# GUARD_MIN_SAMPLE_REQUESTS requests is bad when its 5xx share exceeds GUARD_MAX_5XX_PERCENT
# (plus, against a BASE slot, that slot's own share in the same sample, so a fault both releases
# share, the database, is not the new one's) or its p99 exceeds max(GUARD_P99_SECONDS,
# GUARD_P99_FACTOR x the base p99: the BASE slot's in the same sample, else BASELINE_P99).
# GUARD_BAD_SAMPLES bad samples trip it: WATCH_VERDICT says why (with WHERE, " at 10 %"), returns 1.
# Fewer than MIN requests in the whole window is too little to judge: the guard (no BASE) passes
# and says so; a canary step (a BASE) runs on, up to SECONDS again, then fails closed, and so it
# does when the proxy's log cannot be read. LABEL starts the progress lines ("guard", "canary 10 %").
watch_slot() { # label where slot base_slot|- seconds start baseline_p99 min
  local label=$1 where=$2 slot=$3 base_slot=$4 seconds=$5 start=$6 baseline=${7:-0} min=${8%.*} from=$6
  local thresholds every max5xx p99min factor bad_limit min_sample now end deadline fig base limits verdict
  local count errors p99 b_count b_errors b_p99 stable="" bad=0 total=0 total_errors=0 waiting=0
  thresholds=$(guard_thresholds) || exit 1
  read -r every max5xx p99min factor bad_limit min_sample <<<"$thresholds"
  end=$(awk -v f="$start" -v s="$seconds" 'BEGIN { printf "%.3f", f + s }')
  deadline=$(awk -v f="$start" -v s="$seconds" 'BEGIN { printf "%.3f", f + 2 * s }')
  while :; do
    sleep "$every"
    now=$(now_precise)
    if ! fig=$(proxy_figures "$slot" "$from" "$now") || { [[ "$base_slot" != - ]] && ! base=$(proxy_figures "$base_slot" "$from" "$now"); }; then
      # Without the proxy's log (another logging driver) nothing can be judged: the guard keeps
      # the release and says so; a canary is not promoted.
      [[ "$base_slot" != - ]] || { log "$label: cannot read the proxy's access log (docker logs); passing unjudged"; return 0; }
      WATCH_VERDICT="cannot read the proxy's access log (docker logs)$where"
      return 1
    fi
    read -r count errors p99 _ <<<"$fig"
    total=$((total + count)) total_errors=$((total_errors + errors))
    if [[ "$base_slot" == - ]]; then
      limits=$(awk -v m="$max5xx" -v pm="$p99min" -v f="$factor" -v p="$baseline" 'BEGIN { l = f * p; if (pm > l) l = pm; printf "%g %g", m, l }')
    else
      read -r b_count b_errors b_p99 _ <<<"$base"
      stable=" (stable: $b_count requests, $b_errors 5xx"
      limits=$(awk -v m="$max5xx" -v n="$b_count" -v e="$b_errors" -v pm="$p99min" -v f="$factor" -v p="$b_p99" 'BEGIN {
        l = f * p; if (pm > l) l = pm
        printf "%g %g", m + (n ? 100 * e / n : 0), l }')
    fi
    verdict=$(sample_verdict "$count" "$errors" "$p99" "${limits% *}" "${limits#* }" "$min_sample")
    if [[ "$verdict" == BAD:* ]] && ((++bad >= ${bad_limit%.*})); then
      # Nothing before the switch back, which writes the phase and .env first (see guard_revert).
      WATCH_VERDICT="${verdict#BAD: }$where${stable:+$stable)}"
      return 1
    fi
    step "  $label: $(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.0fs", a - b }') of ${seconds}s: $verdict${stable:+$stable, p99 ${b_p99} s)}"
    from=$now
    awk -v a="$now" -v b="$end" 'BEGIN { exit !(a >= b) }' || continue
    ((total < min)) || break
    [[ "$base_slot" != - ]] || break
    if awk -v a="$now" -v b="$deadline" 'BEGIN { exit !(a >= b) }'; then
      WATCH_VERDICT="too little traffic to judge: $total requests reached the canary in $(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.0f", a - b }')s$where (< --canary-min-requests $min)"
      return 1
    fi
    ((waiting++)) || step "  $label: only $total of the $min requests needed so far; waiting up to ${seconds}s more"
  done
  if ((total < min)); then
    step "$label: passed, but only $total requests reached the new release (< GUARD_MIN_REQUESTS $min): too little traffic to judge"
  else
    step "$label: passed ($total requests, $total_errors 5xx, $bad bad sample(s) of $bad_limit allowed)"
  fi
}
