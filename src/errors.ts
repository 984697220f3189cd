import pg from "pg";

/** What a client is told about a failed request: the status and the JSON body. */
export interface ErrorAnswer {
  status: number;
  body: { error: string; message: string };
}

/**
 * Postgres refusals that the request's own values cause: class 22 (data exception: a NUL in
 * text, a number out of range, bad encoding) and class 23 (integrity constraint: a duplicate,
 * a missing reference). They are the client's fault, so a 4xx: a 500 here would let any client
 * make the post-switch guard revert a healthy release. Every other database error is ours.
 */
function inputRefusal(err: unknown): ErrorAnswer | null {
  if (!(err instanceof pg.DatabaseError) || typeof err.code !== "string") return null;
  if (err.code.startsWith("22")) return { status: 400, body: { error: "bad_request", message: "the database refused a value in this request" } };
  if (err.code.startsWith("23")) return { status: 409, body: { error: "conflict", message: "the request conflicts with data already stored" } };
  return null;
}

/**
 * The answer for an error a handler or fastify raised: a status fastify set (400 validation,
 * 413, 415) is kept with its message; an input refusal is a 4xx; anything else is a 500 whose
 * message stays in the log.
 */
export function errorAnswer(err: { statusCode?: number; message: string }): ErrorAnswer {
  const refused = inputRefusal(err);
  if (refused) return refused;
  const status = typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode <= 599 ? err.statusCode : 500;
  if (status >= 500) return { status, body: { error: "internal_error", message: "internal error" } };
  return { status, body: { error: status === 404 ? "not_found" : "bad_request", message: err.message } };
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** A body's bytes as text, or null when they are not valid UTF-8 (JSON must be, RFC 8259 §8.1). */
export function decodeUtf8(body: Buffer): string | null {
  try {
    return utf8.decode(body);
  } catch {
    return null;
  }
}
