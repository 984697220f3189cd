import type { FastifyInstance } from "fastify";
import type { Queryable } from "../db.js";
import { checkHealth } from "../health.js";
import { INSTANCE_HEADER, instanceName } from "../instance.js";

export interface HealthDeps {
  db: Queryable;
  shipped: readonly string[];
  version: string;
  /** False once shutdown began, so the container reports itself out of rotation. */
  isAccepting: () => boolean;
}

export function registerHealthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  app.get("/health/live", { logLevel: "warn" }, async () => ({ status: "ok", version: deps.version }));

  // Readiness also fails once shutdown began, to take this instance out of rotation; /health
  // does not: during SHUTDOWN_DELAY_MS the instance still serves every request a load balancer
  // that has not caught up sends it, /health among them (a monitor's or a user's).
  const full = (ready: boolean) => async (req: import("fastify").FastifyRequest, reply: import("fastify").FastifyReply) => {
    const report = await checkHealth(deps.db, deps.shipped, deps.version, (err) => req.log.warn({ err }, "health: the database is unreachable"));
    if (ready && !deps.isAccepting()) report.status = "fail";
    // Which container answered (its hostname): the health probe and the roll check they reach
    // the container they mean, not another server on the same socket path.
    reply.header(INSTANCE_HEADER, instanceName());
    return reply.code(report.status === "ok" ? 200 : 503).send(report);
  };
  app.get("/health", { logLevel: "warn" }, full(false));
  app.get("/health/ready", { logLevel: "warn" }, full(true));
}
