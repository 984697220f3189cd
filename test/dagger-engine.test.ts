/**
 * The Dagger module as its users run it: the real `dagger` CLI against a real engine (see
 * testenv/dagger-engine.sh), reaching a real sshd on this machine, a real registry and the real
 * host scripts and Docker stack. What only an engine shows is tested here: the function cache
 * (status and rollback run twice with the same arguments), the runtime loading the module, the
 * scan's DB coming from the user's own registry, and what `dagger check` runs.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "./support/database.js";
import { dagger, daggerEngine, type DaggerEngine } from "./support/dagger.js";
import { assertNoFailedRequests, assertOnlyBadWrites } from "./support/diagnose.js";
import { report } from "./support/load.js";
import { serveGitHub } from "./support/fake-github.mjs";
import { pushTrivyDb, registryDigest } from "./support/oci.js";
import { API_IMAGE, buildImages, buildRelease, getJson, Stack } from "./support/stack.js";
import { TestSshd } from "./support/sshd.js";
import { allowedSkip, toolPath } from "./support/tools.js";

const found = daggerEngine();
const skip = allowedSkip("dagger-engine", "skip" in found ? found.skip : undefined);
// The host and registry cases need the engine built here: its mirror is trusted over plain HTTP
// and its network's gateway reaches this machine's sshd.
const hostSkip = skip ?? allowedSkip("dagger-engine-host", (found as DaggerEngine).gateway ? undefined : "the host cases need the engine testenv/dagger-engine.sh builds (a dagger on PATH runs its own engine)");
if (skip) process.stderr.write(`[dagger-engine] SKIPPED, every case: ${skip}\n`);
else if (hostSkip) process.stderr.write(`[dagger-engine] SKIPPED, deploy/rollback/status/publish: ${hostSkip}\n`);
const engine = found as DaggerEngine;

const work = mkdtempSync(join(tmpdir(), "slipway-engine-"));
const FUNCTIONS = ["backup", "build", "ci", "deploy", "kpi", "lint", "publish", "rollback", "scan", "scan-reports", "status", "test"];

/** A copy of the repo committed as a fixture, with `change` applied: what a bad commit looks like. */
async function fixtureCommit(name: string, change: (dir: string) => void): Promise<string> {
  const dir = join(work, name);
  const left = [".git", ".testenv", "dist", "bench/results"];
  cpSync(repoRoot, dir, {
    recursive: true,
    filter: (src) => {
      const rel = relative(repoRoot, src);
      return !rel.split("/").includes("node_modules") && !left.some((p) => rel === p || rel.startsWith(`${p}/`));
    },
  });
  change(dir);
  const git = (...args: string[]) => execa("git", ["-c", "user.name=fixture", "-c", "user.email=fixture@example.invalid", ...args], { cwd: dir });
  await git("init", "-q");
  await git("add", "-A");
  await git("commit", "-qm", name);
  return dir;
}

/** Trivy DBs in the registry: the repository as the engine's containers name it. */
async function dbRepository(name: string, severity: string): Promise<string> {
  const cache = join(work, `db-${name}`);
  const spec = { advisories: [{ os: "debian 12", pkg: "zlib", id: `CVE-2099-${severity}`, fixed: "1:9.9.9-1", severity }] };
  await execa(toolPath("trivydb"), ["-cache", cache], { input: JSON.stringify(spec) });
  await pushTrivyDb(engine.hostRegistry!, `slipway-test/trivy-db-${name}`, "2", cache);
  return `${engine.engineRegistry}/slipway-test/trivy-db-${name}:2`;
}

