import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import pg from "pg";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The test Postgres: TEST_DATABASE_URL (the Dagger `test` function sets it) or the one setup.sh started. */
export function testDatabaseUrl(): string {
  if (process.env.TEST_DATABASE_URL) return process.env.TEST_DATABASE_URL;
  const file = `${repoRoot}.testenv/database-url`;
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  throw new Error("no test Postgres: run `npm test` (it starts one) or set TEST_DATABASE_URL");
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface ScratchDb {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** A fresh database for one test file; with `migrate`, the real migrations are applied by dbmate. */
export async function scratchDatabase(opts: { migrate: boolean }): Promise<ScratchDb> {
  const admin = new pg.Client({ connectionString: testDatabaseUrl() });
  const name = `t_${randomBytes(6).toString("hex")}`;
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = withDatabase(testDatabaseUrl(), name);
  if (opts.migrate) {
    await execa("node_modules/.bin/dbmate", ["--no-dump-schema", "--migrations-dir", "db/migrations", "--url", url, "up"], {
      cwd: repoRoot,
    });
  }
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: testDatabaseUrl() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
