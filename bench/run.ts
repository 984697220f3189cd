/**
 * Release benchmarks on the real stack: what a deploy, a rollback (to the kept release, and a
 * full roll), a failed deploy, a bad release the guard reverts and the plain `docker compose up
 * -d` baseline cost users under load; the same deploy and rollback with the scripts of an
 * earlier commit (BENCH_BEFORE) for a like-for-like before/after; backup/restore against bare
 * pg_dump/psql. Prints a table; writes bench/results/latest.json and latency.svg.
 *
 *   npm run bench                  # BENCH_RUNS=3 BENCH_CONCURRENCY=10,100 BENCH_DB_MB=1024
 */
import { mkdirSync, readFileSync, writeFileSync, statSync, rmSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { startLoad, startTrickle, type Sample } from "../test/support/load.js";
import { buildImages, Stack, TEST_HTTP_PORT } from "../test/support/stack.js";
import { DEPLOY_BUNDLE } from "../dagger/src/commands/ssh.js";
import { repoRoot } from "../test/support/database.js";
import { percentile, median, phaseSpan, renderSvg, type Phase, type Run } from "./report.js";
import { steadyWindow } from "./steady.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? "10,100").split(",").map(Number);
const DB_MB = Number(process.env.BENCH_DB_MB ?? 1024);
const STEADY_MS = 3_000;
/**
 * The release path before the speed and kept-release work of the post-switch guard issue: the
 * main its figures were measured on (compose --scale roll, a migrate run every release).
 */
const BEFORE = process.env.BENCH_BEFORE ?? "d92081a";
/** The guard and canary before they judged by client (one client's 5xx could revert a healthy release). */
const CLIENTS_BEFORE = process.env.BENCH_CLIENTS_BEFORE ?? "4b8562d";
/** The guard and canary before the streaming judge: one sample every 3 s, two bad ones trip it. */
const GUARD_BEFORE = process.env.BENCH_GUARD_BEFORE ?? "0764933";
const out = join(repoRoot, "bench/results");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} [bench] ${m}\n`);

const SCENARIOS = [
  "deploy",
  `deploy, before (${BEFORE})`,
  "rollback to the kept release",
  "rollback, nothing kept (full roll)",
  `rollback, before (${BEFORE})`,
  "failed-deploy",
  "bad release, reverted by the guard",
  "compose-up baseline",
  "canary deploy (10 %, 50 %)",
  "bad canary, taken back",
  "deploy, untuned health",
  "rollback, untuned health",
  "healthy release through the guard",
  `bad release, reverted by the guard, before (${GUARD_BEFORE})`,
  `bad canary, taken back, before (${GUARD_BEFORE})`,
  `healthy release through the guard, before (${GUARD_BEFORE})`,
  "rollback to the kept release, busy host",
  `rollback to the kept release, before (${GUARD_BEFORE})`,
  `rollback to the kept release, busy host, before (${GUARD_BEFORE})`,
  "healthy release through the guard, a hostile trickle",
  `bad release, reverted by the guard, before (${CLIENTS_BEFORE})`,
  `bad canary, taken back, before (${CLIENTS_BEFORE})`,
  `healthy release through the guard, a hostile trickle, before (${CLIENTS_BEFORE})`,
] as const;
type Scenario = (typeof SCENARIOS)[number];

/** Runs `action` under load; phases are timestamped from the script's own log lines as they arrive. */
async function measure(stack: Stack, clients: number, scenario: Scenario, argv: string[], env: Record<string, string> = {}, hostile = false): Promise<Run> {
  const load = startLoad({ baseUrl: stack.url, clients, maxSeconds: 300 });
  // One more client, apart from the load's figures: a request any release answers 500, back to back.
  const trickle = hostile ? startTrickle({ baseUrl: stack.url, path: "/api/items?limit=999", client: "203.0.113.66", maxSeconds: 300 }) : null;
  await sleep(STEADY_MS);
  const start = Date.now();
  const phases: Phase[] = [{ name: "start", at: start }];
  const proc = execa(argv[0]!, argv.slice(1), { cwd: stack.dir, reject: false, all: true, env: { SLIPWAY_LOCK_FILE: join(stack.dir, ".lock"), ...env } });
  const markers: [RegExp, string][] = [
    [/starting api:|is kept in slot/, "start new"],
    [/healthy \(/, "healthy"],
    [/switching the proxy to/, "switch"],
    [/^upstream now: slot/, "switched"],
    [/guard: watching/, "guard"],
    // Before the streaming judge the line came before the switch back; since, right after it.
    [/switch(ing|ed) the proxy back/, "revert"],
    [/guard: passed/, "guard passed"],
    [/draining the old|stays warm in slot/, "old kept"],
    [/never became healthy/, "gave up"],
    [/takes 10 % of new requests/, "canary 10"],
    [/^canary now: slot [ab] takes 10 %/, "canary 10 on"],
    [/takes 50 % of new requests/, "canary 50"],
    [/canary: every step passed/, "canary passed"],
    [/canary: .*; sen(ding|t) every request to slot/, "canary back"],
  ];
  proc.all?.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      for (const [re, name] of markers) if (re.test(line) && !phases.some((p) => p.name === name)) phases.push({ name, at: Date.now() });
    }
  });
  const result = await proc;
  const end = Date.now();
  await sleep(2_000);
  const { samples } = await load.stop();
  await trickle?.stop();
  const during = samples.filter((s) => s.at >= start && s.at <= end);
  const steady = samples.filter((s) => s.at < start);
  return {
    scenario,
    clients,
    ok: result.exitCode === 0,
    wallMs: end - start,
    servingAllMs: servingAll(samples, start, scenario),
    requests: samples.length,
    failed: samples.filter((s) => s.status < 200 || s.status >= 300).length,
    steadyP50: percentile(steady, 50),
    steadyP99: percentile(steady, 99),
    rollP50: percentile(during, 50),
    rollP99: percentile(during, 99),
    start,
    phases,
    samples: samples.map((s) => ({ t: s.at - start, ms: Math.round(s.ms * 10) / 10, ok: s.status >= 200 && s.status < 300 })),
  };
}

/** Time from start until the last read that saw the old version (reads carry /health's version). */
function servingAll(samples: Sample[], start: number, scenario: Scenario): number | null {
  if (scenario === "failed-deploy") return null;
  const reads = samples.filter((s) => s.version && s.at >= start);
  const target = reads.at(-1)?.version;
  const lastOld = reads.filter((s) => s.version !== target).at(-1);
  return lastOld ? lastOld.at - start : 0;
}

async function releaseScenarios(): Promise<Run[]> {
  const runs: Run[] = [];
  const script = (name: string, ...args: string[]) => ["bash", `scripts/${name}.sh`, ...args];
  for (const clients of CONCURRENCY) {
    const stack = new Stack({ port: TEST_HTTP_PORT, tag: "v1" }).install();
    await stack.up();
    try {
      for (let i = 0; i < RUNS; i++) {
        log(`c=${clients} run ${i + 1}/${RUNS}`);
        // A new release is never the one kept: empty the idle slot first, as for any new tag.
        await stack.dropKept();
        runs.push(await measure(stack, clients, "deploy", script("deploy", "--no-pull", "--skip-backup", "v2")));
        runs.push(await measure(stack, clients, "rollback to the kept release", script("rollback", "--no-pull", "v1")));
        await stack.dropKept();
        await stack.script("deploy", ["--no-pull", "--skip-backup", "v2"]);
        await stack.dropKept();
        runs.push(await measure(stack, clients, "rollback, nothing kept (full roll)", script("rollback", "--no-pull", "v1")));
        runs.push(await measure(stack, clients, "failed-deploy", script("deploy", "--no-pull", "--skip-backup", "--timeout", "20", "unhealthy")));
        runs.push(await measure(stack, clients, "bad release, reverted by the guard", script("deploy", "--no-pull", "--skip-backup", "--guard", "30", "brokenwrites")));
        // The baseline: recreate the api container in place with the new tag.
        runs.push(await measure(stack, clients, "compose-up baseline", ["docker", "compose", "-f", "docker-compose.prod.yml", "up", "-d", "--no-deps", "api-a"], { API_A_TAG: "v2" }));
        await stack.compose(["up", "-d", "--no-deps", "--wait", "api-a"]); // back to v1 from .env
        await stack.dropKept();
        const canary = (...args: string[]) => script("deploy", "--no-pull", "--skip-backup", "--guard", "0", "--canary", "10,50", ...args);
        runs.push(await measure(stack, clients, "canary deploy (10 %, 50 %)", canary("--canary-step", "5", "v2")));
        await stack.script("rollback", ["--no-pull", "v1"]);
        runs.push(await measure(stack, clients, "bad canary, taken back", canary("--canary-step", "20", "brokenwrites")));
      }
    } finally {
      await stack.down();
    }
    runs.push(...(await beforeScenarios(clients)));
  }
  return runs;
}

/** A stack with this tree's release files, or with those commit BEFORE shipped (the bundle has grown since; its scripts replace ours whole). */
async function stackWith(before?: string): Promise<Stack> {
  const stack = new Stack({ port: TEST_HTTP_PORT, tag: "v1" }).install();
  if (!before) return stack;
  const tracked = (await execa("git", ["-C", repoRoot, "ls-tree", "--name-only", before])).stdout.split("\n");
  const entries = DEPLOY_BUNDLE.filter((e) => e !== ".env.example" && tracked.includes(e));
  rmSync(join(stack.dir, "scripts"), { recursive: true, force: true });
  await execa("sh", ["-c", `git -C "$1" archive "$2" ${entries.join(" ")} | tar -x -C "$3"`, "sh", repoRoot, before, stack.dir]);
  return stack;
}

/** The same deploy and rollback, same images and load, with the release files of commit BEFORE. */
async function beforeScenarios(clients: number): Promise<Run[]> {
  const stack = await stackWith(BEFORE);
  await stack.up();
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      log(`before (${BEFORE}), c=${clients} run ${i + 1}/${RUNS}`);
      runs.push(await measure(stack, clients, `deploy, before (${BEFORE})`, ["bash", "scripts/deploy.sh", "--no-pull", "--skip-backup", "v2"]));
      runs.push(await measure(stack, clients, `rollback, before (${BEFORE})`, ["bash", "scripts/rollback.sh", "--no-pull", "v1"]));
    }
  } finally {
    await stack.down();
  }
  return runs;
}

type Round = (stack: Stack, name: (s: string) => Scenario, script: (n: string, ...args: string[]) => string[]) => Promise<Run[]>;

/** RUNS rounds of ROUND at CLIENTS on one stack with BEFORE's release files (or this tree's); the stack goes down after. */
async function rounds(label: string, clients: number, before: string | undefined, round: Round): Promise<Run[]> {
  const stack = await stackWith(before);
  const name = (s: string) => (before ? `${s}, before (${before})` : s) as Scenario;
  const script = (n: string, ...args: string[]) => ["bash", `scripts/${n}.sh`, ...args];
  await stack.up();
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      log(`${label}${before ? `, before (${before})` : ""}, c=${clients} run ${i + 1}/${RUNS}`);
      runs.push(...(await round(stack, name, script)));
    }
  } finally {
    await stack.down();
  }
  return runs;
}

const badRelease = (clients: number): Round => async (stack, name, script) => {
  await stack.dropKept();
  return [await measure(stack, clients, name("bad release, reverted by the guard"), script("deploy", "--no-pull", "--skip-backup", "--guard", "30", "brokenwrites"))];
};
const badCanary = (clients: number): Round => async (stack, name, script) => {
  await stack.dropKept();
  return [await measure(stack, clients, name("bad canary, taken back"), script("deploy", "--no-pull", "--skip-backup", "--guard", "0", "--canary", "10,50", "--canary-step", "20", "brokenwrites"))];
};

/**
 * The guard and the canary's judge, now and before the streaming judge (GUARD_BEFORE's release
 * files): a bad release the guard reverts, a healthy one that must pass it (no false trip), and a
 * bad canary taken back at its first step. `BENCH_ONLY=guard npm run bench`.
 */
function guardScenarios(clients: number, before?: string): Promise<Run[]> {
  return rounds("guard", clients, before, async (stack, name, script) => {
    const runs = await badRelease(clients)(stack, name, script);
    await stack.dropKept();
    runs.push(await measure(stack, clients, name("healthy release through the guard"), script("deploy", "--no-pull", "--skip-backup", "--guard", "30", "v2")));
    await stack.script("rollback", ["--no-pull", "v1"]);
    return [...runs, ...(await badCanary(clients)(stack, name, script))];
  });
}

/**
 * The guard and the canary judging by client, now and before (CLIENTS_BEFORE's release files):
 * the bad release and the bad canary as in guardScenarios, and a healthy release (clientbug1 ->
 * clientbug2, which share a bug a client can provoke) while one client calls that bug back to
 * back: kept in every run now. `BENCH_ONLY=clients npm run bench`.
 */
function clientScenarios(clients: number, before?: string): Promise<Run[]> {
  return rounds("clients", clients, before, async (stack, name, script) => {
    const runs = [...(await badRelease(clients)(stack, name, script)), ...(await badCanary(clients)(stack, name, script))];
    await stack.script("deploy", ["--no-pull", "--skip-backup", "--guard", "0", "clientbug1"]);
    await stack.dropKept();
    runs.push(await measure(stack, clients, name("healthy release through the guard, a hostile trickle"), script("deploy", "--no-pull", "--skip-backup", "--guard", "10", "clientbug2"), {}, true));
    await stack.script("deploy", ["--no-pull", "--skip-backup", "--guard", "0", "v1"]);
    return runs;
  });
}

/** The median time, in seconds, from FROM (the guard's switch or the canary's share) to the switch back. */
function toRevert(rs: Run[], from: string): number | null {
  const v = rs.map((r) => phaseSpan(r, from, from === "switched" ? "revert" : "canary back")).filter((x): x is number => x !== null);
  return v.length ? median(v) / 1000 : null;
}

/**
 * The bad release's and the bad canary's rows at CLIENTS, now against BEFORE's release files, same
 * run: to revert and the failed requests, each run and their ratio. The judge's and the clients'
 * tables both start their rows with these cells.
 */
function revertRows(runs: Run[], clients: number, before: string): string[] {
  const of = (s: string) => runs.filter((r) => r.clients === clients && r.scenario === s);
  const rows: string[] = [];
  for (const [scenario, from] of [["bad release, reverted by the guard", "switched"], ["bad canary, taken back", "canary 10 on"]] as const) {
    const now = of(scenario);
    const was = of(`${scenario}, before (${before})`);
    if (!now.length) continue;
    const ratio = median(was.map((r) => r.failed)) ? median(now.map((r) => r.failed)) / median(was.map((r) => r.failed)) : null;
    rows.push(`| ${scenario} | ${clients} | ${fmt(toRevert(now, from))} | ${now.map((r) => r.failed).join(", ")} | ${fmt(toRevert(was, from))} | ${was.map((r) => r.failed).join(", ")} | ${ratio === null ? "-" : `${Math.round(ratio * 100)} %`} |`);
  }
  return rows;
}

/** Judging by client against the rule before, same run: the guard's and the canary's speed, and the hostile trickle's verdict. */
function clientTable(runs: Run[]): string[] {
  const out = [
    `The guard and the canary judging by client (now) against every request alone (before, ${CLIENTS_BEFORE}): median of ${RUNS}; "to revert" as in the judge's table; the hostile row: a healthy release (--guard 10) while one client gets 500 back to back`,
    "| scenario | clients | now: to revert s | now: failed (each run) | before: to revert s | before: failed (each run) | failed now / before |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const clients of CONCURRENCY) {
    const of = (s: string) => runs.filter((r) => r.clients === clients && r.scenario === s);
    out.push(...revertRows(runs, clients, CLIENTS_BEFORE));
    const kept = (rs: Run[]) => `kept ${rs.filter((r) => r.ok).length}/${rs.length}`;
    const now = of("healthy release through the guard, a hostile trickle");
    const was = of(`healthy release through the guard, a hostile trickle, before (${CLIENTS_BEFORE})`);
    if (now.length) out.push(`| healthy release, a hostile trickle | ${clients} | ${kept(now)} | ${now.map((r) => r.failed).join(", ")} | ${kept(was)} | ${was.map((r) => r.failed).join(", ")} | |`);
  }
  return out;
}

