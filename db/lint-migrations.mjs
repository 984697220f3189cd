#!/usr/bin/env node
// Migration-safety lint: runs squawk on the `-- migrate:up` half of every dbmate migration
// (the down half drops things by design). Migrations are additive-only, so squawk blocks
// DROP COLUMN/TABLE, NOT NULL without a default, non-concurrent indexes and type changes.
// Opt out for one statement with a `-- squawk-ignore <rule>` line above it.
// Usage: node db/lint-migrations.mjs [--dir db/migrations]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Not safety rules: dbmate wraps each migration in a transaction, and timeouts are set per role.
const EXCLUDED = ["prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout"];

/** The up section with the rest blanked, so squawk's line numbers match the real file. */
export function upSection(sql) {
  let inUp = false;
  return sql
    .split("\n")
    .map((line) => {
      const marker = /^--\s*migrate:(up|down)\b/.exec(line);
      if (marker) inUp = marker[1] === "up";
      return inUp && !marker ? line : "";
    })
    .join("\n");
}

function main() {
  const at = process.argv.indexOf("--dir");
  const dir = at > 0 ? process.argv[at + 1] : "db/migrations";
  const files = readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
  if (files.length === 0) {
    console.error(`lint-migrations: no .sql files in ${dir}`);
    process.exit(1);
  }
  const work = mkdtempSync(join(tmpdir(), "squawk-"));
  try {
    for (const f of files) writeFileSync(join(work, f), upSection(readFileSync(join(dir, f), "utf8")));
    const squawk = join(dirname(fileURLToPath(import.meta.url)), "..", "node_modules", ".bin", "squawk");
    execFileSync(squawk, ["--pg-version=16", "--reporter=gcc", `--exclude=${EXCLUDED.join(",")}`, ...files], { cwd: work, stdio: "inherit" });
    console.log(`lint-migrations: ${files.length} migration(s) in ${dir} are safe`);
  } catch {
    console.error(`lint-migrations: unsafe migration(s) in ${dir} (see above). Make the change additive, or add '-- squawk-ignore <rule>' above a reviewed statement`);
    process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
