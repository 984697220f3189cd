import Fastify, { type FastifyInstance, type FastifyError } from "fastify";
import type { Queryable } from "./db.js";
import { decodeUtf8, errorAnswer } from "./errors.js";
import { registerHealthRoutes } from "./routes/health.js";
import { registerItemRoutes } from "./routes/items.js";

export interface AppOptions {
  db: Queryable;
  version: string;
  shipped: readonly string[];
  logLevel?: string;
  /** Where the JSON log lines go; stdout by default. */
  logStream?: { write(line: string): void };
  isAccepting?: () => boolean;
}

export function buildApp(opts: AppOptions): FastifyInstance {
  const app = Fastify({
    logger: { level: opts.logLevel ?? "info", base: { service: "slipway-api", version: opts.version }, ...(opts.logStream ? { stream: opts.logStream } : {}) },
    // Serve requests that arrive on open keep-alive connections while draining, rather
    // than answering 503: the proxy has already moved new traffic elsewhere.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    requestIdHeader: "x-request-id",
    // JSON bodies keep their types ({"name": 42} is a 400); path and query are matched by pattern.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  // JSON as the default parser reads it, but from bytes that must be valid UTF-8: decoded
  // leniently, invalid bytes would become U+FFFD and be stored as something the client never sent.
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (req, body: Buffer, done) => {
    const text = decodeUtf8(body);
    if (text === null) return done(Object.assign(new Error("the body is not valid UTF-8"), { statusCode: 400 }) as FastifyError, undefined);
    json(req, text, done);
  });
  // Node hands CONNECT to a "connect" listener and, with none, drops the connection unanswered.
  app.server.on("connect", (_req: unknown, socket: import("node:net").Socket) => {
    socket.on("error", () => {});
    // Read and drop whatever the client sends after it, or the socket never sees its end and stays open.
    socket.resume();
    socket.setTimeout(5_000, () => socket.destroy());
    socket.end("HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  });
  registerHealthRoutes(app, {
    db: opts.db,
    shipped: opts.shipped,
    version: opts.version,
    isAccepting: opts.isAccepting ?? (() => true),
  });
  registerItemRoutes(app, opts.db);
  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const { status, body } = errorAnswer(err);
    if (status >= 500) req.log.error({ err }, "request failed");
    else req.log.info({ err: err.message, status }, "request refused");
    return reply.code(status).send(body);
  });
  return app;
}
