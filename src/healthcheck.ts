// Docker HEALTHCHECK probe: the slim image has no curl, so Node asks /health/ready itself,
// over the unix socket when the app listens on one. Healthy means this container answered: a
// socket path can name another live server while this one waits to claim it.
import http from "node:http";
import { INSTANCE_HEADER, instanceName } from "./instance.js";

const socketPath = process.env.LISTEN_SOCKET || undefined;
const target = socketPath ? { socketPath } : { host: "127.0.0.1", port: Number(process.env.PORT ?? 3000) };
const req = http.get({ ...target, path: "/health/ready", timeout: 2_500 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 && res.headers[INSTANCE_HEADER] === instanceName() ? 0 : 1);
});
req.on("timeout", () => req.destroy(new Error("timeout")));
req.on("error", () => process.exit(1));
