/**
 * The exact command lines the Dagger `deploy`/`rollback`/`status` functions send, run for real:
 * the shipping pipeline and ssh against a real sshd on 127.0.0.1 (host key verified against a
 * generated known_hosts), driving the real scripts against a real Docker stack that pulls its
 * images from a real registry.
 */
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEPLOY_BUNDLE, remoteScriptCommand, shipArgv, sshArgv, type ScriptCall, type SshTarget, stagingDir } from "../dagger/src/commands/ssh.js";
import { shellQuote } from "../dagger/src/commands/shell.js";
import { repoRoot } from "./support/database.js";
import { registryDigest } from "./support/oci.js";
import { buildImages, buildRelease, getJson, Stack } from "./support/stack.js";
import { TestRegistry, TestSshd } from "./support/sshd.js";

const sshd = new TestSshd(2222);
const registry = new TestRegistry(5000);
const remoteDir = mkdtempSync(join(tmpdir(), "slipway-remote-"));
const stack = new Stack({ port: 8001, tag: "v1", apiImage: `127.0.0.1:5000/slipway/api`, dir: remoteDir });

const target = (): SshTarget => ({ host: "127.0.0.1", user: "root", port: sshd.port, keyPath: sshd.keyPath, knownHostsPath: sshd.knownHostsPath });

async function run(argv: string[]) {
  const [cmd, ...args] = argv;
  const r = await execa(cmd!, args, { reject: false, all: true, env: { SLIPWAY_LOCK_FILE: join(remoteDir, ".deploy.lock") } });
  return { exitCode: r.exitCode ?? -1, all: String(r.all) };
}

/** What `dagger call deploy` runs: stage the bundle, then the staged script, which installs it. */
async function daggerDeploy(tag: string, from = repoRoot, who: Pick<ScriptCall, "operator" | "approver"> = {}) {
  const bundle = stagingDir(randomUUID());
  const ship = await run(shipArgv(target(), from, remoteDir, bundle));
  if (ship.exitCode !== 0) return ship;
  return run(sshArgv(target(), remoteScriptCommand({ dir: remoteDir, script: "deploy", tag, bundle, args: ["--timeout", "60"], ...who })));
}

const lastRecord = () => readFileSync(join(remoteDir, "releases.log"), "utf8").trimEnd().split("\n").at(-1)!.split("\t");
const envTag = () => /^API_TAG=(.*)$/m.exec(readFileSync(join(remoteDir, ".env"), "utf8"))?.[1];

const remote = (call: Omit<ScriptCall, "dir">) => run(sshArgv(target(), remoteScriptCommand({ dir: remoteDir, ...call })));

beforeAll(async () => {
  await buildImages();
  await buildRelease("v3");
  await Promise.all([sshd.start(), registry.start()]);
  await registry.push("slipway/api:v1", "slipway/api:v1");
  await registry.push("slipway/api:v2", "slipway/api:v2");
  // The operator's .env is on the host before the first deploy; shipping never writes it.
  stack.writeEnv();
  // Drop local copies so the deploy really pulls from the registry.
  await execa("docker", ["rmi", `${registry.host}/slipway/api:v1`, `${registry.host}/slipway/api:v2`]);
});

afterAll(async () => {
  await stack.down();
  await Promise.all([sshd.stop(), registry.stop()]);
});

