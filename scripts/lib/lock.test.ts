/**
 * The lock-held marker (lib.sh under_parents_lock): a backup skips the lock only under an
 * ancestor that holds it (deploy's and restore's own backup). Before, SLIPWAY_LOCK_HELD=1 set by
 * hand let a backup run beside a deploy, its pg_dump's locks queuing the deploy's migration.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

const lib = join(repoRoot, "scripts/lib.sh");
const check = `source ${lib} && if under_parents_lock; then echo under; else echo outside; fi`;

function deploymentDir() {
  const dir = mkdtempSync(join(tmpdir(), "slipway-lock-"));
  writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\n");
  return { dir, env: { SLIPWAY_DIR: dir, SLIPWAY_LOCK_FILE: join(dir, ".deploy.lock") } };
}

describe("under_parents_lock", () => {
  it("is true for a child of the lock's holder, directly or through a $(...)", async () => {
    const { env } = deploymentDir();
    const r = await execa("bash", ["-c", `source ${lib} && acquire_lock test && bash -c '${check}' && x=$(bash -c '${check}' 2>/dev/null) && echo "$x"`], { env, reject: false, all: true });
    expect(String(r.stdout).trim().split("\n")).toEqual(["under", "under"]);
  });

  it("is false for the marker set by hand, whatever it names, while another process holds the lock", async () => {
    const { dir, env } = deploymentDir();
    // A deploy holding the lock, as acquire_lock leaves it.
    const holder = execa("bash", ["-c", `source ${lib} && acquire_lock deploy && echo held && exec sleep 30`], { env, reject: false });
    await new Promise<void>((resolve) => holder.stdout!.on("data", () => resolve()));
    try {
      for (const marker of ["1", String(holder.pid), "$$", ""]) {
        const r = await execa("bash", ["-c", `export SLIPWAY_LOCK_HELD=${marker}; ${check}`], { env, reject: false, all: true });
        expect(String(r.stdout).trim(), `SLIPWAY_LOCK_HELD=${marker}`).toBe("outside");
      }
    } finally {
      holder.kill("SIGKILL");
      await holder;
    }
    // With no holder at all, the marker means nothing either.
    writeFileSync(join(dir, ".deploy.lock"), "");
    expect(String((await execa("bash", ["-c", `export SLIPWAY_LOCK_HELD=$$; ${check}`], { env })).stdout).trim()).toBe("outside");
  });
});
