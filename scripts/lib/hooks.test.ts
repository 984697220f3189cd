/**
 * A hook holds nothing of the release's (lib/hooks.sh run_hook): not the deploy lock's
 * descriptor, and nothing it leaves running outlives it. Before, a post-deploy hook's
 * `( sleep 20 ) &` kept the lock's descriptor, and a rollback two seconds later was refused with
 * "another release operation holds the deploy lock". test/release.test.ts runs the same on a stack.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));

describe("run_hook", () => {
  it("runs a hook without the lock's descriptor and ends what it left in the background when it returns", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-hooks-"));
    mkdirSync(join(dir, "hooks"));
    writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\nHOOK_TIMEOUT=5\n");
    const lock = join(dir, ".deploy.lock");
    writeFileSync(lock, "");
    writeFileSync(join(dir, "hooks/post-deploy"), `#!/bin/sh\n( sleep 30 ) &\necho $! > "${dir}/child"\nls -l /proc/$$/fd > "${dir}/fds"\n`);
    chmodSync(join(dir, "hooks/post-deploy"), 0o755);
    // The caller holds the lock on descriptor 9, as lib.sh's acquire_lock does.
    const r = await execa("bash", ["-c", `source ${join(repoRoot, "scripts/lib.sh")} && exec 9<"${lock}" && flock -n 9 && run_hook post-deploy deploy v2 v1 -`], {
      reject: false,
      all: true,
      env: { SLIPWAY_DIR: dir, SLIPWAY_LOCK_FILE: lock },
    });
    expect(r.exitCode, String(r.all)).toBe(0);
    // The caller has exited: the lock is free at once, so nothing the hook started holds it.
    expect((await execa("flock", ["-n", lock, "true"], { reject: false })).exitCode).toBe(0);
    expect(readFileSync(join(dir, "fds"), "utf8")).not.toMatch(/ 9 -> /);
    const child = Number(readFileSync(join(dir, "child"), "utf8"));
    for (let i = 0; i < 50 && alive(child); i++) await new Promise((res) => setTimeout(res, 100));
    expect(alive(child), "the hook's background child outlived it").toBe(false);
  });
});
