# The post-switch guard's and the canary steps' judge (lib/guard.sh watch_slot), as a stream:
# the proxy's JSON access log, line by line as nginx writes it, with "TICK <unix time>" lines
# between them for the clock. /health is not counted. A request counts for the slot whose
# socket nginx tried last: SOCK (the release judged) or BASE (the stable release beside a
# canary; empty for the guard).
#
# Failures are counted by client (the log's "client", proxy/client.js): the 5xx of the
# MIN_CLIENTS - 1 clients that got the most in the window are not counted in the 5xx share, so no
# one client (MIN_CLIENTS 2) can make a healthy release look broken, however it calls the API, and
# a release that fails real users still trips at once: they are many clients. A line with no
# client (a proxy older than the field) is its own client, never left out.
#
# Over SOCK's last WINDOW requests (at least MIN_SAMPLE of them), two shares are each tested
# against their bound with 99 % confidence (the lower end of the Wilson score interval, so a
# handful of requests can prove a release broken, and no number of healthy ones trips it):
# - the share that got a 5xx, against MAX5XX % (plus, beside a canary, the stable slot's own
#   share over its window: a fault both releases share, the database, is not the new one's).
#   Judged after every request: BAD consecutive requests over the bound trip it, so a release
#   failing every write trips within MIN_SAMPLE + BAD requests;
# - the share slower than the limit, against 1 % (a p99 over the limit means more than 1 % of
#   requests slower than it); the limit is max(P99MIN, FACTOR x the base p99: the stable slot's
#   over its window, else BASELINE). Judged on the clock, from EVERY seconds after START (a new
#   process's first requests are slow while it warms), and only a share over its bound for EVERY
#   seconds on end trips it: latency jitters, failures do not.
#
# Prints, each flushed at once: "STEP <progress>" every EVERY seconds; "WAIT <note>" once when a
# canary's step ended short of MIN_TOTAL requests; then one of "PASS <requests> <5xx>",
# "TRIP <verdict>[<tab>(stable: …)]" and "STARVED <requests> <seconds>", and exits.
# PASS's third field: the most 5xx one client got from SOCK in the whole window. The window ends SECONDS after
# START; a canary (BASE set) short of MIN_TOTAL runs on to twice that, then is STARVED.
BEGIN {
  z = 2.576
  cnt = 0; bcnt = 0; total = 0; terr = 0; btotal = 0; berr_total = 0; run = 0; waited = 0; slow_since = 0
  last = start + 0
  base_p99 = 0
  top_total = 0
  min_clients += 0
}

