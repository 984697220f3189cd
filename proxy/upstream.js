// Picks the API's release slot per request from /run/slipway/active (written by
// slipway-upstream). Switching releases is a file write, not an nginx reload: a reload
// retires workers, which close idle keep-alive client connections, and an HTTP/1.1 client
// that sends on one at that instant sees a failed request. The file lives in the shared
// volume, so it outlives a recreated proxy container.
import fs from "fs";

function backend() {
  try {
    return fs.readFileSync("/run/slipway/active", "utf8").trim() === "b" ? "api_b" : "api_a";
  } catch (_unreadable) {
    return "api_a";
  }
}

export default { backend };
