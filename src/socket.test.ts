import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { claimSocket, socketIsLive } from "./socket.js";

const dir = mkdtempSync(join(tmpdir(), "slipway-socket-"));
const servers: http.Server[] = [];

/** A real HTTP server answering its own name, as the API answers with its instance. */
function server(name: string): http.Server {
  const s = http.createServer((_req, res) => res.end(name));
  servers.push(s);
  return s;
}
const listen = (s: http.Server) => (path: string) => new Promise<void>((resolve) => s.listen(path, resolve));
const close = (s: http.Server) => new Promise<void>((resolve) => s.close(() => resolve()));
const ask = (path: string) =>
  new Promise<string>((resolve, reject) => {
    http.get({ socketPath: path, path: "/" }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => (s.listening ? close(s) : undefined)));
});

describe("claiming a release slot's socket", () => {
  it("replaces a file a killed server left, and serves there", async () => {
    const path = join(dir, "stale.sock");
    writeFileSync(path, "");
    expect(await socketIsLive(path)).toBe(false);
    await claimSocket(listen(server("new")), path);
    expect(await ask(path)).toBe("new");
  });

  it("waits while a live server holds the path and never takes it from it", async () => {
    const path = join(dir, "held.sock");
    const old = server("old");
    await claimSocket(listen(old), path);
    const waits: number[] = [];
    const claimed = claimSocket(listen(server("new")), path, { pollMs: 50, onWait: (s) => waits.push(s) });
    await new Promise((r) => setTimeout(r, 300));
    expect(await ask(path)).toBe("old");
    expect(waits.length).toBeGreaterThan(2);
    await close(old);
    await claimed;
    expect(await ask(path)).toBe("new");
  });

  it("a server closing after a successor took the path leaves the successor's socket", async () => {
    const path = join(dir, "handover.sock");
    const first = server("first");
    await claimSocket(listen(first), path);
    // A successor that found the path dead (the first was frozen, say) took it over.
    const second = server("second");
    await listen(second)(`${path}.next`);
    renameSync(`${path}.next`, path);
    await close(first);
    expect(existsSync(path)).toBe(true);
    expect(await ask(path)).toBe("second");
  });
});

process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
