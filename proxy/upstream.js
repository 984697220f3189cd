// Picks the API backend per request from /etc/nginx/slipway/active (written by
// slipway-upstream). Switching releases is a file write, not an nginx reload: a reload
// retires workers, which close idle keep-alive client connections, and an HTTP/1.1 client
// that sends on one at that instant sees a failed request.
import fs from "fs";

const ACTIVE = "/etc/nginx/slipway/active";
const SERVER = /^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9]{1,5}$/;
// Before the first switch: every running `api` container, through Docker's DNS.
const DEFAULT = "api:3000";

function backend() {
  try {
    const value = fs.readFileSync(ACTIVE, "utf8").trim();
    return SERVER.test(value) ? value : DEFAULT;
  } catch (_unreadable) {
    return DEFAULT;
  }
}

export default { backend };