/**
 * Rollback to the kept release, now and with GUARD_BEFORE's release files, on a quiet host and on
 * a busy one (both cores kept busy by a stream of short-lived processes beside the load).
 * `BENCH_ONLY=rollback npm run bench`.
 */
async function rollbackScenarios(clients: number, before?: string): Promise<Run[]> {
  const stack = await stackWith(before);
  const name = (s: string) => (before ? `${s}, before (${before})` : s) as Scenario;
  await stack.up();
  const runs: Run[] = [];
  try {
    await stack.script("deploy", ["--no-pull", "--skip-backup", "v2"]);
    for (const busy of [false, true]) {
      // Two shells each starting short-lived processes as fast as they can: both cores busy.
      const hogs = busy ? [0, 1].map(() => execa("sh", ["-c", "while :; do /bin/true; done"], { reject: false })) : [];
      try {
        for (let i = 0; i < RUNS; i++) {
          log(`rollback${busy ? ", busy" : ""}${before ? `, before (${before})` : ""}, c=${clients} run ${i + 1}/${RUNS}`);
          runs.push(await measure(stack, clients, name(busy ? "rollback to the kept release, busy host" : "rollback to the kept release"), ["bash", "scripts/rollback.sh", "--no-pull", "v1"]));
          await stack.script("rollback", ["--no-pull", "v2"]);
        }
      } finally {
        for (const h of hogs) h.kill("SIGKILL");
      }
    }
  } finally {
    await stack.down();
  }
  return runs;
}