describe.sequential("deploy over SSH with the pipeline's own command lines", () => {
  it("ships the bundle and the first deploy pulls v1 from the registry and starts the stack", async () => {
    const r = await daggerDeploy("v1");
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/pulling 127\.0\.0\.1:5000\/slipway\/api:v1/);
    expect(existsSync(join(remoteDir, "scripts/deploy.sh"))).toBe(true);
    expect(existsSync(join(remoteDir, "proxy/nginx.conf"))).toBe(true);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
  });

  it("a second deploy ships again without touching .env or the history, and rolls to v2", async () => {
    appendFileSync(join(remoteDir, ".env"), "# operator note: keep me\n");
    const history = readFileSync(join(remoteDir, "releases.log"), "utf8");
    const r = await daggerDeploy("v2");
    expect(r.exitCode, r.all).toBe(0);
    expect(readFileSync(join(remoteDir, ".env"), "utf8")).toContain("# operator note: keep me");
    expect(readFileSync(join(remoteDir, "releases.log"), "utf8").startsWith(history)).toBe(true);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v2");
  });

  it("rollback and status run over the same ssh line", async () => {
    const r = await remote({ script: "rollback" });
    expect(r.exitCode, r.all).toBe(0);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
    const s = await remote({ script: "status" });
    expect(s.exitCode, s.all).toBe(0);
    expect(s.all).toContain(`release:   ${registry.host}/slipway/api:v1`);
    expect(s.all).toMatch(/rollback\s+v1/);
  });

  it("a refused deploy and a transfer cut off half-way leave the installed files as they were", async () => {
    const runbook = readFileSync(join(remoteDir, "RUNBOOK.md"), "utf8");
    const changed = mkdtempSync(join(tmpdir(), "slipway-bundle-"));
    for (const entry of DEPLOY_BUNDLE) cpSync(join(repoRoot, entry), join(changed, entry), { recursive: true });
    writeFileSync(join(changed, "RUNBOOK.md"), `${runbook}\nnew text that must not be installed\n`);

    // Refused: another operation holds the lock.
    const holder = execa("flock", [join(remoteDir, ".deploy.lock"), "sleep", "4"]);
    await new Promise((r) => setTimeout(r, 300));
    const refused = await daggerDeploy("v2", changed);
    await holder;
    expect(refused.exitCode).not.toBe(0);
    expect(refused.all).toMatch(/another release operation holds the deploy lock/);
    expect(readFileSync(join(remoteDir, "RUNBOOK.md"), "utf8")).toBe(runbook);

    // Cut off: the tar stream ends half-way, as when the SSH link drops during the transfer.
    const bundle = stagingDir(randomUUID());
    const [, , , , pipeline] = shipArgv(target(), changed, remoteDir, bundle);
    const cut = await run(["bash", "-o", "pipefail", "-c", pipeline!.replace(" | ", " | head -c 20000 | ")]);
    expect(cut.exitCode).not.toBe(0);
    expect(readFileSync(join(remoteDir, "RUNBOOK.md"), "utf8")).toBe(runbook);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
  });

  it("a deploy script failure fails the call", async () => {
    const r = await remote({ script: "deploy", tag: "does-not-exist" });
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/cannot pull 127\.0\.0\.1:5000\/slipway\/api:does-not-exist/);
  });

  it("deploys a digest: the host runs exactly that image and records tag, digest, previous digest, migrations and who", async () => {
    const [d1, d2] = [await registryDigest(registry.host, "slipway/api", "v1"), await registryDigest(registry.host, "slipway/api", "v2")];
    const r = await daggerDeploy(`v2@${d2}`, repoRoot, { operator: "ci-bot", approver: "alice" });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain(`pulling ${registry.host}/slipway/api:v2@${d2}`);
    expect(r.all).toContain(`deployed v2@${d2} (${d2})`);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v2");
    expect(envTag()).toBe(`v2@${d2}`);
    const [, action, tag, digest, previous, operator, previousDigest, migrations, approver] = lastRecord();
    expect({ action, tag, digest, previous, operator, previousDigest, migrations, approver }).toEqual({
      action: "deploy", tag: "v2", digest: d2, previous: "v1", operator: "ci-bot", previousDigest: d1, migrations: "0", approver: "alice",
    });
    const { stdout } = await execa("docker", ["inspect", "-f", "{{.Config.Image}}", (await stack.slots()).serving[0]!.id]);
    expect(stdout).toBe(`${registry.host}/slipway/api:v2@${d2}`);
    const s = await remote({ script: "status" });
    expect(s.all).toContain(`release:   ${registry.host}/slipway/api:v2@${d2}`);
    expect(s.all).toContain("drift:     none");
  });

  it("refuses a digest the registry does not have, and a malformed one, changing nothing", async () => {
    const missing = `sha256:${"0".repeat(63)}1`;
    const r = await remote({ script: "deploy", tag: `v2@${missing}` });
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(new RegExp(`cannot pull .*: the registry has no image with digest ${missing}`));
    const bad = await run(sshArgv(target(), `cd ${shellQuote(remoteDir)} && ./scripts/deploy.sh --digest sha256:abc v2`));
    expect(bad.exitCode).not.toBe(0);
    expect(bad.all).toMatch(/invalid --digest 'sha256:abc': use sha256:<64 lowercase hex digits>/);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v2");
  });

  it("rollback returns to the digest that ran, even after its tag was re-pointed and pulled", async () => {
    const d1 = await registryDigest(registry.host, "slipway/api", "v1");
    // Someone re-pushes v1 (a rebuild, or another image entirely), and this host pulls the tag.
    await registry.push("slipway/api:v3", "slipway/api:v1");
    await execa("docker", ["pull", "-q", `${registry.host}/slipway/api:v1`]);
    expect(await registryDigest(registry.host, "slipway/api", "v1")).not.toBe(d1);

    const r = await remote({ script: "rollback", operator: "oncall" });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain(`rolling back from v2@`);
    expect((await getJson(`${stack.url}/health`)).body.version).toBe("v1");
    expect(envTag()).toBe(`v1@${d1}`);
    const [, action, tag, digest, previous, operator, , migrations] = lastRecord();
    expect({ action, tag, digest, previous, operator, migrations }).toEqual({ action: "rollback", tag: "v1", digest: d1, previous: "v2", operator: "oncall", migrations: "-" });
  });
});

