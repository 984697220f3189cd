import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scratchDatabase, type ScratchDb } from "../test/support/database.js";
import { decodeUtf8, errorAnswer } from "./errors.js";

/** The error Postgres raises for SQL, as the driver delivers it. */
async function refusal(db: ScratchDb, sql: string, values: unknown[] = []): Promise<Error & { code?: string }> {
  try {
    await db.pool.query(sql, values);
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error(`Postgres accepted ${sql}`);
}

describe("errorAnswer: what a failed request tells its client", () => {
  let db: ScratchDb;
  beforeAll(async () => {
    db = await scratchDatabase({ migrate: true });
  });
  afterAll(async () => db?.drop());

  it("a value Postgres refuses (class 22) is a 400 and a constraint it breaks (class 23) a 409, read from real refusals", async () => {
    const nul = await refusal(db, "INSERT INTO items (name) VALUES ($1)", ["a\u0000b"]);
    expect(nul.code).toMatch(/^22/);
    expect(errorAnswer(nul)).toEqual({ status: 400, body: { error: "bad_request", message: "the database refused a value in this request" } });
    const range = await refusal(db, "SELECT $1::int", ["99999999999"]);
    expect(range.code).toBe("22003");
    expect(errorAnswer(range).status).toBe(400);
    const notNull = await refusal(db, "INSERT INTO items (name) VALUES (NULL)");
    expect(notNull.code).toBe("23502");
    expect(errorAnswer(notNull).status).toBe(409);
  });

  it("any other database error is ours: a 500 whose text stays in the log", async () => {
    const missing = await refusal(db, "SELECT * FROM no_such_table");
    expect(missing.code).toBe("42P01");
    expect(errorAnswer(missing)).toEqual({ status: 500, body: { error: "internal_error", message: "internal error" } });
    expect(errorAnswer(new Error("boom"))).toEqual({ status: 500, body: { error: "internal_error", message: "internal error" } });
  });

  it("keeps the status fastify set, and never takes an out-of-range one", () => {
    expect(errorAnswer({ statusCode: 415, message: "Unsupported Media Type" })).toEqual({ status: 415, body: { error: "bad_request", message: "Unsupported Media Type" } });
    expect(errorAnswer({ statusCode: 404, message: "Route GET:/x not found" }).body.error).toBe("not_found");
    for (const statusCode of [0, 200, 399, 600, Number.NaN]) expect(errorAnswer({ statusCode, message: "x" }).status).toBe(500);
  });

  it("decodeUtf8 takes valid UTF-8 and refuses an invalid byte, an overlong form and an encoded surrogate", () => {
    expect(decodeUtf8(Buffer.from("héllo 😀"))).toBe("héllo 😀");
    for (const bytes of [[0xc3, 0x28], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xff]]) expect(decodeUtf8(Buffer.from(bytes))).toBeNull();
  });
});
