/**
 * `npm run bench:follow`: how soon the guard's and canary's follow of the proxy's log
 * (scripts/lib/guard.sh follow_proxy_log) sends its first line, on a proxy whose log is at the
 * cap docker-compose.prod.yml sets (json-file, 5 files of 10 MB). The judge's clock ticks from
 * the follow's start, so this delay is time a canary step or the guard cannot see.
 * `docker logs -f --since NOW` alone against `--tail 10000` as well, alternating, on the real
 * proxy image; medians of BENCH_RUNS (5). Prints a table.
 */
import { execa } from "execa";
import { buildImages, pinned } from "../test/support/stack.js";
import { median } from "./report.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const NAME = `slipway-bench-follow-${process.pid}`;

/** Seconds from starting `docker logs -f --since now ARGS` to its first line (the 0.2 s ticker's). */
async function firstLine(extra: string[]): Promise<number> {
  const started = performance.now();
  const follow = execa("docker", ["logs", "-f", "--since", String(Math.floor(Date.now() / 1000)), ...extra, NAME], { reject: false, buffer: false });
  await new Promise<void>((resolve) => follow.stdout!.once("data", () => resolve()));
  const seconds = (performance.now() - started) / 1000;
  follow.kill();
  await follow;
  return seconds;
}

async function main(): Promise<void> {
  await buildImages();
  const proxyImage = `slipway/proxy:${pinned("PROXY_TAG")}`;
  const line = JSON.stringify({ time: "2026-01-01T00:00:00+00:00", uri: "/health", status: 200, duration: 0.001, upstream: "", pad: "x".repeat(200) });
  // The cap's worth of old lines, then a line every 0.2 s, as a proxy under its probes writes.
  await execa("docker", ["run", "-d", "--name", NAME, "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=5",
    "--entrypoint", "sh", proxyImage, "-c", `yes '${line}' | head -n 200000; while :; do echo tick; sleep 0.2; done`]);
  try {
    await new Promise((r) => setTimeout(r, 15_000));
    const rows: Record<string, number[]> = { "--since alone": [], "--since --tail 10000": [] };
    for (let i = 0; i < RUNS; i++) {
      rows["--since alone"]!.push(await firstLine([]));
      rows["--since --tail 10000"]!.push(await firstLine(["--tail", "10000"]));
    }
    const base = median(rows["--since alone"]!);
    console.log("| follow | first line after (median s) | runs | ratio |\n|---|---|---|---|");
    for (const [label, xs] of Object.entries(rows)) console.log(`| ${label} | ${median(xs).toFixed(2)} | ${xs.map((x) => x.toFixed(2)).join(", ")} | ${(median(xs) / base).toFixed(2)} |`);
  } finally {
    await execa("docker", ["rm", "-f", NAME], { reject: false });
  }
}

await main();
