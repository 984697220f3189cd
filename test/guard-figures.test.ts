/**
 * The guard's arithmetic (scripts/lib.sh proxy_figures) over nginx access-log lines in the
 * proxy's own format. `docker logs` is replaced by a script that prints the given lines: the
 * real log is read in test/release.test.ts, where the guard trips on a real bad release.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support/database.js";

/** One access-log line exactly as proxy/nginx.conf's `json` format writes it. */
const line = (uri: string, status: number, duration: number, upstream: string, client = "198.51.100.1") =>
  `{"time":"2026-11-25T07:00:00+00:00","request_id":"r","method":"POST","uri":"${uri}","client":"${client}","status":${status},"duration":${duration.toFixed(3)},"upstream":"${upstream}","upstream_status":"${status}","bytes":10}`;
const A = "unix:/run/slipway/api-a.sock";
const B = "unix:/run/slipway/api-b.sock";

async function figures(slot: "a" | "b", lines: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "slipway-guard-"));
  writeFileSync(join(dir, "log"), `${lines.join("\n")}\n2026/11/25 07:00:00 [notice] 1#1: an error-log line, not a request\n`);
  writeFileSync(join(dir, "docker"), `#!/bin/sh\n[ "$1" = logs ] && exec cat ${join(dir, "log")}\nexit 0\n`);
  chmodSync(join(dir, "docker"), 0o755);
  writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\n");
  const r = await execa("bash", ["-c", `source ${join(repoRoot, "scripts/lib.sh")} && proxy_figures ${slot} 1 2`], {
    env: { PATH: `${dir}:${process.env.PATH}`, SLIPWAY_DIR: dir },
  });
  return r.stdout.trim();
}

describe("the guard's figures from the proxy's access log", () => {
  it("count only the slot's requests (the last upstream tried), never /health, with the 5xx count, the p99, p50 and p95", async () => {
    const lines = [
      ...Array.from({ length: 98 }, (_, i) => line("/api/items", 201, 0.01 + i / 10000, B)),
      line("/api/items", 500, 0.02, B),
      line("/api/items", 502, 2.5, `${A}, ${B}`), // retried from a onto b: b's
      line("/api/items", 500, 9, `${B}, ${A}`), // ended on a: not b's
      line("/health", 500, 9, B),
      line("/health/ready", 500, 9, B),
      line("/api/items", 500, 9, A),
    ];
    // Nearest rank: the 99th of 100 durations; the one 2.5 s request is the 100th.
    expect(await figures("b", lines)).toBe("100 2 0.020 0.015 0.019 2 198.51.100.1");
    expect(await figures("b", [...lines, line("/api/items", 201, 3, B)])).toBe("101 2 2.500 0.015 0.019 2 198.51.100.1");
    expect(await figures("a", lines)).toBe("2 2 9.000 9.000 9.000 2 198.51.100.1");
  });

  it("name how many 5xx the one client with the most got, so on-call tells an attack from an outage", async () => {
    const lines = [
      ...Array.from({ length: 6 }, () => line("/api/items?limit=999", 500, 0.01, B, "203.0.113.66")),
      line("/api/items", 500, 0.01, B, "198.51.100.2"),
      line("/api/items", 201, 0.01, B, "198.51.100.3"),
      // A proxy older than the client field: counted, never named.
      line("/api/items", 500, 0.01, B, "").replace('"client":"",', ""),
    ];
    expect(await figures("b", lines)).toBe("9 8 0.010 0.010 0.010 6 203.0.113.66");
    expect(await figures("b", lines.slice(-1))).toBe("1 1 0.010 0.010 0.010 0 -");
  });

  it("print zeros when the slot had no request", async () => {
    expect(await figures("a", [line("/api/items", 201, 0.01, B)])).toBe("0 0 0 0 0 0 -");
  });

  it("read the format the proxy really writes", () => {
    const conf = readFileSync(join(repoRoot, "proxy/nginx.conf"), "utf8");
    for (const field of ['"uri":"$request_uri"', '"client":"$slipway_client"', '"status":$status', '"duration":$request_time', '"upstream":"$upstream_addr"']) expect(conf).toContain(field);
  });
});
