import { readdir } from "node:fs/promises";
import type { Queryable } from "./db.js";

/** dbmate names files `<version>_<name>.sql`; the version is the leading digits. */
export function versionsFromFilenames(files: readonly string[]): string[] {
  return files
    .map((f) => /^(\d+)_.*\.sql$/.exec(f)?.[1])
    .filter((v): v is string => v !== undefined)
    .sort();
}

export async function shippedVersions(dir: string): Promise<string[]> {
  return versionsFromFilenames(await readdir(dir));
}

/**
 * Migrations this image ships that the database has not applied. Extra applied versions
 * are fine: during a roll the old release runs against the new (additive) schema.
 */
export async function pendingMigrations(db: Queryable, shipped: readonly string[]): Promise<string[]> {
  const exists = await db.query<{ present: boolean }>(
    "SELECT to_regclass('public.schema_migrations') IS NOT NULL AS present",
  );
  if (!exists.rows[0]?.present) return [...shipped];
  const applied = await db.query<{ version: string }>("SELECT version FROM schema_migrations");
  const done = new Set(applied.rows.map((r) => r.version));
  return shipped.filter((v) => !done.has(v));
}