describe("injection and host keys", () => {
  const pwned = join(tmpdir(), `pwned-${process.pid}`);

  it.each([
    [{ script: "deploy" as const, tag: `v1; touch ${pwned}` }, /invalid tag/],
    [{ script: "deploy" as const, tag: `v1\ntouch ${pwned}` }, /invalid tag/],
    [{ script: "status" as const, dir: "/opt/$(touch /tmp/pwned)" }, /invalid dir/],
    [{ script: "deploy" as const, tag: "v1", args: [`--timeout\ntouch ${pwned}`] }, /invalid argument/],
  ])("refuses %j before anything runs", async (call, message) => {
    expect(() => remoteScriptCommand({ dir: remoteDir, ...call })).toThrow(message);
    expect(existsSync(pwned)).toBe(false);
    expect(existsSync("/tmp/pwned")).toBe(false);
  });

  it("quoting keeps shell syntax inert on the real remote shell", async () => {
    const r = await run(sshArgv(target(), `echo ${shellQuote(`$(touch ${pwned}); \`touch ${pwned}\``)}`));
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain(`$(touch ${pwned})`);
    expect(existsSync(pwned)).toBe(false);
  });

  it("an unknown host key fails the deploy with a clear message and runs nothing", async () => {
    const marker = join(remoteDir, "should-not-exist");
    const wrong = { ...target(), knownHostsPath: sshd.wrongKnownHostsPath };
    const r = await run(sshArgv(wrong, `touch ${shellQuote(marker)}`));
    expect(r.exitCode).toBe(255);
    expect(r.all).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect(existsSync(marker)).toBe(false);

    const empty = { ...target(), knownHostsPath: "/dev/null" };
    const r2 = await run(sshArgv(empty, `touch ${shellQuote(marker)}`));
    expect(r2.exitCode).toBe(255);
    expect(r2.all).toMatch(/Host key verification failed/);
    expect(existsSync(marker)).toBe(false);
  });
});