function rollbackTable(runs: Run[]): string[] {
  const out = [
    `Rollback to the kept release, now and before (${GUARD_BEFORE}): median of ${RUNS}; "to switched" is from the script's start to the proxy's answer that it switched`,
    "| host | clients | now: to switched s | now: wall s | before: to switched s | before: wall s | failed now (each run) | failed before |",
    "|---|---|---|---|---|---|---|---|",
  ];
  const med = (rs: Run[], f: (r: Run) => number | null) => {
    const v = rs.map(f).filter((x): x is number => x !== null);
    return v.length ? median(v) / 1000 : null;
  };
  for (const busy of [false, true]) {
    for (const clients of CONCURRENCY) {
      const scenario = busy ? "rollback to the kept release, busy host" : "rollback to the kept release";
      const now = runs.filter((r) => r.clients === clients && r.scenario === scenario);
      const was = runs.filter((r) => r.clients === clients && r.scenario === `${scenario}, before (${GUARD_BEFORE})`);
      if (!now.length) continue;
      const toSwitched = (r: Run) => phaseSpan(r, "start", "switched");
      out.push(`| ${busy ? "busy (both cores)" : "quiet"} | ${clients} | ${fmt(med(now, toSwitched))} | ${fmt(med(now, (r) => r.wallMs))} | ${fmt(med(was, toSwitched))} | ${fmt(med(was, (r) => r.wallMs))} | ${now.map((r) => r.failed).join(", ")} | ${was.map((r) => r.failed).join(", ")} |`);
    }
  }
  return out;
}

