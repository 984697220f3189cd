// The client a request came from, as the proxy's access log names it ("client"): the guard
// judges a release by failures that more than one client sees (scripts/lib/judge.awk), so that
// one client cannot make it revert a healthy release however it calls the API.
//
// By default the connection's address. Behind a CDN or load balancer that is the CDN's, so
// SLIPWAY_CLIENT_HEADER (PROXY_CLIENT_HEADER in .env) names the header it sets: the last address
// of that header, the one the nearest proxy added (X-Forwarded-For) or the only one
// (CF-Connecting-IP, True-Client-IP). Set it only when clients can reach the host through that
// proxy alone: a header is whatever a client sends. An IPv6 client is its /64, the block one
// subscriber holds.

function hextets(address) {
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0 || head.length + fill + tail.length !== 8) return null;
  const out = head.slice();
  for (let i = 0; i < fill; i++) out.push("0");
  return out.concat(tail);
}

// ADDRESS as a client key: an IPv4 address as it is, an IPv6 one as its /64, anything else
// (a header's junk) cut to 64 characters of [0-9A-Za-z.:_-].
function group(address) {
  let a = address.trim();
  if (a.charAt(0) === "[") a = a.slice(1, a.indexOf("]") > 0 ? a.indexOf("]") : a.length);
  if (a.indexOf(":") !== a.lastIndexOf(":") && /^[0-9A-Fa-f:.]+$/.test(a)) {
    const h = hextets(a.indexOf(".") > 0 ? a.slice(0, a.lastIndexOf(":")) + ":0:0" : a);
    if (h) return h.slice(0, 4).map((x) => (parseInt(x, 16) || 0).toString(16)).join(":") + "::/64";
  }
  return a.replace(/[^0-9A-Za-z.:_-]/g, "_").slice(0, 64);
}

// The client key of a request: HEADER's last address when HEADER is set and the request has it, else REMOTE.
function keyOf(header, value, remote) {
  if (header && value) {
    const parts = String(value).split(",");
    const last = parts[parts.length - 1].trim();
    if (last) return group(last);
  }
  return group(remote || "");
}

function key(r) {
  const header = process.env.SLIPWAY_CLIENT_HEADER || "";
  return keyOf(header, header ? r.headersIn[header] : "", r.remoteAddress);
}

export default { key, keyOf, group };
