import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { scratchDatabase, type ScratchDb } from "../test/support/database.js";
import { sessionKeepingQueries, sessionSurvives } from "./db.js";

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
