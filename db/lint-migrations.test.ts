import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script, run by `npm run lint:migrations`
import { migrationPlan, upSection } from "./lint-migrations.mjs";

const lint = (dir: string) => execa("node", ["db/lint-migrations.mjs", "--dir", dir], { reject: false, all: true });

function migrations(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "migrations-"));
  for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  return dir;
}

describe("migration lint (real squawk)", () => {
  it("passes the project's migrations", async () => {
    const r = await lint("db/migrations");
    expect(r.exitCode, r.all as string).toBe(0);
  });

  it.each([
    ["ban-drop-column", "ALTER TABLE items DROP COLUMN name;"],
    ["ban-drop-table", "DROP TABLE items;"],
    ["adding-required-field", "ALTER TABLE items ADD COLUMN owner text NOT NULL;"],
    ["require-concurrent-index-creation", "CREATE INDEX items_name ON items (name);"],
    ["changing-column-type", "ALTER TABLE items ALTER COLUMN name TYPE varchar(300);"],
  ])("blocks %s", async (rule, statement) => {
    const dir = migrations({ "20990101000000_bad.sql": `-- migrate:up\n${statement}\n\n-- migrate:down\nSELECT 1;\n` });
    const r = await lint(dir);
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain(rule);
    expect(r.all).toContain("Make the change additive");
  });

  it("honours a per-statement opt-out and ignores the down section", async () => {
    const dir = migrations({
      "20990101000000_reviewed.sql":
        "-- migrate:up\n-- squawk-ignore ban-drop-column\nALTER TABLE items DROP COLUMN legacy;\n\n-- migrate:down\nDROP TABLE items;\n",
    });
    const r = await lint(dir);
    expect(r.exitCode, r.all as string).toBe(0);
  });

  it("keeps line numbers by blanking, not removing, the down section", () => {
    const sql = "-- migrate:up\nA;\n-- migrate:down\nB;\n";
    const up = upSection(sql);
    expect(up.split("\n")).toHaveLength(sql.split("\n").length);
    expect(up.split("\n")[1]).toBe("A;");
    expect(up).not.toContain("B;");
  });

  it("writes the pending up sections as one reviewable SQL file, with squawk's findings, and never fails on them", async () => {
    const dir = migrations({
      "20990101000000_old.sql": "-- migrate:up\nCREATE TABLE old (id int);\n\n-- migrate:down\nDROP TABLE old;\n",
      "20990102000000_add_note.sql": "-- migrate:up\nALTER TABLE items ADD COLUMN note text;\n\n-- migrate:down\nALTER TABLE items DROP COLUMN note;\n",
      "20990103000000_owner.sql": "-- migrate:up\nALTER TABLE items ADD COLUMN owner text NOT NULL;\n\n-- migrate:down\nSELECT 1;\n",
    });
    const plan: string = migrationPlan(dir, "20990101000000");
    expect(plan).toMatch(/^-- Migration plan: 2 pending migration\(s\) after 20990101000000/);
    expect(plan).toMatch(/-- squawk findings \(1\):\n-- {3}20990103000000_owner\.sql:.*adding-required-field/);
    expect(plan).toContain("-- ==== 20990102000000_add_note.sql ====\nALTER TABLE items ADD COLUMN note text;\n");
    expect(plan).not.toContain("CREATE TABLE old");
    expect(plan).not.toContain("DROP COLUMN note");
    expect(plan.indexOf("add_note")).toBeLessThan(plan.indexOf("-- ==== 20990103000000_owner"));
    expect(migrationPlan(dir, "20990103000000")).toContain("-- Nothing to apply.");
    expect(() => migrationPlan(dir, "HEAD~1; rm -rf /")).toThrow(/invalid --since/);
    const out = join(dir, "plan.sql");
    const r = await execa("node", ["db/lint-migrations.mjs", "--dir", dir, "--plan", out], { reject: false, all: true });
    expect(r.exitCode, r.all as string).toBe(0);
  });
});
