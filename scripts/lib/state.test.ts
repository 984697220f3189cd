/**
 * Only the operation that set a phase clears it (lib.sh release_lock_note, lib/state.sh). Before,
 * any locked command's clean exit wrote `idle`: from the crash state "the guard tripped, the proxy
 * is back on the old slot, killed before .env was rewritten", a backup.sh erased `reverting`, and
 * the repair plan changed from "make .env name the old release" to "point the proxy at the new
 * one", the release the guard rejected. test/crash.test.ts runs the plan on a real stack.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

const lib = join(repoRoot, "scripts/lib.sh");
const PHASE = "phase=reverting tag=v2 detail=- op=deploy since=2026-12-08T00:00:00Z\n";
const NOTE = "pid=999999 user=ci op=deploy:v2 dir=/srv since=2026-12-08T00:00:00Z\n";

/** A deployment directory as a kill during the guard's revert leaves it; then SCRIPT runs as a locked command named WHAT. */
async function after(what: string, script: string) {
  const dir = mkdtempSync(join(tmpdir(), "slipway-phase-"));
  writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\nAPI_TAG=v2\n");
  writeFileSync(join(dir, ".release-phase"), PHASE);
  writeFileSync(join(dir, ".deploy.lock"), NOTE);
  const r = await execa("bash", ["-c", `source ${lib} && acquire_lock ${what} && ${script}`], { reject: false, all: true, env: { SLIPWAY_DIR: dir, SLIPWAY_LOCK_FILE: join(dir, ".deploy.lock") } });
  return { exitCode: r.exitCode, all: String(r.all), phase: readFileSync(join(dir, ".release-phase"), "utf8"), note: readFileSync(join(dir, ".deploy.lock"), "utf8") };
}

describe("the recorded phase survives every command that is not the repair", () => {
  it("a backup, a restore, a stop or a failing command after the kill leaves the phase and the killed operation's note as they were", async () => {
    for (const [what, script] of [["backup", "CLEAN_EXIT=1; exit 0"], ["restore:x.sql", "CLEAN_EXIT=1; exit 0"], ["stop", "CLEAN_EXIT=1; exit 0"], ["deploy", "die 'invalid tag'"], ["backup", "die 'pg_dump failed'"]] as const) {
      const r = await after(what, script);
      expect(r.phase, `${what}: ${script}`).toBe(PHASE);
      expect(r.note, `${what}: ${script}`).toBe(NOTE);
    }
    // And it says who repairs, instead of claiming to.
    expect((await after("backup", "CLEAN_EXIT=1; exit 0")).all).toMatch(/did not finish \(pid=999999 .*\); scripts\/repair\.sh \(or the next deploy or rollback\) repairs it/);
  });

  it("the repair, which owns what it finds, clears both once done; an operation's own die after a consistent step goes back to idle", async () => {
    const repaired = await after("repair", "PHASE_OWNED=1; CLEAN_EXIT=1; exit 0");
    expect(repaired.phase).toMatch(/^phase=idle tag=v2 /);
    expect(repaired.note).toBe("");
    const own = await after("deploy", "enter_phase started v3 && die 'api:v3 never became healthy'");
    expect(own.phase).toMatch(/^phase=idle /);
  });

  it("die_unrepaired (the proxy refused the switch back) keeps this operation's phase and note for the repair", async () => {
    const r = await after("deploy", "enter_phase reverting v3 && die_unrepaired 'the guard tripped but the proxy refused slot a'");
    expect(r.exitCode).toBe(1);
    expect(r.phase).toMatch(/^phase=reverting tag=v3 /);
    expect(r.note).toMatch(/^pid=\d+ user=\S+ op=deploy /);
  });
});
