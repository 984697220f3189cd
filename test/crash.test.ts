/**
 * Crash safety on a real Docker engine: deploy.sh and rollback.sh SIGKILLed (the whole process
 * group, as an OOM kill or a cancelled job does) when their log reaches each step, under reads
 * and writes; then what anyone runs next, `docker compose up -d --wait`; then watching; then the
 * next release. No request fails from the kill on, and one release serves, with the one before
 * it kept in the idle slot. Also: a
 * dropped SSH link mid-deploy, and two users sharing the lock.
 */
import { chmodSync, chownSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remoteScriptCommand, sshArgv } from "../dagger/src/commands/ssh.js";
import { assertNoFailedRequests } from "./support/diagnose.js";
import { report, startLoad, type LoadResult } from "./support/load.js";
import { buildImages, getJson, killAt, Stack } from "./support/stack.js";
import { TestSshd } from "./support/sshd.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLIENTS = 8;
/** How long the operator watches after `up -d --wait`: the 30 s where its table measured, less elsewhere. */
const LONG_WATCH_S = 30;
const SHORT_WATCH_S = 5;

/**
 * status.sh's plan ("next:" lines) against what the next command then did ("repair:" lines), word
 * for word; a leftover's health may move on between the two (a new container finishing its start),
 * so that one word is left out. The rehearsal copies are status's own line: only deploy and
 * repair.sh drop them.
 */
function expectPlanFollowed(status: string, next: string): void {
  const words = (l: string) => l.replace(/, [a-z]+\)$/, ")");
  const planned = [...status.matchAll(/^next: +(.*)$/gm)].map((m) => words(m[1]!));
  const done = [...next.matchAll(/\] repair: (.*)$/gm)].map((m) => words(m[1]!)).filter((l) => !l.startsWith("dropping the rehearsal database"));
  expect(done, `status said:\n${status}\nthe next command did:\n${next}`).toEqual(planned);
}

function assertNoFailures(label: string, load: LoadResult, stack: Stack): void {
  report(label, load);
  expect(load.sent, label).toBeGreaterThan(50);
  assertNoFailedRequests(label, load, stack.logs);
}

