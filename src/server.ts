import { buildApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createPool, openSessions, POOL_SIZE, sessionKeepingQueries } from "./db.js";
import { checkHealth } from "./health.js";
import { shippedVersions } from "./migrations.js";
import { claimSocket } from "./socket.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const config = loadConfig();
  const pool = createPool(config.databaseUrl);
  const db = sessionKeepingQueries(pool);
  const shipped = await shippedVersions(config.migrationsDir);
  let accepting = true;
  const app = buildApp({ db, version: config.version, shipped, logLevel: config.logLevel, isAccepting: () => accepting });
  pool.on("error", (err) => app.log.warn({ err }, "idle database client error"));

  // Bind the port only once ready: a proxy or health probe never meets a half-started app.
  for (let attempt = 1; ; attempt++) {
    let cause: string | undefined;
    const report = await checkHealth(db, shipped, config.version, (err) => (cause = err.message));
    if (report.status === "ok") break;
    app.log.warn({ attempt, checks: report.checks, cause }, "not ready yet; waiting before listening");
    await sleep(Math.min(250 * attempt, 2_000));
  }
  // Not awaited: the port binds as soon as the database answers (opening ten sessions took
  // 150 ms on a quiet host, more on a busy one, all of it added to a deploy's health wait).
  void openSessions(pool).then((opened) => {
    if (opened < POOL_SIZE) app.log.warn({ opened, size: POOL_SIZE }, "opened fewer database sessions than the pool holds; the rest open on demand");
  });
  if (config.listenSocket) {
    const path = config.listenSocket;
    await claimSocket((bound) => app.listen({ path: bound }), path, {
      onWait: (s) => s % 5 === 0 && app.log.warn({ path, waitedSeconds: s }, "another live server holds this slot's socket; waiting for it to stop"),
    });
  } else {
    await app.listen({ port: config.port, host: config.host });
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    accepting = false;
    if (config.shutdownDelayMs > 0) {
      app.log.info({ signal, delayMs: config.shutdownDelayMs }, "stopping: readiness fails, still serving while the load balancer catches up");
      await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
    }
    app.log.info({ signal }, "draining: no new connections, finishing in-flight requests");
    const timer = setTimeout(() => {
      app.log.error({ graceMs: config.shutdownGraceMs }, "drain timed out; exiting");
      process.exit(1);
    }, config.shutdownGraceMs);
    timer.unref();
    await app.close();
    await pool.end();
    app.log.info("drained; bye");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`${JSON.stringify({ level: 60, msg: "fatal startup error", err: String(err) })}\n`);
  process.exit(1);
});
