import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { scratchDatabase, type ScratchDb } from "../test/support/database.js";
import { createPool, openSessions, POOL_SIZE, sessionKeepingQueries, sessionSurvives } from "./db.js";

const backend = "SELECT pg_backend_pid() AS pid";

describe("queries on pooled sessions, against a real Postgres", () => {
  let scratch: ScratchDb;
  let pool: pg.Pool;

  beforeAll(async () => {
    scratch = await scratchDatabase({ migrate: false });
    // One session: whether a failed query cost it shows as a new backend pid.
    pool = new pg.Pool({ connectionString: scratch.url, max: 1, statement_timeout: 200 });
  });
  afterAll(async () => {
    await pool?.end();
    await scratch?.drop();
  });

  it("keeps the session after statements the server refuses (a missing table, a statement timeout)", async () => {
    const db = sessionKeepingQueries(pool);
    const pid = (await db.query<{ pid: number }>(backend)).rows[0]!.pid;
    await expect(db.query("INSERT INTO no_such_table (name) VALUES ($1)", ["x"])).rejects.toThrow(/relation "no_such_table" does not exist/);
    await expect(db.query("SELECT pg_sleep(2)")).rejects.toThrow(/statement timeout/);
    expect((await db.query<{ pid: number }>(backend)).rows[0]!.pid).toBe(pid);
    expect(pool.totalCount).toBe(1);
  });

  it("discards a session the server ended, and the next query opens a working one", async () => {
    const db = sessionKeepingQueries(pool);
    const pid = (await db.query<{ pid: number }>(backend)).rows[0]!.pid;
    await expect(db.query("SELECT pg_terminate_backend(pg_backend_pid())")).rejects.toThrow(/terminat/);
    const next = (await db.query<{ pid: number }>(backend)).rows[0]!.pid;
    expect(next).not.toBe(pid);
  });

  it("where pg.Pool#query alone opens a new backend after each refused statement", async () => {
    const pid = (await pool.query<{ pid: number }>(backend)).rows[0]!.pid;
    await expect(pool.query("SELECT * FROM no_such_table")).rejects.toThrow(/does not exist/);
    expect((await pool.query<{ pid: number }>(backend)).rows[0]!.pid).not.toBe(pid);
  });
});

describe("the app's pool, against a real Postgres", () => {
  let scratch: ScratchDb;
  beforeAll(async () => {
    scratch = await scratchDatabase({ migrate: false });
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  it("opens all its sessions as the app starts, and a burst as large as the pool connects no new backend", async () => {
    const pool = createPool(scratch.url);
    try {
      expect(await openSessions(pool)).toBe(POOL_SIZE);
      expect([pool.totalCount, pool.idleCount]).toEqual([POOL_SIZE, POOL_SIZE]);
      const open = await scratch.pool.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
      const db = sessionKeepingQueries(pool);
      const burst = await Promise.all(Array.from({ length: POOL_SIZE }, () => db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid, pg_sleep(0.1)")));
      const used = new Set(burst.map((r) => r.rows[0]!.pid));
      expect(used.size).toBe(POOL_SIZE);
      expect([...used].every((pid) => open.rows.some((r) => r.pid === pid))).toBe(true);
      expect(pool.totalCount).toBe(POOL_SIZE);
    } finally {
      await pool.end();
    }
  });

  it("requests that come while the sessions open are served, and the pool still ends with all of them", async () => {
    const pool = createPool(scratch.url);
    try {
      const opening = openSessions(pool);
      const early = await Promise.all(Array.from({ length: 3 }, () => sessionKeepingQueries(pool).query("SELECT 1")));
      expect(early).toHaveLength(3);
      expect(await opening).toBe(POOL_SIZE);
      expect(pool.totalCount).toBe(POOL_SIZE);
    } finally {
      await pool.end();
    }
  });

  it("keeps min sessions past the idle timeout (pg-pool closes only those above min)", async () => {
    const pool = new pg.Pool({ connectionString: scratch.url, max: 3, min: 3, idleTimeoutMillis: 50 });
    try {
      expect(await openSessions(pool, 3)).toBe(3);
      await new Promise((r) => setTimeout(r, 300));
      expect(pool.totalCount).toBe(3);
    } finally {
      await pool.end();
    }
  });

  it("opens what the database allows, and the app starts with fewer sessions", async () => {
    const role = `t_limited_${Date.now()}`;
    const admin = new pg.Client({ connectionString: scratch.url });
    await admin.connect();
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'limited' CONNECTION LIMIT 3`);
    const url = new URL(scratch.url);
    [url.username, url.password] = [role, "limited"];
    const pool = createPool(url.toString());
    try {
      expect(await openSessions(pool)).toBe(3);
      expect(pool.totalCount).toBe(3);
      expect((await sessionKeepingQueries(pool).query<{ one: number }>("SELECT 1 AS one")).rows[0]!.one).toBe(1);
    } finally {
      await pool.end();
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
    }
  });
});

describe("sessionSurvives", () => {
  it("holds for the server's ERROR, not for FATAL or an error of the connection", () => {
    const refused = new pg.DatabaseError("relation does not exist", 0, "error");
    refused.severity = "ERROR";
    const fatal = new pg.DatabaseError("terminating connection", 0, "error");
    fatal.severity = "FATAL";
    expect(sessionSurvives(refused)).toBe(true);
    expect(sessionSurvives(fatal)).toBe(false);
    expect(sessionSurvives(new Error("Connection terminated unexpectedly"))).toBe(false);
  });
});
