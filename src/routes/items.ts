import type { FastifyInstance } from "fastify";
import type { Queryable } from "../db.js";

export interface Item {
  id: number;
  name: string;
  created_at: string;
}

/** Path and query values arrive as strings; these patterns admit positive integers only. */
const positiveInt = { type: "string", pattern: "^[1-9][0-9]{0,14}$" } as const;
const idParams = { type: "object", required: ["id"], properties: { id: positiveInt } } as const;
const listQuery = { type: "object", properties: { limit: { type: "string", pattern: "^(?:[1-9][0-9]{0,2}|1000)$" } } } as const;

/**
 * Text that Postgres stores as sent: no NUL (text cannot hold one; the insert would fail) and no
 * lone UTF-16 surrogate (JSON admits "\ud800"; it has no UTF-8 form, so it would be stored as
 * U+FFFD). ajv tests patterns with the `u` flag, where a surrogate pair is one code point.
 */
const storableText = "^[^\\u0000\\uD800-\\uDFFF]*$";

const createBody = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: { name: { type: "string", minLength: 1, maxLength: 200, pattern: storableText } },
} as const;

/** Validation messages as fastify words them, but a failed storableText says what is wrong. */
function explainText(errors: { instancePath: string; keyword: string; params: Record<string, unknown>; message?: string }[], dataVar: string): Error {
  const text = errors
    .map((e) => `${dataVar}${e.instancePath} ${e.keyword === "pattern" && e.params.pattern === storableText ? "must not contain a NUL character or an unpaired UTF-16 surrogate" : e.message}`)
    .join(", ");
  return new Error(text);
}

const COLUMNS = "id::float8 AS id, name, created_at";

export function registerItemRoutes(app: FastifyInstance, db: Queryable): void {
  app.post<{ Body: { name: string } }>("/api/items", { schema: { body: createBody }, schemaErrorFormatter: explainText }, async (req, reply) => {
    const { rows } = await db.query<Item>(`INSERT INTO items (name) VALUES ($1) RETURNING ${COLUMNS}`, [req.body.name]);
    return reply.code(201).send(rows[0]);
  });

  app.get<{ Querystring: { limit?: string } }>("/api/items", { schema: { querystring: listQuery } }, async (req) => {
    const limit = Number(req.query.limit ?? 100);
    const { rows } = await db.query<Item>(`SELECT ${COLUMNS} FROM items ORDER BY id DESC LIMIT $1`, [limit]);
    return rows;
  });

  app.get<{ Params: { id: string } }>("/api/items/:id", { schema: { params: idParams } }, async (req, reply) => {
    const { rows } = await db.query<Item>(`SELECT ${COLUMNS} FROM items WHERE id = $1`, [req.params.id]);
    if (rows.length === 0) return reply.code(404).send({ error: "not_found", message: `item ${req.params.id} does not exist` });
    return rows[0];
  });

  app.delete<{ Params: { id: string } }>("/api/items/:id", { schema: { params: idParams } }, async (req, reply) => {
    const { rowCount } = await db.query("DELETE FROM items WHERE id = $1", [req.params.id]);
    if (!rowCount) return reply.code(404).send({ error: "not_found", message: `item ${req.params.id} does not exist` });
    return reply.code(204).send();
  });
}
