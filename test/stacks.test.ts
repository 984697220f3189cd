/**
 * What a test run cut off leaves (testenv/stacks.sh): its stack, brought back by the engine's
 * restart policy, holding its port, and a test sshd whose worker was killed. The next run removes
 * them before its first stack, and leaves alone what is not a test stack's or is still in use.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImages, Stack } from "./support/stack.js";
import { TestSshd } from "./support/sshd.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const docker = async (...args: string[]) => String((await execa("docker", args)).stdout).split("\n").filter(Boolean);
const ofProject = async (project: string) => [
  ...(await docker("ps", "-aq", "--filter", `label=com.docker.compose.project=${project}`)),
  ...(await docker("network", "ls", "-q", "--filter", `label=com.docker.compose.project=${project}`)),
  ...(await docker("volume", "ls", "-q", "--filter", `label=com.docker.compose.project=${project}`)),
];
/** Running, not a zombie its new parent has yet to reap. */
const alive = async (pid: number) => /^[^Z]/.test(String((await execa("ps", ["-o", "stat=", "-p", String(pid)], { reject: false })).stdout).trim());
const stacksSh = (args: string[], env: Record<string, string> = {}) =>
  execa("bash", ["testenv/stacks.sh", ...args], { reject: false, all: true, env });

describe.sequential("the next test run removes what a run cut off left", () => {
  const PORT = 8009;
  const left = new Stack({ port: PORT, tag: "v1" });
  const live = new TestSshd(2229);
  // Not a test stack's: a project by another name keeps its network and volume.
  const keep = `slipwaykeep${process.pid}`;
  const lock = join(mkdtempSync(join(tmpdir(), "slipway-lock-")), "lock");
  let orphan = 0;

  beforeAll(async () => {
    await buildImages();
    left.install();
    await left.up();
    await docker("network", "create", "--label", `com.docker.compose.project=${keep}`, `${keep}_default`);
    await docker("volume", "create", "--label", `com.docker.compose.project=${keep}`, `${keep}_db-data`);
    await live.start();
    // A test sshd whose worker is gone: started through setsid, so its parent is not node.
    const dir = mkdtempSync(join(tmpdir(), "slipway-sshd-"));
    writeFileSync(join(dir, "sshd_config"), "");
    const r = await execa("bash", ["-c", `setsid bash -c 'exec -a "/usr/sbin/sshd -D -f ${dir}/sshd_config" sleep 600' </dev/null >/dev/null 2>&1 & echo $!`]);
    orphan = Number(r.stdout);
    expect(await alive(orphan)).toBe(true);
  });
  afterAll(async () => {
    await left.down();
    await live.stop();
    await execa("docker", ["network", "rm", `${keep}_default`], { reject: false });
    await execa("docker", ["volume", "rm", `${keep}_db-data`], { reject: false });
    if (orphan) await execa("kill", [String(orphan)], { reject: false });
  });

  it("while another run holds the lock, or the lock cannot be opened: refused in one line, nothing removed", async () => {
    // --no-fork: one process, so the kill below ends the hold at once.
    const holder = execa("flock", ["--no-fork", lock, "-c", `echo 'pid 4242, /elsewhere, since 00:00:00' >${lock}; exec sleep 30`]);
    try {
      const held = async () => (await execa("grep", ["-qs", "4242", lock], { reject: false })).exitCode === 0;
      for (let i = 0; i < 50 && !(await held()); i++) await sleep(100);
      const r = await stacksSh(["clean"], { SLIPWAY_TEST_LOCK: lock, SLIPWAY_TEST_LOCK_HELD: "" });
      expect(r.exitCode).not.toBe(0);
      expect(r.all.trim().split("\n")).toHaveLength(1);
      expect(r.all).toMatch(/another test run holds .*\(pid 4242, \/elsewhere, since 00:00:00\).*wait for it to end, or stop it/);
      expect(await ofProject(left.project)).not.toHaveLength(0);
      expect(await alive(orphan)).toBe(true);
      const unopenable = await stacksSh(["clean"], { SLIPWAY_TEST_LOCK: "/nonexistent/lock", SLIPWAY_TEST_LOCK_HELD: "" });
      expect(unopenable.exitCode).not.toBe(0);
      expect(unopenable.all.trim().split("\n")).toHaveLength(1);
      expect(unopenable.all).toMatch(/cannot open the lock \/nonexistent\/lock .*set SLIPWAY_TEST_LOCK/);
    } finally {
      holder.kill();
      await holder.catch(() => undefined);
    }
  });

  it("removes the stack, its network and volumes, and the orphaned sshd; a new stack then starts on the same port", async () => {
    // It removes every test stack on this engine: only as the run that holds the machine's lock.
    if (!process.env.SLIPWAY_TEST_LOCK_HELD) throw new Error("run this file through testenv/integration.sh, which holds the test stacks' lock");
    const r = await stacksSh(["clean"]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain(`removing the test stacks an earlier run left: ${left.project}`);
    expect(await ofProject(left.project)).toEqual([]);
    for (let i = 0; i < 50 && (await alive(orphan)); i++) await sleep(100);
    expect(await alive(orphan)).toBe(false);
    // What is in use, or not a test stack's, stays.
    expect((await execa("ssh-keyscan", ["-p", "2229", "127.0.0.1"], { reject: false })).stdout).toMatch(/ssh-ed25519/);
    expect(await ofProject(keep)).toHaveLength(2);

    const next = new Stack({ port: PORT, tag: "v1" }).install();
    try {
      await next.up();
    } finally {
      await next.down();
    }
  });
});