function lower(k, n,   p, d, c) {
  if (n == 0) return 0
  p = k / n
  d = 1 + z * z / n
  c = p + z * z / (2 * n)
  return (c - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / d
}

# The p99 of the first N values of array A (sorted into S; N is at most WINDOW).
function p99_of(a, n,   i, j, v, s) {
  if (n == 0) return 0
  for (i = 0; i < n; i++) {
    v = a[i]
    for (j = i - 1; j >= 0 && s[j] > v; j--) s[j + 1] = s[j]
    s[j + 1] = v
  }
  return s[int(n * 0.99 + 0.999999) - 1]
}

function limit(   l) {
  l = factor * (base != "" ? base_p99 : baseline)
  return p99min > l ? p99min : l
}

# Per slot S ("s" the judged, "b" the stable), each client's 5xx in the window (err[S, client]),
# how many clients have each count (hist[S, count]) and the largest count (maxe[S]): kept as
# requests come and go, so the share is judged in constant time per request however many
# clients there are (100 clients' worth of counting per request made the guard fall behind the
# log at 100 clients).
function bump(s, c, d,   k) {
  k = err[s, c] + 0
  if (k > 0) hist[s, k]--
  k += d
  if (k > 0) { hist[s, k]++; err[s, c] = k } else delete err[s, c]
  if (k > maxe[s]) maxe[s] = k
  while (maxe[s] > 0 && !(hist[s, maxe[s]] > 0)) maxe[s]--
}

# The 5xx of the MIN_CLIENTS - 1 clients with the most in slot S's window: left out of its share.
function top_errors(s,   k, m, need, sum) {
  need = min_clients - 1; sum = 0
  for (k = maxe[s]; k > 0 && need > 0; k--) { m = hist[s, k] + 0; if (m > need) m = need; sum += m * k; need -= m }
  return sum
}

function base_share(   n) {
  if (base == "") return 0
  n = bcnt < window ? bcnt : window
  return n ? 100 * (berr - top_errors("b")) / n : 0
}

# A request enters slot S's window at I with status ST from client C; the one it replaces leaves.
function enter(s, i, full, st, c,   old, olds) {
  if (s == "s") { old = wcl[i]; olds = ws[i]; wcl[i] = c } else { old = bcl[i]; olds = bs[i]; bcl[i] = c }
  if (full && old != "" && olds >= 500) bump(s, old, -1)
  if (c == "" || st < 500) return
  bump(s, c, 1)
  if (s == "s" && ++te[c] > top_total) top_total = te[c]
}

# The verdict line; beside a canary, a tab and what the stable release got meanwhile.
function trip(verdict) {
  if (base != "") verdict = verdict sprintf("\t(stable: %d requests, %d 5xx)", btotal, berr_total)
  print "TRIP " verdict
  fflush()
  exit 0
}

function judge_errors(   n, lim5, left, e, who) {
  n = cnt < window ? cnt : window
  if (n < min_sample) return
  if (werr == 0) { run = 0; return }
  lim5 = max5xx + base_share()
  left = top_errors("s")
  e = werr - left
  if (lower(e, n) <= lim5 / 100) { run = 0; return }
  who = min_clients > 2 ? sprintf("the %d clients", min_clients - 1) : "the client"
  if (++run >= bad) trip(sprintf("5xx %.1f %% > %g %% (%d of %d requests%s)", 100 * e / n, lim5, e, n, left ? sprintf("; the %d of %s with the most left out", left, who) : ""))
}

function judge_latency(now,   n, i, slow, lim) {
  n = cnt < window ? cnt : window
  if (n < min_sample || now - start < every) return
  lim = limit()
  slow = 0
  for (i = 0; i < n; i++) if (wd[i] > lim) slow++
  if (lower(slow, n) <= 0.01) { slow_since = 0; return }
  if (!slow_since) slow_since = now
  if (now - slow_since >= every) trip(sprintf("p99 %.3f s > %.3f s (%d requests)", p99_of(wd, n), lim, n))
}

function progress(now,   line, r, p) {
  if (icnt < min_sample) line = sprintf("ok: %d requests, too few to judge", icnt)
  else {
    r = 100 * ierr / icnt
    p = p99_of(idur, icnt < window ? icnt : window)
    line = sprintf("ok: %d requests, 5xx %.1f %%, p99 %.3f s", icnt, r, p)
  }
  if (base != "") line = line sprintf(" (stable: %d requests, %d 5xx, p99 %.3f s)", bicnt, bierr, base_p99)
  printf "STEP %ds of %ss: %s\n", now - start + 0.5, seconds, line
  fflush()
  icnt = 0; ierr = 0; bicnt = 0; bierr = 0
}

/^TICK / {
  now = $2 + 0
  if (base != "") base_p99 = p99_of(bd, bcnt < window ? bcnt : window)
  judge_latency(now)
  if (now - last >= every) { progress(now); last = now }
  if (now - start < seconds) next
  if (base == "" || total >= min_total) { printf "PASS %d %d %d\n", total, terr, top_total; fflush(); exit 0 }
  if (now - start >= 2 * seconds) { printf "STARVED %d %d\n", total, now - start + 0.5; fflush(); exit 0 }
  if (!waited++) { printf "WAIT only %d of the %d requests needed so far; waiting up to %ss more\n", total, min_total, seconds; fflush() }
  next
}

/^\{/ && index($0, "\"uri\":\"/health") == 0 && match($0, /"upstream":"[^"]*"/) {
  k = split(substr($0, RSTART + 12, RLENGTH - 13), tried, ", ")
  if (k == 0) next
  to = tried[k]
  match($0, /"status":[0-9]+/); st = substr($0, RSTART + 9, RLENGTH - 9) + 0
  match($0, /"duration":[0-9.]+/); du = substr($0, RSTART + 11, RLENGTH - 11) + 0
  cl = match($0, /"client":"[^"]*"/) ? substr($0, RSTART + 10, RLENGTH - 11) : ""
  if (substr(to, length(to) - length(sock) + 1) == sock) {
    i = cnt % window
    if (cnt >= window && ws[i] >= 500) werr--
    enter("s", i, cnt >= window, st, cl)
    ws[i] = st; wd[i] = du
    if (st >= 500) { werr++; terr++; ierr++ }
    idur[icnt % window] = du
    cnt++; total++; icnt++
    judge_errors()
  } else if (base != "" && substr(to, length(to) - length(base) + 1) == base) {
    i = bcnt % window
    if (bcnt >= window && bs[i] >= 500) berr--
    enter("b", i, bcnt >= window, st, cl)
    bs[i] = st; bd[i] = du
    if (st >= 500) { berr++; berr_total++; bierr++ }
    bcnt++; btotal++; bicnt++
  }
}