/** The streaming judge against the sampled one, same run, same load: time to the switch back and the failed requests it cost. */
function judgeTable(runs: Run[]): string[] {
  const out = [
    `The guard's and the canary's judge, streaming (now) against sampled (before, ${GUARD_BEFORE}): median of ${RUNS}; "to revert" is from the proxy's answer that it switched (guard) or took the 10 % share (canary) to the switch back`,
    "| scenario | clients | now: to revert s | now: failed (each run) | before: to revert s | before: failed (each run) | failed now / before | healthy passes (now, before) |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const clients of CONCURRENCY) {
    const of = (s: string) => runs.filter((r) => r.clients === clients && r.scenario === s);
    const healthy = `${of("healthy release through the guard").filter((r) => r.ok).length}/${of("healthy release through the guard").length}, ${of(`healthy release through the guard, before (${GUARD_BEFORE})`).filter((r) => r.ok).length}/${of(`healthy release through the guard, before (${GUARD_BEFORE})`).length}`;
    out.push(...revertRows(runs, clients, GUARD_BEFORE).map((row) => `${row} ${healthy} |`));
  }
  return out;
}

/**
 * Before/after for the health-check tuning: the same rolls with the api's start_interval at
 * Docker's default of 5 s instead of 1 s. (Removing the key would not do: Docker then takes
 * the image's HEALTHCHECK value, also 1 s.)
 */
