/**
 * One grammar for every number .env and the flags take (lib/settings.sh valid_value): decimal,
 * no leading zero, sign, exponent or space, within the kind's bounds. Before, GUARD_SECONDS=08
 * passed check_env and then failed bash's `((guard > 0))` as bad octal, so the guard was skipped
 * without a word; MIGRATION_LOCK_TRIES=08 retried for ever under the deploy lock.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

const settings = readFileSync(join(repoRoot, "scripts/lib/settings.sh"), "utf8");
const specs = /ENV_VALUES="([^"]+)"/.exec(settings)![1]!.trim().split(/\s+/).map((s) => s.split(":") as [string, string, string]);
const numeric = specs.filter(([, kind]) => ["int", "number", "count", "port", "seconds", "window"].includes(kind));

/** Runs FN (bash) with lib.sh sourced in a deployment directory whose .env holds LINES. */
async function withEnv(lines: string[], fn: string) {
  const dir = mkdtempSync(join(tmpdir(), "slipway-settings-"));
  writeFileSync(join(dir, ".env"), `COMPOSE_PROJECT_NAME=t\n${lines.join("\n")}\n`);
  const r = await execa("bash", ["-c", `source ${join(repoRoot, "scripts/lib.sh")} && ${fn}`], { reject: false, all: true, env: { SLIPWAY_DIR: dir, SLIPWAY_LOCK_FILE: join(dir, "lock") } });
  return { exitCode: r.exitCode, all: String(r.all) };
}

const HOSTILE = ["08", "007", "-1", "+1", "1e3", " 5", "5 ", "0x10", "5\u0001", "1,5", "٣"];
const bounds: Record<string, { ok: string[]; bad: string[] }> = {
  int: { ok: ["0", "1", "999999999"], bad: ["1000000000"] },
  number: { ok: ["0", "0.5", "999999999.123456789"], bad: ["1000000000", "1.1234567890", ".5", "5."] },
  count: { ok: ["1", "9999"], bad: ["0", "10000"] },
  port: { ok: ["1", "65535"], bad: ["0", "65536"] },
  seconds: { ok: ["1", "3600"], bad: ["0", "3601"] },
  window: { ok: ["0", "3600"], bad: ["3601"] },
};

describe("one validator, one grammar: every numeric .env key and --guard", () => {
  it(`refuses ${HOSTILE.map((v) => JSON.stringify(v)).join(", ")} and each kind's bounds ±1 for every key, in one line naming it; takes the bounds themselves`, async () => {
    expect(numeric.length).toBeGreaterThan(15);
    for (const [key, kind] of numeric) {
      for (const value of [...HOSTILE, ...bounds[kind]!.bad]) {
        const r = await withEnv([`${key}=${value}`], "check_env");
        expect(r.exitCode, `${key}=${JSON.stringify(value)}`).toBe(1);
        expect(r.all.trim().split("\n"), `${key}=${JSON.stringify(value)}`).toHaveLength(1);
        expect(r.all).toContain(`${key} in .env is '${value}', which is not a valid ${kind}`);
      }
      for (const value of bounds[kind]!.ok) expect((await withEnv([`${key}=${value}`], "check_env")).exitCode, `${key}=${value}`).toBe(0);
    }
  }, 120_000);

  it("the readers use the same grammar: env_number refuses what check_env refuses, so a value read later fails the same way", async () => {
    for (const value of ["08", "-1", "1e3"]) {
      const r = await withEnv([`GUARD_SECONDS=${value}`], "env_number GUARD_SECONDS 30");
      expect(r.exitCode).toBe(1);
      expect(r.all).toMatch(new RegExp(`GUARD_SECONDS in \\.env must be a number of seconds from 0, which is off, to 3600, e\\.g\\. GUARD_SECONDS=30, got '${value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}'`));
    }
    expect((await withEnv(["MIGRATION_LOCK_TRIES=08"], "env_number MIGRATION_LOCK_TRIES 3")).exitCode).toBe(1);
    expect((await withEnv(["GUARD_SECONDS=8"], "env_number GUARD_SECONDS 30")).all.trim()).toBe("8");
    expect((await withEnv([], "env_number KPI_P99_SECONDS 1")).all.trim()).toBe("1");
  });

  it("deploy.sh --guard takes 0 to GUARD_SECONDS_MAX (3600, the contract's) in decimal and refuses 08, -1, 1e3 and 3601 before anything runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-guardflag-"));
    cpSync(join(repoRoot, "scripts"), join(dir, "scripts"), { recursive: true });
    writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\n");
    for (const guard of ["08", "-1", "1e3", "3601", "10000", " 5"]) {
      const r = await execa("bash", ["scripts/deploy.sh", "--guard", guard, "v1"], { cwd: dir, reject: false, all: true, env: { SLIPWAY_LOCK_FILE: join(dir, "lock") } });
      expect(r.exitCode, guard).toBe(1);
      expect(String(r.all).trim().split("\n"), guard).toHaveLength(1);
      expect(String(r.all)).toContain(`--guard must be a whole number of seconds in decimal, 0 to 3600 (0 turns the guard off), got '${guard}'`);
    }
    const empty = await execa("bash", ["scripts/deploy.sh", "--guard", "", "v1"], { cwd: dir, reject: false, all: true });
    expect([empty.exitCode, String(empty.all).trim().split("\n").length]).toEqual([1, 1]);
    expect(String(empty.all)).toContain("--guard needs a value in seconds (0 turns it off)");
  });
});