describe.skipIf(Boolean(skip))("the module on a real Dagger engine", () => {
  let cleanDb = "";
  let highDb = "";
  // The scan's settings are the module's, given once before the function.
  const scanFlags = (db: string) => [`--db-repository=${db}`, "--db-repository-insecure"];

  beforeAll(async () => {
    if (engine.hostRegistry) {
      cleanDb = await dbRepository("medium", "MEDIUM");
      highDb = await dbRepository("high", "HIGH");
    }
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("`dagger functions` lists every function with its doc", async () => {
    const r = await dagger(engine, ["functions"]);
    expect(r.exitCode, r.all).toBe(0);
    for (const name of FUNCTIONS) expect(r.stdout, name).toMatch(new RegExp(`^${name}\\s+\\S.{15,}`, "m"));
    console.log(`dagger functions: ${r.seconds.toFixed(0)} s`);
  });

  it("`dagger check -l` lists lint, the unit tests and the scan gate", async () => {
    const r = await dagger(engine, ["check", "-l"]);
    expect(r.exitCode, r.all).toBe(0);
    for (const name of ["lint", "test", "scan"]) expect(r.stdout, name).toMatch(new RegExp(`^slipway:${name}\\s`, "m"));
    expect(r.stdout).not.toMatch(/^slipway:(deploy|rollback|publish|status|backup|ci)\b/m);
  });

  it.skipIf(Boolean(hostSkip))("`dagger call ci` passes on the repo, scanning with the DB from the user's registry", async () => {
    const r = await dagger(engine, ["call", ...scanFlags(cleanDb), "ci"]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/lint: passed/);
    expect(r.stdout).toMatch(/unit tests: passed \(.*\d+ passed/);
    expect(r.stdout).toMatch(/scan: passed \(HIGH,CRITICAL\)/);
    console.log(`dagger call ci: ${r.seconds.toFixed(0)} s`);
  });

  it.skipIf(Boolean(hostSkip))("`dagger call ci` fails on a HIGH finding from that DB, naming it", async () => {
    const r = await dagger(engine, ["call", ...scanFlags(highDb), "ci"]);
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/ci failed: scan\b/);
    expect(r.all).toMatch(/image blocked by the scan: 1 HIGH\/CRITICAL finding\(s\): CVE-2099-HIGH \(HIGH\) in zlib/);
  });

  it.skipIf(Boolean(hostSkip))("`dagger call scan` with a pre-warmed cache scans offline with that DB", async () => {
    // The HIGH DB pushed above, as a directory: no registry is asked.
    const r = await dagger(engine, ["call", `--trivy-cache=${join(work, "db-high")}`, "scan"]);
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/image blocked by the scan: 1 HIGH\/CRITICAL finding\(s\): CVE-2099-HIGH \(HIGH\) in zlib/);
    expect(r.all).toMatch(/--skip-db-update/);
  });

  it.skipIf(Boolean(hostSkip))("`dagger call ci` on a commit with a failing unit test and a migration squawk rejects names both; `migration-plan` shows that SQL", async () => {
    const dir = await fixtureCommit("broken", (d) => {
      writeFileSync(join(d, "src/fixture-fails.test.ts"), 'import { expect, it } from "vitest";\nit("fixture: a broken promise", () => expect(1 + 1).toBe(3));\n');
      writeFileSync(join(d, "db/migrations/29990101000000_index_name.sql"), "-- migrate:up\nCREATE INDEX items_name_idx ON items (name);\n\n-- migrate:down\nDROP INDEX items_name_idx;\n");
    });
    const r = await dagger(engine, ["call", ...scanFlags(cleanDb), "ci"], { cwd: dir });
    expect(r.exitCode).not.toBe(0);
    // Every gate runs to its end: one run reports both reasons.
    expect(r.all).toMatch(/ci failed: lint, unit tests\b/);
    expect(r.all).toMatch(/fixture: a broken promise/);
    expect(r.all).toMatch(/require-concurrent-index-creation/);

    const plan = await dagger(engine, ["call", "migration-plan", "--since=20261123000100", "contents"], { cwd: dir });
    expect(plan.exitCode, plan.all).toBe(0);
    expect(plan.stdout).toMatch(/^-- Migration plan: 1 pending migration\(s\) after 20261123000100/m);
    expect(plan.stdout).toMatch(/^-- {3}29990101000000_index_name\.sql:.*require-concurrent-index-creation/m);
    expect(plan.stdout).toContain("-- ==== 29990101000000_index_name.sql ====\nCREATE INDEX items_name_idx ON items (name);");
  });

  it.skipIf(Boolean(hostSkip))("`dagger check` runs lint, test and scan with no flags, the scan's DB mirror named in the commit's trivy.yaml", async () => {
    // Without the mirror Trivy would go to ghcr.io, which no engine here can reach: passing proves it was read.
    const dir = await fixtureCommit("trivy-yaml", (d) => writeFileSync(join(d, "trivy.yaml"), `insecure: true\ndb:\n  repository: ${cleanDb}\n`));
    const r = await dagger(engine, ["check"], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    for (const name of ["lint", "test", "scan"]) expect(r.all, name).toMatch(new RegExp(`\\b${name}\\b`));
  });

  it.skipIf(Boolean(hostSkip))("`dagger call publish` pushes the scanned image and returns it pinned by the digest the registry serves", async () => {
    const tag = `engine-${Date.now()}`;
    const r = await dagger(engine, [
      "call", ...scanFlags(cleanDb), "publish", `--registry=${engine.engineRegistry}`, "--repository=slipway/api", "--username=ci",
      "--password=env:SLIPWAY_TEST_REGISTRY_PASSWORD", `--tag=${tag}`,
    ], { env: { SLIPWAY_TEST_REGISTRY_PASSWORD: "unused-by-this-registry" } });
    expect(r.exitCode, r.all).toBe(0);
    const ref = r.stdout.trim().split("\n").at(-1)!;
    // Pinned by digest, no tag: what deploy promotes, whatever the tag points at later.
    expect(ref).toMatch(new RegExp(`^${engine.engineRegistry!.replace(/\./g, "\\.")}/slipway/api@sha256:[0-9a-f]{64}$`));
    expect(ref.split("@")[1]).toBe(await registryDigest(engine.hostRegistry!, "slipway/api", tag));
  });

  describe.skipIf(Boolean(hostSkip)).sequential("deploy, rollback and status over SSH to this machine", () => {
    let sshd: TestSshd;
    let stack: Stack;
    const remoteDir = join(work, "host");
    const hostArgs = () => [
      `--host=${engine.gateway}`, `--port=${sshd.port}`, "--user=root",
      `--ssh-key=file:${sshd.keyPath}`, `--known-hosts=file:${sshd.knownHostsPath}`, `--dir=${remoteDir}`,
    ];
    const call = (fn: string, ...args: string[]) => dagger(engine, ["call", ...hostArgs(), fn, ...args], { env: { SLACK_HOOK: slack.url } });
    const slack = new SlackReceiver();
    // GitHub's Deployments API as the rollback's mark reaches it from inside the engine.
    const ghState = join(work, "github.json");
    let github: Awaited<ReturnType<typeof serveGitHub>> | undefined;
    const history = () => stack.read("releases.log").split("\n").filter((l) => l && !l.startsWith("#"));

    beforeAll(async () => {
      await buildImages();
      await buildRelease("v3");
      // "mislabeled": v2's image pushed as another tag, so /health reports a version that is not the tag.
      for (const [v, image] of [["v1", "v1"], ["v2", "v2"], ["v3", "v3"], ["mislabeled", "v2"], ["brokenwrites", "brokenwrites"]]) {
        const ref = `${engine.hostRegistry}/slipway/api:${v}`;
        await execa("docker", ["tag", `${API_IMAGE}:${image}`, ref]);
        await execa("docker", ["push", "-q", ref]);
        // The deploy must really pull what the registry holds.
        await execa("docker", ["rmi", ref]);
      }
      sshd = new TestSshd(2223, ["127.0.0.1", engine.gateway!]);
      writeFileSync(ghState, "{}");
      writeFileSync(`${ghState}.calls`, "");
      writeFileSync(join(work, "gh-token"), "fake-token");
      [github] = await Promise.all([serveGitHub(ghState, engine.gateway!, "fake-token"), sshd.start(), slack.start(engine.gateway!)]);
      // The smoke test reaches the site as users do, through its public address: here, from the engine's containers.
      stack = new Stack({ port: 8002, tag: "v1", apiImage: `${engine.hostRegistry}/slipway/api`, dir: remoteDir, bind: "0.0.0.0" });
      cpSync(join(repoRoot, ".env.example"), join(remoteDir, ".env.example"));
      stack.writeEnv();
    });
    afterAll(async () => {
      await stack?.down();
      await sshd?.stop();
      await slack.stop();
      await github?.close();
    });

    it("`dagger call deploy` ships the bundle and starts v1 from the registry", async () => {
      // deploy returns a typed Release: a field selected after the flags prints just that.
      const r = await call("deploy", "--tag=v1", "summary");
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stdout.trim()).toMatch(/^deployed v1( \(sha256:[0-9a-f]{64}\))?, slot [ab]; before: \S+$/);
      expect(existsSync(join(remoteDir, "scripts/deploy.sh"))).toBe(true);
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
    });

    it("`dagger call deploy --canary` rolls v1 to v2 through two canary steps under reads and writes with no failed request", async () => {
      const { result, load } = await stack.underLoad(8, 600, () => call("deploy", "--tag=v2", "--canary=10,50", "--canary-step=1", "--canary-min-requests=5", "verdict"));
      report("dagger call deploy --canary v1->v2", load);
      expect(result.exitCode, result.all).toBe(0);
      // Each step's verdict with its figures, from the host's result line.
      expect(result.stdout.trim()).toMatch(/^canary 10 %: passed \(\d+ requests, 0 5xx\); canary 50 %: passed \(\d+ requests, 0 5xx\)/);
      expect(load.sent).toBeGreaterThan(100);
      assertNoFailedRequests("dagger call deploy --canary", load, stack.logs);
      expect(load.samples.some((s) => s.version === "v2")).toBe(true);
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v2");
    });

    it("`dagger call deploy --digest --smoke-url --slack-webhook` runs that digest, passes the journey and tells the channel", async () => {
      const digest = await registryDigest(engine.hostRegistry!, "slipway/api", "v3");
      const r = await call("deploy", "--tag=v3", `--digest=${digest}`, `--smoke-url=http://${engine.gateway}:${stack.port}`,
        "--slack-webhook=env:SLACK_HOOK", "--environment=test", "--operator=ci-bot", "--changelog=fix the thing\nadd the other", "log");
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stdout).toContain("ok   POST /api/items");
      expect(r.stdout).toContain("smoke test passed");
      expect(stack.read(".env")).toContain(`API_TAG=v3@${digest}`);
      expect(slack.messages.map((m) => m.split("\n")[0])).toEqual(["Deploy of v3 to test started (by ci-bot)", "Deploy of v3 to test succeeded (by ci-bot)"]);
      expect(slack.messages[1]).toContain(`digest: ${digest}`);
      expect(slack.messages[1]).toContain("• fix the thing\n• add the other");
      expect(r.all).not.toContain(slack.url);
    });

    it("a release that fails its smoke test is rolled back automatically, and the channel hears why", async () => {
      slack.messages.length = 0;
      const r = await call("deploy", "--tag=mislabeled", `--smoke-url=http://${engine.gateway}:${stack.port}`, "--smoke-wait=3", "--slack-webhook=env:SLACK_HOOK");
      expect(r.exitCode).not.toBe(0);
      expect(r.all).toContain("smoke test failed at GET /health: reports version v2, not mislabeled");
      expect(r.all).toContain("rolled back automatically");
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v3");
      expect(history().at(-1)!.split("\t").slice(1, 3)).toEqual(["rollback", "v3"]);
      expect(slack.messages.at(-1)).toMatch(/^Deploy of mislabeled to the host FAILED\n[^]*reason: .*rolled back automatically/);
    });

    it("a release whose writes fail behind a passing /health is reverted by the guard: the call fails and the channel hears the figures", async () => {
      slack.messages.length = 0;
      const { result, load } = await stack.underLoad(8, 600, () => call("deploy", "--tag=brokenwrites", "--guard=12", "--slack-webhook=env:SLACK_HOOK"));
      report("dagger call deploy of a bad release, reverted by the guard", load);
      expect(result.exitCode).not.toBe(0);
      expect(result.all).toMatch(/rolled back automatically: 5xx \d+\.\d % > 1 %/);
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v3");
      expect(history().at(-1)!.split("\t").slice(1, 3)).toEqual(["guard-rollback", "v3"]);
      // Slack text is escaped (notify.ts slackEscape): the channel shows "&gt;" as ">".
      expect(slack.messages.at(-1)).toMatch(/^Deploy of brokenwrites to the host FAILED\n[^]*reason: rolled back automatically: 5xx \d+\.\d % &gt; 1 %/);
      assertOnlyBadWrites("dagger call deploy of a bad release", load, stack.logs);
    });

    it("`dagger call rollback` and `status`, each run twice with the same arguments, reach the host every time", async () => {
      // Walk back from v3 through the deploys (the failed one was rolled back): v2, then v1.
      const before = history().length;
      const status1 = await call("status");
      expect(status1.exitCode, status1.all).toBe(0);
      expect(status1.stdout).toMatch(/release: .*slipway\/api:v3/);
      // The guard's bad release above failed its writes: the KPI view names the target it missed.
      const kpi = await call("kpi", "--since=10m");
      expect(kpi.exitCode, kpi.all).toBe(0);
      expect(kpi.stdout).toMatch(/^KPI since 10m/m);
      expect(kpi.stdout).toMatch(/^slot [ab] \(api:v3(@sha256:[0-9a-f]{64})?, serving\): \d+ requests/m);
      expect(kpi.stdout).toMatch(/^slot [ab] \(api:brokenwrites, gone, idle\): \d+ requests, [1-9]\d* errors .*MISSED error rate/m);

      const first = await call("rollback");
      expect(first.exitCode, first.all).toBe(0);
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v2");
      // On-call's way: the host set once in an environment's .env (README: "On-call setup"), no
      // flags; with the GitHub context there too, the rollback marks the deployment it undoes.
      const env = join(work, "environments", "staging");
      mkdirSync(env, { recursive: true });
      writeFileSync(join(env, ".env"), [
        `SLIPWAY_HOST=${engine.gateway}`, `SLIPWAY_PORT=${sshd.port}`, "SLIPWAY_USER=root", `SLIPWAY_SSHKEY=file://${sshd.keyPath}`,
        `SLIPWAY_KNOWNHOSTS=file://${sshd.knownHostsPath}`, `SLIPWAY_DIR=${remoteDir}`, "SLIPWAY_ROLLBACK_ENVIRONMENT=staging",
        `SLIPWAY_ROLLBACK_GITHUBTOKEN=file://${join(work, "gh-token")}`, "SLIPWAY_ROLLBACK_GITHUBREPOSITORY=acme/shop",
        `SLIPWAY_ROLLBACK_GITHUBAPI=${github!.url}`, "",
      ].join("\n"));
      const served = seedDeployments(ghState, "staging", ["1", "2"]);
      const bare = (fn: string) => dagger(engine, ["-m", repoRoot, "call", fn], { cwd: env });
      const noFlags = await bare("status");
      expect(noFlags.exitCode, noFlags.all).toBe(0);
      expect(noFlags.stdout).toMatch(/release: .*slipway\/api:v2/);
      const second = await bare("rollback");
      expect(second.exitCode, second.all).toBe(0);
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
      expect(second.stdout).toContain(`marked GitHub deployment ${served} (${"2".repeat(40)}, sha256:${"2".repeat(64)}) rolled back`);
      const marked = JSON.parse(readFileSync(ghState, "utf8")).deployments.find((d: { id: number }) => d.id === served);
      expect(marked.statuses.at(-1)).toMatchObject({ state: "failure", description: "rolled back: by dagger call rollback" });
      expect(history().slice(before).map((l) => l.split("\t").slice(1, 3).join(" "))).toEqual(["rollback v2", "rollback v1"]);

      const status2 = await call("status");
      expect(status2.exitCode, status2.all).toBe(0);
      expect(status2.stdout).toMatch(/release: .*slipway\/api:v1/);
      expect(status2.stdout).not.toBe(status1.stdout);
    });

    it("`dagger call deploy` to a host whose key is not the known one fails and runs nothing", async () => {
      const untouched = join(work, "never-shipped");
      const r = await dagger(engine, [
        "call", `--host=${engine.gateway}`, `--port=${sshd.port}`, "--user=root", `--ssh-key=file:${sshd.keyPath}`,
        `--known-hosts=file:${sshd.wrongKnownHostsPath}`, `--dir=${untouched}`, "deploy", "--tag=v2",
      ]);
      expect(r.exitCode).not.toBe(0);
      expect(r.all).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
      expect(existsSync(untouched)).toBe(false);
      expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
    });
  });
});

/** Staging deployments of the given commits (oldest first), each with a success status; returns the newest's id. */
function seedDeployments(stateFile: string, environment: string, commits: string[]): number {
  const state = { deployments: [] as object[], nextId: 500 };
  for (const c of commits) {
    const id = state.nextId++;
    state.deployments.push({ id, sha: c.repeat(40), task: "deploy:slipway", environment, payload: { digest: `sha256:${c.repeat(64)}` }, production_environment: false,
      statuses: [{ id: state.nextId++, state: "success", created_at: "2026-12-01T00:00:00Z", description: "" }] });
  }
  writeFileSync(stateFile, JSON.stringify(state));
  return state.nextId - 2;
}

/** A Slack incoming webhook on this machine, recording each message's text. */
class SlackReceiver {
  readonly messages: string[] = [];
  private server?: Server;
  url = "";

  async start(host: string): Promise<void> {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        this.messages.push(JSON.parse(body).text);
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, host, r));
    this.url = `http://${host}:${(this.server.address() as AddressInfo).port}/services/T000/B000/not-a-real-secret`;
  }

  async stop(): Promise<void> {
    await new Promise((r) => this.server?.close(r));
  }
}
