/**
 * Swarm benchmarks on the 3-node test swarm (testenv/swarm.sh): deploy.sh and rollback.sh over
 * SSH to the manager, as `dagger call deploy` runs them, under load through another node's
 * proxy (wall time, failed requests), next to the single-host figures of bench/run.ts; and
 * requests per second through 1 and 3 API replicas. Prints a table; writes bench/results/swarm.md.
 *
 *   npm run bench:swarm            # BENCH_RUNS=3 BENCH_CONCURRENCY=10,100
 *   BENCH_ONLY=logs npm run bench:swarm   # the guard's signal: each node's proxy log, as the manager sees it
 *
 * The three nodes share this machine's cores, so more replicas add no CPU: the req/s rows show
 * what the proxy and the overlay cost, not what three machines would serve.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describeFailures, startLoad } from "../test/support/load.js";
import { repoRoot } from "../test/support/database.js";
import { SwarmDeployment } from "../test/support/swarm.js";
import { median } from "./report.js";
import { steadyWindow } from "./steady.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? "10,100").split(",").map(Number);
const out = join(repoRoot, "bench/results");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} [bench:swarm] ${m}\n`);
const fmt = (v: number | null) => (v === null ? "-" : `${Math.round(v * 10) / 10}`);

interface Roll { scenario: string; clients: number; ok: boolean; wallS: number; failed: number }

async function roll(slipway: SwarmDeployment, clients: number, scenario: string, argv: string[]): Promise<Roll> {
  const load = startLoad({ baseUrl: slipway.url, clients, maxSeconds: 400 });
  await sleep(3_000);
  const start = Date.now();
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, all: true });
  const wallS = (Date.now() - start) / 1000;
  await sleep(2_000);
  const result = await load.stop();
  const { samples } = result;
  if (r.exitCode !== 0) log(`${scenario} failed:\n${r.all}`);
  if (result.failed.length) log(`${scenario}, ${clients} clients: ${describeFailures(result)}`);
  return { scenario, clients, ok: r.exitCode === 0, wallS, failed: samples.filter((s) => s.status < 200 || s.status >= 300).length };
}

/** The single-host medians from bench/run.ts's last run, for the rows beside these. */
function singleHost(scenario: string, clients: number): number | null {
  const file = join(out, "latest.json");
  if (!existsSync(file)) return null;
  const runs = (JSON.parse(readFileSync(file, "utf8")) as { runs: { scenario: string; clients: number; wallMs: number }[] }).runs;
  const walls = runs.filter((r) => r.scenario === scenario && r.clients === clients).map((r) => r.wallMs / 1000);
  return walls.length ? median(walls) : null;
}

/**
 * What a Swarm guard would judge from: each node's proxy writes its own access log, and only
 * `docker service logs -f` on the manager sees every node's. Requests are sent, each with its own
 * marker, through node2's and node3's proxies; the time until the manager's stream shows each one
 * is the signal's delay, against `docker logs -f` of the proxy container on its own node.
 */
