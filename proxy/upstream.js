// Picks the API's release slot per request from /run/slipway-route/active (written by
// slipway-upstream). Switching releases is a file write, not an nginx reload: a reload
// retires workers, which close idle keep-alive client connections, and an HTTP/1.1 client
// that sends on one at that instant sees a failed request. The file lives in the shared
// volume, so it outlives a recreated proxy container.
//
// The file holds the active slot ("a"), or during a canary step the active slot, the canary's
// slot and its percent share ("a b 10"): one file, so every change is one atomic rename.
import fs from "fs";

function pick(route, random) {
  const f = route.trim().split(/\s+/);
  const active = f[0] === "b" ? "b" : "a";
  if (f.length === 3 && (f[1] === "a" || f[1] === "b") && random * 100 < Number(f[2])) return "api_" + f[1];
  return "api_" + active;
}

// The route file: in the proxy's own volume (slipway-upstream), or, until the first switch
// after an upgrade writes that one, the legacy file in the sockets volume.
var ROUTE_FILES = ["/run/slipway-route/active", "/run/slipway/active"];

function readRoute(read) {
  for (var i = 0; i < ROUTE_FILES.length; i++) {
    try {
      return read(ROUTE_FILES[i]);
    } catch (_absent) {
      // the next one
    }
  }
  return "a";
}

function backend() {
  return pick(readRoute(function (path) { return fs.readFileSync(path, "utf8"); }), Math.random());
}

export default { backend, pick, readRoute };
