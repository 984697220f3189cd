/** The smoke journey against the real API and a real Postgres, and against broken variants. */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../../src/app.js";
import { shippedVersions } from "../../../src/migrations.js";
import { scratchDatabase, type ScratchDb } from "../../../test/support/database.js";
import { smokeJourney, smokeReport, validateUrl } from "../../src/commands/smoke.js";

let db: ScratchDb;
const apps: FastifyInstance[] = [];

/** A real API on an ephemeral port; `breakWrites` answers 500 to POST, as a bad release would. */
async function serve(version: string, breakWrites = false): Promise<string> {
  const app = buildApp({ db: db.pool, version, shipped: await shippedVersions("db/migrations"), logLevel: "silent", isAccepting: () => true });
  if (breakWrites) app.addHook("onRequest", async (req, reply) => { if (req.method === "POST") await reply.code(500).send({ error: "boom" }); });
  apps.push(app);
  await app.listen({ host: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  db = await scratchDatabase({ migrate: true });
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await db?.drop();
});

describe("smoke test", () => {
  it("passes a healthy release: health with its version, then create, read, delete, gone", async () => {
    const steps = await smokeJourney(await serve("v7"), { version: "v7" });
    const report = smokeReport(steps);
    expect(report.passed, report.text).toBe(true);
    expect(steps.map((s) => s.name)).toEqual(["GET /health", "POST /api/items", "GET /api/items/:id", "DELETE /api/items/:id", "GET /api/items/:id after delete"]);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM items WHERE name LIKE 'slipway-smoke-%'");
    expect(rows[0].n).toBe(0);
  });

  it("fails a release whose health passes but whose writes fail, naming the step", async () => {
    const report = smokeReport(await smokeJourney(await serve("v8", true), { version: "v8" }));
    expect(report.passed).toBe(false);
    expect(report.text).toMatch(/smoke test failed at POST \/api\/items: answered 500, not 201/);
  });

  it("fails when /health reports another version, and when nothing answers", async () => {
    const wrong = smokeReport(await smokeJourney(await serve("v1"), { version: "v9", healthWaitMs: 1500 }));
    expect(wrong.text).toMatch(/failed at GET \/health: reports version v1, not v9/);
    const none = smokeReport(await smokeJourney("http://127.0.0.1:9", { healthWaitMs: 0 }));
    expect(none.passed).toBe(false);
    expect(none.text).toMatch(/failed at GET \/health: answered nothing/);
  });

  it("takes only a plain http(s) base URL", () => {
    expect(validateUrl("https://app.example.com/")).toBe("https://app.example.com");
    for (const bad of ["ftp://x", "https://u:p@x", "https://x/?a=1", "x"]) expect(() => validateUrl(bad)).toThrow(/invalid url/);
  });
});