async function untunedScenarios(clients: number): Promise<Run[]> {
  const stack = new Stack({ port: TEST_HTTP_PORT, tag: "v1" }).install();
  const file = join(stack.dir, "docker-compose.prod.yml");
  writeFileSync(file, readFileSync(file, "utf8").replace(/start_interval: [0-9a-z]+/g, "start_interval: 5s"));
  await stack.up();
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      log(`untuned health, c=${clients} run ${i + 1}/${RUNS}`);
      runs.push(await measure(stack, clients, "deploy, untuned health", ["bash", "scripts/deploy.sh", "--no-pull", "--skip-backup", "v2"]));
      runs.push(await measure(stack, clients, "rollback, untuned health", ["bash", "scripts/rollback.sh", "--no-pull", "v1"]));
    }
  } finally {
    await stack.down();
  }
  return runs;
}

interface SteadyRun {
  design: string;
  clients: number;
  rps: number;
  p50: number | null;
  p99: number | null;
  failed: number;
}

/**
 * Steady load through the proxy as shipped (njs reads the active slot per request, keep-alive
 * upstream per slot). The list takes more designs as [name, patch-the-stack-copy] pairs.
 */
async function proxyDesigns(): Promise<SteadyRun[]> {
  const designs: [string, (stack: Stack) => void][] = [
    ["per-request slot via njs (shipped)", () => {}],
  ];
  const results: SteadyRun[] = [];
  for (const [design, patch] of designs) {
    const stack = new Stack({ port: TEST_HTTP_PORT, tag: "v1" }).install();
    patch(stack);
    await stack.up();
    try {
      for (const clients of CONCURRENCY) {
        for (let i = 0; i < RUNS; i++) {
          log(`proxy design "${design}", c=${clients} run ${i + 1}/${RUNS}`);
          results.push({ design, clients, ...(await steadyWindow(stack.url, clients)) });
        }
      }
    } finally {
      await stack.down();
    }
  }
  return results;
}