async function logDelays(slipway: SwarmDeployment): Promise<string[]> {
  const follow = (node: string, args: string[]) => {
    const p = execa("docker", ["exec", `slipway-swarm-${node}`, "docker", ...args], { reject: false, buffer: false });
    const seen = new Map<string, number>();
    let rest = "";
    p.stdout?.on("data", (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        const m = /probe=(\w+)/.exec(line);
        if (m && !seen.has(m[1]!)) seen.set(m[1]!, Date.now());
      }
    });
    return { p, seen };
  };
  const rows: string[] = [];
  for (const node of ["node2", "node3"]) {
    const proxy = (await slipway.swarm.docker(node, ["ps", "-q", "--filter", "label=com.docker.swarm.service.name=slipway_proxy"])).stdout.trim().split("\n")[0]!;
    const service = follow("node1", ["service", "logs", "-f", "--raw", "--since", "1s", "slipway_proxy"]);
    const local = follow(node, ["logs", "-f", "--since", "1s", proxy]);
    await sleep(2_000);
    const sent = new Map<string, number>();
    for (let i = 0; i < 50; i++) {
      const id = `${node}x${i}x${Date.now()}`;
      sent.set(id, Date.now());
      await fetch(`http://${slipway.swarm.ips[node]}:8000/health?probe=${id}`).then((r) => r.arrayBuffer()).catch(() => undefined);
      await sleep(100);
    }
    await sleep(5_000);
    service.p.kill();
    local.p.kill();
    const delays = (seen: Map<string, number>) => [...sent].filter(([id]) => seen.has(id)).map(([id, at]) => seen.get(id)! - at).sort((a, b) => a - b);
    for (const [how, f] of [["docker service logs -f, on the manager", service], [`docker logs -f, on ${node}`, local]] as const) {
      const d = delays(f.seen);
      const q = (p: number) => (d.length ? `${d[Math.min(d.length - 1, Math.floor((p / 100) * d.length))]}` : "-");
      rows.push(`| ${node} | ${how} | ${d.length}/${sent.size} | ${q(50)} | ${q(95)} | ${d.length ? d.at(-1) : "-"} |`);
    }
  }
  return [
    "The guard's signal on Swarm: 50 requests through each node's proxy, 10 a second; delay from sending a request to its access-log line, in ms",
    "| proxy on | read with | lines seen | p50 ms | p95 ms | max ms |",
    "|---|---|---|---|---|---|",
    ...rows,
  ];
}

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  if (process.env.BENCH_ONLY === "logs") {
    const slipway = new SwarmDeployment({ API_REPLICAS: "2" });
    try {
      const first = await slipway.start();
      if (first.exitCode !== 0) throw new Error(first.all);
      const text = (await logDelays(slipway)).join("\n");
      console.log(text);
      writeFileSync(join(out, "swarm-logs.md"), `${text}\n`);
    } finally {
      await slipway.stop();
    }
    return;
  }
  const slipway = new SwarmDeployment({ API_REPLICAS: "2" });
  const rolls: Roll[] = [];
  const throughput: { replicas: number; clients: number; rps: number; p50: number | null; p99: number | null; failed: number }[] = [];
  try {
    const first = await slipway.start();
    if (first.exitCode !== 0) throw new Error(first.all);
    for (const clients of CONCURRENCY) {
      for (let i = 0; i < RUNS; i++) {
        log(`c=${clients} run ${i + 1}/${RUNS}`);
        rolls.push(await roll(slipway, clients, "deploy", slipway.scriptArgv({ script: "deploy", tag: "v2", args: ["--skip-backup", "--timeout", "90"] })));
        rolls.push(await roll(slipway, clients, "rollback", slipway.scriptArgv({ script: "rollback", args: ["--timeout", "90"] })));
      }
    }
    for (const replicas of [1, 3]) {
      await slipway.swarm.docker("node1", ["service", "scale", "slipway_api=" + replicas]);
      for (let i = 0; i < RUNS; i++) {
        log(`${replicas} replica(s), run ${i + 1}/${RUNS}`);
        throughput.push({ replicas, clients: 100, ...(await steadyWindow(slipway.url, 100)) });
      }
    }
  } finally {
    await slipway.stop();
  }
  const lines = [
    `Swarm (3 nodes on this one machine; API_REPLICAS=2, start-first, monitor 20 s): deploy.sh --skip-backup and rollback.sh over SSH to the manager, median of ${RUNS}; wall in s`,
    "| scenario | clients | ok | wall | failed | single host (compose), wall |",
    "|---|---|---|---|---|---|",
  ];
  const compose: Record<string, string> = { deploy: "deploy", rollback: "rollback to the kept release" };
  for (const clients of CONCURRENCY) {
    for (const scenario of ["deploy", "rollback"]) {
      const rs = rolls.filter((r) => r.clients === clients && r.scenario === scenario);
      lines.push(`| ${scenario} | ${clients} | ${rs.filter((r) => r.ok).length}/${rs.length} | ${fmt(median(rs.map((r) => r.wallS)))} | ${rs.map((r) => r.failed).join(", ")} | ${fmt(singleHost(compose[scenario]!, clients))} |`);
    }
  }
  lines.push("", `Throughput through node2's proxy, 100 clients (GET /health + POST /api/items), median of ${RUNS} x 10 s`, "| api replicas | req/s | p50 ms | p99 ms | failed |", "|---|---|---|---|---|");
  for (const replicas of [1, 3]) {
    const rs = throughput.filter((r) => r.replicas === replicas);
    const m = (f: (r: (typeof rs)[number]) => number | null) => median(rs.map(f).filter((v): v is number => v !== null));
    lines.push(`| ${replicas} | ${fmt(m((r) => r.rps))} | ${fmt(m((r) => r.p50))} | ${fmt(m((r) => r.p99))} | ${rs.map((r) => r.failed).join(", ")} |`);
  }
  const text = lines.join("\n");
  console.log(text);
  writeFileSync(join(out, "swarm.md"), `${text}\n`);
}

await main();