describe.sequential("a release killed at any step never becomes an outage", () => {
  const stack = new Stack({ port: 8004, tag: "v1" });
  const other = (tag: string) => (tag === "v1" ? "v2" : "v1");
  const current = () => stack.read(".env").match(/^API_TAG=(.*)$/m)![1]!;

  beforeAll(async () => {
    await buildImages();
    stack.install();
    await stack.up();
    // A history with two releases, so rollback has somewhere to go.
    expect((await stack.script("deploy", ["--no-pull", "--skip-backup", "v2"])).exitCode).toBe(0);
  });
  afterAll(async () => {
    await stack.down();
  });

  const cases: [string, string, RegExp, number][] = [
    ["deploy", "pre-deploy backup", /pre-deploy backup/, SHORT_WATCH_S],
    ["deploy", "rehearsing migrations", /rehearsing the migrations/, SHORT_WATCH_S],
    ["deploy", "running migrations", /running migrations/, SHORT_WATCH_S],
    ["deploy", "starting api", /starting api:/, LONG_WATCH_S],
    ["deploy", "waiting for health", /waiting up to/, SHORT_WATCH_S],
    ["deploy", "recording in .env", /recording api:/, SHORT_WATCH_S],
    ["deploy", "switching the proxy", /switching the proxy/, LONG_WATCH_S],
    ["deploy", "guard window", /guard: watching what users get/, SHORT_WATCH_S],
    ["deploy", "canary step", /canary now: slot [ab] takes 10 %/, SHORT_WATCH_S],
    ["deploy", "old release kept", /stays warm in slot/, LONG_WATCH_S],
    ["rollback", "resuming the kept release", /is kept in slot/, SHORT_WATCH_S],
    ["rollback", "switching the proxy", /switching the proxy/, SHORT_WATCH_S],
    ["rollback", "old release kept", /stays warm in slot/, SHORT_WATCH_S],
  ];

  it.each(cases)("%s killed at %j: `up -d --wait`, watching and the next deploy drop no request", async (script, step, at, watch) => {
    const load = startLoad({ baseUrl: stack.url, clients: CLIENTS, maxSeconds: 300 });
    await sleep(1_000);
    // The backup and the rehearsal run only where the kill lands on or before them; a migration
    // step needs a release with a migration the database lacks (deploy skips both otherwise).
    const early = ["pre-deploy backup", "rehearsing migrations", "running migrations"].includes(step);
    const release = /migrations/.test(step) ? "altermigration" : other(current());
    const guard = step === "guard window" ? ["--guard", "20"] : step === "canary step" ? ["--canary", "10", "--canary-step", "30"] : [];
    const args = script === "deploy" ? ["--no-pull", ...(early ? [] : ["--skip-backup"]), ...guard, release] : ["--no-pull"];
    // A new release starts a new container; the alternating v1/v2 would find the one kept.
    if (script === "deploy") await stack.dropKept();
    const run = await killAt(stack, script, args, at);
    expect(run.killed, run.log).toBe(true);

    const up = await stack.compose(["up", "-d", "--wait", "--wait-timeout", "120"], { reject: false });
    expect(up.exitCode, up.stdout).toBe(0);
    await sleep(watch * 1000);
    const status = await stack.script("status");
    // A locked command that is not the repair (a backup) changes nothing of the plan: the phase
    // and the killed operation's note are not its to clear (a backup erased `reverting` before).
    const plan = (out: string) => out.split("\n").filter((l) => /^(phase|DRIFT|drift|next): /.test(l));
    const backup = await stack.script("backup");
    expect(backup.exitCode, backup.all).toBe(0);
    expect(plan((await stack.script("status")).stdout), `status before the backup:\n${status.stdout}`).toEqual(plan(status.stdout));
    // A canary's share outlives the kill (and `up -d`): status names it until the next command takes it back.
    if (step === "canary step") expect(status.stdout).toMatch(/DRIFT: +the proxy still gives slot [ab] 10 % of requests/);
    // Cut off in its guard window, the new release was never fully judged: the release before
    // stays warm (status names it), and the repair records the new one as unjudged.
    const replaced = stack.read("releases.log").trim().split("\n").at(-1)!.split("\t")[2]!;
    if (step === "guard window") expect(status.stdout).toMatch(new RegExp(`^kept: +api:${replaced}\\S* warm in slot [ab] `, "m"));
    const next = await stack.script("deploy", ["--no-pull", "--skip-backup", other(current())]);
    if (step === "guard window") expect(next.all).toMatch(/repair: record the deploy of .*; its guard window was cut off: recorded as never fully judged, the release before kept warm/);
    if (step === "canary step") expect(next.all).toMatch(/repair: take back the canary share an interrupted deploy left/);
    expectPlanFollowed(status.stdout, next.all);
    await sleep(1_000);
    const result = await load.stop();

    expect(next.exitCode, next.all).toBe(0);
    assertNoFailures(`${script} killed at ${at}`, result, stack);
    // The release the next deploy replaced is the one kept.
    await stack.expectOneRelease(stack.read("releases.log").trim().split("\n").at(-1)!.split("\t")[4]!);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe(current());
    const after = await stack.script("status");
    expect(after.stdout, after.stdout).toContain("drift:     none");
    expect(after.stdout).toMatch(/^phase: +idle$/m);
    expect(after.stdout).not.toMatch(/^canary:/m);
    // Nor a rehearsal's copy of the database.
    const copies = await stack.compose(["exec", "-T", "db", "psql", "-U", "slipway", "-d", "postgres", "-Atc", "SELECT datname FROM pg_database WHERE datname LIKE 'slipway_rehearsal_%'"]);
    expect(copies.stdout.trim()).toBe("");
    // What on-call saw before the next deploy: drift named with its repair, or nothing to repair.
    expect(status.stdout).toMatch(/drift: {5}none|repair: {4}scripts\/repair\.sh/);
  });

  it("a deploy killed mid-roll is named by status.sh, and repair.sh alone makes the host consistent", async () => {
    const before = current();
    const run = await killAt(stack, "deploy", ["--no-pull", "--skip-backup", other(before)], /switching the proxy/);
    expect(run.killed).toBe(true);
    const status = await stack.script("status");
    expect(status.stdout).toMatch(/DRIFT: +an operation was interrupted before it finished: .*op=deploy:/);
    // .env named the new release before the kill: the plan carries it forward and keeps the old.
    expect(status.stdout).toMatch(/^next: +point the proxy at slot [ab] \(.*, the release \.env names\)/m);
    expect(status.stdout).toMatch(/^next: +record the deploy of v[12], which serves/m);
    expect(status.stdout).toContain("repair:    scripts/repair.sh");
    expect(status.stdout).toMatch(/^phase: +(switched|keeping) \(deploy to api:/m);
    const repair = await stack.script("repair");
    expect(repair.exitCode, repair.all).toBe(0);
    expectPlanFollowed(status.stdout, repair.all);
    // .env named the new release before the kill: it is carried forward, and the old one kept.
    await stack.expectOneRelease(before);
    expect((await stack.script("status")).stdout).toContain("drift:     none");
    // The history names what serves, so rollback still walks back correctly.
    const last = stack.read("releases.log").trim().split("\n").at(-1)!.split("\t");
    expect(last[2]).toBe(current());
  });

  it("a guard switch-back killed half-way: the next command keeps the old release, not the bad one", async () => {
    const before = current();
    const load = startLoad({ baseUrl: stack.url, clients: CLIENTS, maxSeconds: 120 });
    const run = await killAt(stack, "deploy", ["--no-pull", "--skip-backup", "--guard", "30", "brokenwrites"], /switched the proxy back to slot/);
    await load.stop();
    expect(run.killed, run.log).toBe(true);
    const status = await stack.script("status");
    expect(status.stdout).toMatch(/^phase: +reverting \(deploy to api:brokenwrites/m);
    const repair = await stack.script("repair");
    expect(repair.exitCode, repair.all).toBe(0);
    expectPlanFollowed(status.stdout, repair.all);
    expect(current()).toBe(before);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe(before);
    await stack.expectOneRelease(null);
    expect((await stack.script("status")).stdout).toContain("drift:     none");
  });

  it("a reboot (the engine's containers restarted) comes back serving the recorded release", async () => {
    const recorded = current();
    await stack.compose(["restart"]);
    await stack.compose(["up", "-d", "--wait", "--wait-timeout", "120"]);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe(recorded);
    await stack.expectOneRelease("any");
  });

  it("with the database down, a deploy fails with a clear error and changes nothing", async () => {
    const before = current();
    const containers = (await stack.apiContainers()).sort();
    await stack.compose(["stop", "db"]);
    const r = await stack.script("deploy", ["--no-pull", "--skip-backup", other(before)]);
    await stack.compose(["up", "-d", "--wait", "--wait-timeout", "120"]);
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/the database \(db service\) is not running, so nothing was changed: start it with/);
    expect(current()).toBe(before);
    expect((await stack.apiContainers()).sort()).toEqual(containers);
  });
});

describe.sequential("across users and links", () => {
  const stack = new Stack({ port: 8005, tag: "v1" });
  const sshd = new TestSshd(2224);
  const USER = "slipwaytest";

  beforeAll(async () => {
    await buildImages();
    stack.install();
    await stack.up();
    await sshd.start();
    await execa("bash", ["-c", `id ${USER} >/dev/null 2>&1 || useradd --create-home --groups docker ${USER}`]);
    // The deploy user owns the project directory, as on a real host; root releases there too.
    await execa("chown", ["-R", `${USER}:${USER}`, stack.dir]);
    chmodSync(stack.dir, 0o2770);
  });
  afterAll(async () => {
    await stack.down();
    await sshd.stop();
  });

  const asUser = (args: string[]) =>
    execa("runuser", ["-u", USER, "--", "env", `HOME=/home/${USER}`, "bash", ...args], { cwd: stack.dir, reject: false, all: true, env: { SLIPWAY_LOCK_FILE: "" } });

  it("root and the deploy user share one lock, whoever created it", async () => {
    // Root's deploy creates the lock file and holds it; the deploy user is refused, and sees it held.
    const rootDeploy = execa("bash", ["scripts/deploy.sh", "--no-pull", "--skip-backup", "v2"], { cwd: stack.dir, reject: false, all: true, env: { SLIPWAY_LOCK_FILE: "" } });
    const lock = join(stack.dir, ".deploy.lock");
    for (let i = 0; i < 300 && !(existsSync(lock) && readFileSync(lock, "utf8").includes("op=deploy:v2")); i++) await sleep(100);
    const refused = await asUser(["scripts/deploy.sh", "--no-pull", "v1"]);
    const status = await asUser(["scripts/status.sh"]);
    const done = await rootDeploy;
    expect(done.exitCode, done.all).toBe(0);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.all).toMatch(/another release operation holds the deploy lock \(pid=\d+ user=root op=deploy:v2/);
    expect(status.stdout).toMatch(/lock: +held \(pid=\d+ user=root op=deploy:v2/);
    // Then the deploy user releases through the same root-created lock file.
    const mine = await asUser(["scripts/deploy.sh", "--no-pull", "--skip-backup", "v1"]);
    expect(mine.exitCode, mine.all).toBe(0);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
  });

  it("a release record that cannot be written (a full disk, a wrong owner) fails the command instead of printing success", async () => {
    // Root's file, read-only: the deploy user's append fails as it would on a full disk.
    const history = join(stack.dir, "releases.log");
    chownSync(history, 0, 0);
    chmodSync(history, 0o444);
    const r = await asUser(["scripts/deploy.sh", "--no-pull", "--skip-backup", "v2"]);
    chmodSync(history, 0o664);
    expect(r.exitCode, r.all).not.toBe(0);
    expect(r.all).toMatch(/the release is live but could not be recorded in .*releases\.log.*scripts\/repair\.sh/);
    expect(r.all).not.toMatch(/deployed v2/);
    // repair.sh writes the missing record once the file is writable again.
    expect((await stack.script("repair")).exitCode).toBe(0);
    expect(stack.read("releases.log").trim().split("\n").at(-1)!.split("\t")[2]).toBe("v2");
  });

  it("a deploy whose SSH link drops mid-roll runs to the end, with 0 failed requests and its log on the host", async () => {
    const target = { host: "127.0.0.1", user: "root", port: sshd.port, keyPath: sshd.keyPath, knownHostsPath: sshd.knownHostsPath };
    const logBefore = stack.read("slipway.log").length;
    const logSince = () => stack.read("slipway.log").slice(logBefore);
    // A new container, so the roll has a wait to drop the link in (a kept release switches at once).
    await stack.dropKept();
    const load = startLoad({ baseUrl: stack.url, clients: CLIENTS, maxSeconds: 300 });
    await sleep(1_000);
    const [cmd, ...args] = sshArgv(target, remoteScriptCommand({ dir: stack.dir, script: "deploy", tag: "v1", args: ["--no-pull", "--skip-backup"] }));
    const ssh = execa(cmd!, args, { reject: false, all: true });
    let seen = "";
    ssh.all!.on("data", (c: Buffer) => {
      seen += c.toString();
      if (/waiting up to/.test(seen)) ssh.kill("SIGKILL");
    });
    await ssh;
    expect(seen).toMatch(/waiting up to/);
    expect(seen).not.toMatch(/deployed v1/);
    // The remote deploy goes on without its client: wait for it to release the lock.
    for (let i = 0; i < 600 && !logSince().match(/\[deploy\] \[\d+s\] deployed v1/); i++) await sleep(200);
    await sleep(1_000);
    const result = await load.stop();
    // The log on the host has the whole run, the steps after the link dropped included.
    expect(logSince()).toMatch(/waiting up to[\s\S]*switching the proxy[\s\S]*deployed v1/);
    expect(stack.read(".env")).toMatch(/^API_TAG=v1$/m);
    assertNoFailures("deploy with its SSH link dropped", result, stack);
    expect((await stack.script("status")).stdout).toContain("drift:     none");
  });
});
