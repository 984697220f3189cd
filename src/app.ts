import Fastify, { type FastifyInstance } from "fastify";
import type { Queryable } from "./db.js";
import { registerHealthRoutes } from "./routes/health.js";
import { registerItemRoutes } from "./routes/items.js";

export interface AppOptions {
  db: Queryable;
  version: string;
  shipped: readonly string[];
  logLevel?: string;
  isAccepting?: () => boolean;
}

export function buildApp(opts: AppOptions): FastifyInstance {
  const app = Fastify({
    logger: { level: opts.logLevel ?? "info", base: { service: "slipway-api", version: opts.version } },
    // Serve requests that arrive on open keep-alive connections while draining, rather
    // than answering 503: the proxy has already moved new traffic elsewhere.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    requestIdHeader: "x-request-id",
    // JSON bodies keep their types ({"name": 42} is a 400); path and query are matched by pattern.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  registerHealthRoutes(app, {
    db: opts.db,
    shipped: opts.shipped,
    version: opts.version,
    isAccepting: opts.isAccepting ?? (() => true),
  });
  registerItemRoutes(app, opts.db);
  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) req.log.error({ err }, "request failed");
    return reply.code(status).send({ error: status >= 500 ? "internal_error" : "bad_request", message: status >= 500 ? "internal error" : err.message });
  });
  return app;
}
