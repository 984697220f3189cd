import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script, run by `npm run lint:migrations`
import { upSection } from "./lint-migrations.mjs";

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
});
