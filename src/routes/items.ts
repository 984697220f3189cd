import type { FastifyInstance } from "fastify";
import type { Queryable } from "../db.js";

export interface Item {
  id: number;
  name: string;
  created_at: string;
}

const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "integer", minimum: 1, maximum: 9007199254740991 } },
} as const;

const createBody = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: { name: { type: "string", minLength: 1, maxLength: 200 } },
} as const;

const COLUMNS = "id::float8 AS id, name, created_at";

export function registerItemRoutes(app: FastifyInstance, db: Queryable): void {
  app.post<{ Body: { name: string } }>("/api/items", { schema: { body: createBody } }, async (req, reply) => {
    const { rows } = await db.query<Item>(`INSERT INTO items (name) VALUES ($1) RETURNING ${COLUMNS}`, [req.body.name]);
    return reply.code(201).send(rows[0]);
  });

  app.get<{ Querystring: { limit?: number } }>(
    "/api/items",
    { schema: { querystring: { type: "object", properties: { limit: { type: "integer", minimum: 1, maximum: 1000 } } } } },
    async (req) => {
      const { rows } = await db.query<Item>(`SELECT ${COLUMNS} FROM items ORDER BY id DESC LIMIT $1`, [req.query.limit ?? 100]);
      return rows;
    },
  );

  app.get<{ Params: { id: number } }>("/api/items/:id", { schema: { params: idParams } }, async (req, reply) => {
    const { rows } = await db.query<Item>(`SELECT ${COLUMNS} FROM items WHERE id = $1`, [req.params.id]);
    if (rows.length === 0) return reply.code(404).send({ error: "not_found", message: `item ${req.params.id} does not exist` });
    return rows[0];
  });

  app.delete<{ Params: { id: number } }>("/api/items/:id", { schema: { params: idParams } }, async (req, reply) => {
    const { rowCount } = await db.query("DELETE FROM items WHERE id = $1", [req.params.id]);
    if (!rowCount) return reply.code(404).send({ error: "not_found", message: `item ${req.params.id} does not exist` });
    return reply.code(204).send();
  });
}