function proxyTable(rows: SteadyRun[]): string[] {
  const out = [`Proxy designs under steady load (median of ${RUNS} x 10 s windows)`, "| design | clients | req/s | p50 ms | p99 ms | failed |", "|---|---|---|---|---|---|"];
  for (const clients of CONCURRENCY) {
    for (const design of [...new Set(rows.map((r) => r.design))]) {
      const rs = rows.filter((r) => r.design === design && r.clients === clients);
      const m = (f: (r: SteadyRun) => number | null) => median(rs.map(f).filter((v): v is number => v !== null));
      out.push(`| ${design} | ${clients} | ${fmt(m((r) => r.rps))} | ${fmt(m((r) => r.p50))} | ${fmt(m((r) => r.p99))} | ${rs.map((r) => r.failed).join(", ")} |`);
    }
  }
  return out;
}

interface DataRun { what: string; seconds: number; mb: number }

async function dataScenarios(): Promise<{ rows: DataRun[]; dumpMb: number; dbMb: number }> {
  const stack = new Stack({ port: TEST_HTTP_PORT, tag: "v1" }).install();
  await stack.up();
  const rows: DataRun[] = [];
  let dumpMb = 0;
  let dbMb = 0;
  try {
    const psql = (sql: string) => stack.compose(["exec", "-T", "db", "psql", "-X", "-q", "-U", "slipway", "-d", "slipway", "-c", sql]);
    log(`generating ~${DB_MB} MB of rows`);
    const n = Math.round((DB_MB * 1024 * 1024) / 110);
    await psql(`INSERT INTO items (name) SELECT md5(g::text) || md5((g*7)::text) FROM generate_series(1, ${n}) g`);
    const size = await stack.compose(["exec", "-T", "db", "psql", "-X", "-tA", "-U", "slipway", "-d", "slipway", "-c", "SELECT pg_database_size('slipway')"]);
    dbMb = Number(size.stdout.trim()) / 1048576;
    const bare = join(stack.dir, "bare.sql");
    for (let i = 0; i < RUNS; i++) {
      log(`data run ${i + 1}/${RUNS}`);
      let t = Date.now();
      const b = await stack.script("backup", ["--keep", "1"]);
      if (b.exitCode !== 0) throw new Error(b.all);
      rows.push({ what: "backup.sh", seconds: (Date.now() - t) / 1000, mb: dbMb });
      const file = b.stdout.trim();
      dumpMb = statSync(file).size / 1048576;

      t = Date.now();
      await execa("sh", ["-c", `docker compose -f docker-compose.prod.yml exec -T db pg_dump -U slipway -d slipway > ${bare}`], { cwd: stack.dir });
      rows.push({ what: "bare pg_dump", seconds: (Date.now() - t) / 1000, mb: dbMb });

      t = Date.now();
      const r = await stack.script("restore", [file, "--yes"]);
      if (r.exitCode !== 0) throw new Error(r.all);
      rows.push({ what: "restore.sh (incl. safety backup)", seconds: (Date.now() - t) / 1000, mb: dbMb });

      await psql("DROP TABLE items; DROP TABLE schema_migrations;");
      t = Date.now();
      await execa("sh", ["-c", `docker compose -f docker-compose.prod.yml exec -T db psql -X -q -U slipway -d slipway < ${bare}`], { cwd: stack.dir });
      rows.push({ what: "bare psql restore", seconds: (Date.now() - t) / 1000, mb: dbMb });
      rmSync(join(stack.dir, "backups"), { recursive: true, force: true });
    }
  } finally {
    await stack.down();
  }
  return { rows, dumpMb, dbMb };
}

