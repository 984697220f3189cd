import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { scratchDatabase, type ScratchDb } from "../test/support/database.js";
import { buildApp } from "./app.js";
import { shippedVersions } from "./migrations.js";

describe("the API against a real Postgres", () => {
  let db: ScratchDb;
  let app: FastifyInstance;
  let accepting = true;

  beforeAll(async () => {
    db = await scratchDatabase({ migrate: true });
    app = buildApp({ db: db.pool, version: "v-test", shipped: await shippedVersions("db/migrations"), logLevel: "silent", isAccepting: () => accepting });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it("GET /health reports ok, the version and every check", async () => {
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ok", version: "v-test", checks: { database: "ok", migrations: "ok" } });
    const ready = await app.inject({ url: "/health/ready" });
    expect(ready.statusCode).toBe(200);
    // The probe and the roll tell this container's answer from another server's on the same socket.
    expect(ready.headers["x-slipway-instance"]).toBe(hostname());
    expect((await app.inject({ url: "/health/live" })).statusCode).toBe(200);
  });

  it("creates, lists, reads and deletes items", async () => {
    const created = await app.inject({ method: "POST", url: "/api/items", payload: { name: "first" } });
    expect(created.statusCode).toBe(201);
    const item = created.json();
    expect(item).toMatchObject({ name: "first" });
    expect(typeof item.id).toBe("number");

    const list = await app.inject({ url: "/api/items" });
    expect(list.json().map((i: { id: number }) => i.id)).toContain(item.id);
    expect((await app.inject({ url: `/api/items/${item.id}` })).json()).toMatchObject({ id: item.id, name: "first" });

    expect((await app.inject({ method: "DELETE", url: `/api/items/${item.id}` })).statusCode).toBe(204);
    const gone = await app.inject({ url: `/api/items/${item.id}` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().message).toContain("does not exist");
    expect((await app.inject({ method: "DELETE", url: `/api/items/${item.id}` })).statusCode).toBe(404);
  });

  it("rejects bad input with 400 and a message", async () => {
    for (const payload of [{}, { name: "" }, { name: 42 }, { name: "x", extra: true }]) {
      const res = await app.inject({ method: "POST", url: "/api/items", payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toBe("bad_request");
    }
    expect((await app.inject({ url: "/api/items/abc" })).statusCode).toBe(400);
  });

  it("reports not ready once draining, while /health still answers 200", async () => {
    accepting = false;
    try {
      const res = await app.inject({ url: "/health/ready" });
      expect(res.statusCode).toBe(503);
      expect((await app.inject({ url: "/health/live" })).statusCode).toBe(200);
      // Still serving while the load balancer catches up: /health answers as any route does.
      expect((await app.inject({ url: "/health" })).statusCode).toBe(200);
    } finally {
      accepting = true;
    }
  });
});

describe("health with pending migrations or no database", () => {
  it("is 503 and names the pending migration", async () => {
    const db = await scratchDatabase({ migrate: false });
    const app = buildApp({ db: db.pool, version: "v", shipped: await shippedVersions("db/migrations"), logLevel: "silent" });
    try {
      const res = await app.inject({ url: "/health" });
      expect(res.statusCode).toBe(503);
      expect(res.json().checks.database).toBe("ok");
      expect(res.json().checks.migrations).toMatch(/^pending: \d+/);
    } finally {
      await app.close();
      await db.drop();
    }
  });

  it("is 503 and names the database when it is unreachable, with the driver's message in the log only", async () => {
    const { default: pg } = await import("pg");
    const pool = new pg.Pool({ connectionString: "postgres://nosuchuser:x@127.0.0.1:1/none", connectionTimeoutMillis: 500 });
    const lines: string[] = [];
    const app = buildApp({ db: pool, version: "v", shipped: ["1"], logLevel: "warn", logStream: { write: (l) => void lines.push(l) } });
    try {
      const res = await app.inject({ url: "/health" });
      expect(res.statusCode).toBe(503);
      // /health is public: a cause class, not an address or a role name.
      expect(res.json().checks).toEqual({ database: "unreachable", migrations: "unknown" });
      expect(res.body).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|nosuchuser/);
      const logged = lines.join("");
      expect(logged).toContain("health: the database is unreachable");
      expect(logged).toContain("ECONNREFUSED");
    } finally {
      await app.close();
      await pool.end();
    }
  });
});
