// The image's HEALTHCHECK probe (src/healthcheck.pl), run by the host's perl against real
// servers: it passes only on a 200 that names this host as the instance.
import { mkdtempSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { INSTANCE_HEADER } from "./instance.js";

const probe = join(import.meta.dirname, "healthcheck.pl");
const dir = mkdtempSync(join(tmpdir(), "slipway-probe-"));
const servers: http.Server[] = [];
let n = 0;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const answer = (status: number, instance: string): Handler => (req, res) => {
  res.statusCode = req.url === "/health/ready" ? status : 404;
  res.setHeader(INSTANCE_HEADER, instance);
  res.end("{}");
};

async function onSocket(handler: Handler): Promise<string> {
  const path = join(dir, `api-${n++}.sock`);
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(path, resolve));
  return path;
}

async function onPort(handler: Handler): Promise<number> {
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return (s.address() as AddressInfo).port;
}

const run = async (env: Record<string, string>) =>
  (await execa("perl", [probe], { env: { LISTEN_SOCKET: "", ...env }, extendEnv: false, reject: false })).exitCode;

afterEach(async () => {
  for (const s of servers.splice(0)) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

describe("healthcheck.pl", () => {
  it("passes when this instance answers 200 on its socket", async () => {
    expect(await run({ LISTEN_SOCKET: await onSocket(answer(200, hostname())) })).toBe(0);
  });

  it("fails when another instance holds the socket path", async () => {
    expect(await run({ LISTEN_SOCKET: await onSocket(answer(200, `${hostname()}x`)) })).toBe(1);
  });

  it("fails on a 503 (not ready: draining, or the database is down)", async () => {
    expect(await run({ LISTEN_SOCKET: await onSocket(answer(503, hostname())) })).toBe(1);
  });

  it("fails when nothing listens on the socket", async () => {
    expect(await run({ LISTEN_SOCKET: join(dir, "missing.sock") })).toBe(1);
  });

  it("asks TCP on PORT when LISTEN_SOCKET is unset", async () => {
    expect(await run({ PORT: String(await onPort(answer(200, hostname()))) })).toBe(0);
    expect(await run({ PORT: String(await onPort(answer(500, hostname()))) })).toBe(1);
  });

  it("gives up within its 2 s alarm when the app accepts but never answers", async () => {
    const path = await onSocket(() => undefined);
    const started = Date.now();
    expect(await run({ LISTEN_SOCKET: path })).toBe(1);
    expect(Date.now() - started).toBeLessThan(2_900); // Docker's own timeout is 3 s
  });
});