/** The guard's figures: from the switch to the new release until the switch back, and what failed meanwhile. */
function guardTable(runs: Run[]): string[] {
  const out = [
    `Bad release (passes /health, answers 500 on POST /api/items), --guard 30: median of ${RUNS}`,
    "| clients | switch to revert s | failed requests (each run) | wall s |",
    "|---|---|---|---|",
  ];
  for (const clients of CONCURRENCY) {
    const rs = runs.filter((r) => r.clients === clients && r.scenario === "bad release, reverted by the guard");
    if (!rs.length) continue;
    const spans = rs.map((r) => phaseSpan(r, "switch", "revert")).filter((v): v is number => v !== null);
    out.push(`| ${clients} | ${spans.length ? fmt(median(spans) / 1000) : "-"} | ${rs.map((r) => r.failed).join(", ")} | ${fmt(median(rs.map((r) => r.wallMs)) / 1000)} |`);
  }
  return out;
}

/** Canary steps: how long each took, and for a bad canary, from its first step to the share taken back. */
function canaryTable(runs: Run[]): string[] {
  const out = [
    `Canary deploys, --canary 10,50: a healthy one (--canary-step 5) and one answering 500 on POST /api/items (--canary-step 20); median of ${RUNS}`,
    "| scenario | clients | 10 % step s | 50 % step s | first step to share 0 s | wall s | failed (each run) |",
    "|---|---|---|---|---|---|---|",
  ];
  const span = (rs: Run[], from: string, to: string) => {
    const v = rs.map((r) => phaseSpan(r, from, to)).filter((x): x is number => x !== null);
    return v.length ? fmt(median(v) / 1000) : "-";
  };
  for (const clients of CONCURRENCY) {
    for (const scenario of ["canary deploy (10 %, 50 %)", "bad canary, taken back"] as const) {
      const rs = runs.filter((r) => r.clients === clients && r.scenario === scenario);
      if (!rs.length) continue;
      out.push(`| ${scenario} | ${clients} | ${span(rs, "canary 10", scenario === "bad canary, taken back" ? "canary back" : "canary 50")} | ${span(rs, "canary 50", "canary passed")} | ${span(rs, "canary 10", "canary back")} | ${fmt(median(rs.map((r) => r.wallMs)) / 1000)} | ${rs.map((r) => r.failed).join(", ")} |`);
    }
  }
  return out;
}

