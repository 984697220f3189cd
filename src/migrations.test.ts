import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scratchDatabase, type ScratchDb } from "../test/support/database.js";
import { pendingMigrations, shippedVersions, versionsFromFilenames } from "./migrations.js";

describe("versionsFromFilenames", () => {
  it("keeps dbmate migration files only, sorted by version", () => {
    expect(versionsFromFilenames(["20260102_b.sql", "README.md", "20260101_a.sql", "x_20260103.sql"])).toEqual([
      "20260101",
      "20260102",
    ]);
  });
});

describe("pendingMigrations against Postgres", () => {
  let fresh: ScratchDb;
  let migrated: ScratchDb;
  beforeAll(async () => {
    [fresh, migrated] = await Promise.all([scratchDatabase({ migrate: false }), scratchDatabase({ migrate: true })]);
  });
  afterAll(async () => {
    await Promise.all([fresh?.drop(), migrated?.drop()]);
  });

  it("lists every shipped migration on an empty database", async () => {
    const shipped = await shippedVersions("db/migrations");
    expect(shipped.length).toBeGreaterThan(0);
    expect(await pendingMigrations(fresh.pool, shipped)).toEqual(shipped);
  });

  it("lists none once dbmate applied them, and tolerates newer applied versions (an older release during a roll)", async () => {
    const shipped = await shippedVersions("db/migrations");
    expect(await pendingMigrations(migrated.pool, shipped)).toEqual([]);
    expect(await pendingMigrations(migrated.pool, shipped.slice(0, 1))).toEqual([]);
    expect(await pendingMigrations(migrated.pool, [...shipped, "99990101000000"])).toEqual(["99990101000000"]);
  });
});