const fmt = (v: number | null, unit = "") => (v === null ? "-" : `${Math.round(v * 10) / 10}${unit}`);

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  await buildImages();
  if (process.env.BENCH_ONLY === "rollback") {
    const runs: Run[] = [];
    for (const clients of CONCURRENCY) runs.push(...(await rollbackScenarios(clients)), ...(await rollbackScenarios(clients, GUARD_BEFORE)));
    const text = rollbackTable(runs).join("\n");
    console.log(text);
    writeFileSync(join(out, "rollback.md"), `${text}\n`);
    return;
  }
  if (process.env.BENCH_ONLY === "guard") {
    const runs: Run[] = [];
    for (const clients of CONCURRENCY) runs.push(...(await guardScenarios(clients)), ...(await guardScenarios(clients, GUARD_BEFORE)));
    const text = judgeTable(runs).join("\n");
    console.log(text);
    writeFileSync(join(out, "guard.md"), `${text}\n`);
    writeFileSync(join(out, "guard.json"), JSON.stringify({ date: new Date().toISOString(), runs: runs.map(({ samples, ...r }) => ({ ...r, samples: samples.length })) }, null, 2));
    return;
  }
  if (process.env.BENCH_ONLY === "clients") {
    const runs: Run[] = [];
    for (const clients of CONCURRENCY) runs.push(...(await clientScenarios(clients)), ...(await clientScenarios(clients, CLIENTS_BEFORE)));
    const text = clientTable(runs).join("\n");
    console.log(text);
    writeFileSync(join(out, "clients.md"), `${text}\n`);
    writeFileSync(join(out, "clients.json"), JSON.stringify({ date: new Date().toISOString(), runs: runs.map(({ samples, ...r }) => ({ ...r, samples: samples.length })) }, null, 2));
    return;
  }
  if (process.env.BENCH_ONLY === "proxy") {
    const text = proxyTable(await proxyDesigns()).join("\n");
    console.log(text);
    writeFileSync(join(out, "proxy.md"), `${text}\n`);
    return;
  }
  // The start_interval comparison is settled (bench/README.md); BENCH_UNTUNED=1 measures it again.
  const runs = [...(await releaseScenarios()), ...(process.env.BENCH_UNTUNED === "1" ? await untunedScenarios(CONCURRENCY[0]!) : [])];
  const data = DB_MB > 0 ? await dataScenarios() : { rows: [], dumpMb: 0, dbMb: 0 };
  const proxyRows = await proxyDesigns();

  const table: string[] = [];
  table.push(`Release scenarios (median of ${RUNS} runs each; latency in ms; wall and serving-100% in s)`);
  table.push("| scenario | clients | ok | wall | new version serving 100% | requests | failed | p50 steady | p99 steady | p50 during | p99 during |");
  table.push("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const clients of CONCURRENCY) {
    for (const scenario of SCENARIOS) {
      const rs = runs.filter((r) => r.clients === clients && r.scenario === scenario);
      if (rs.length === 0) continue;
      const m = (f: (r: Run) => number | null) => {
        const vals = rs.map(f).filter((v): v is number => v !== null);
        return vals.length ? median(vals) : null;
      };
      table.push(
        `| ${scenario} | ${clients} | ${rs.filter((r) => r.ok).length}/${rs.length} | ${fmt(m((r) => r.wallMs / 1000))} | ${fmt(m((r) => (r.servingAllMs === null ? null : r.servingAllMs / 1000)))} | ${fmt(m((r) => r.requests))} | ${rs.map((r) => r.failed).join(", ")} | ${fmt(m((r) => r.steadyP50))} | ${fmt(m((r) => r.steadyP99))} | ${fmt(m((r) => r.rollP50))} | ${fmt(m((r) => r.rollP99))} |`,
      );
    }
  }
  table.push("", ...guardTable(runs), "", ...canaryTable(runs));
  if (data.rows.length) {
    table.push("");
    table.push(`Backup and restore of ${fmt(data.dbMb)} MB (pg_database_size); dump on disk ${fmt(data.dumpMb)} MB; median of ${RUNS}`);
    table.push("| operation | seconds | MB/s | vs bare |");
    table.push("|---|---|---|---|");
    const med = (w: string) => median(data.rows.filter((r) => r.what === w).map((r) => r.seconds));
    for (const [w, bare] of [["backup.sh", "bare pg_dump"], ["bare pg_dump", ""], ["restore.sh (incl. safety backup)", "bare psql restore"], ["bare psql restore", ""]] as const) {
      const s = med(w);
      table.push(`| ${w} | ${fmt(s)} | ${fmt(data.dbMb / s)} | ${bare ? `${fmt(s / med(bare))}x` : "1x"} |`);
    }
  }
  table.push("", ...proxyTable(proxyRows));
  const text = table.join("\n");
  console.log(text);
  writeFileSync(join(out, "latest.json"), JSON.stringify({ date: new Date().toISOString(), runs: runs.map(({ samples, ...r }) => ({ ...r, samples: samples.length })), data }, null, 2));
  writeFileSync(join(out, "latest.md"), `${text}\n`);
  const charted: Scenario[] = ["deploy", `deploy, before (${BEFORE})`, "rollback to the kept release", "bad release, reverted by the guard", "compose-up baseline"];
  const chartRuns = CONCURRENCY.flatMap((c) => charted.map((s) => runs.find((r) => r.clients === c && r.scenario === s)!)).filter(Boolean);
  writeFileSync(join(out, "latency.svg"), renderSvg(chartRuns));
  log(`wrote ${out}/latest.json, latest.md and latency.svg`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
