import { readFileSync } from "node:fs";

/** Runtime configuration, read once from the environment and validated up front. */
export interface Config {
  port: number;
  host: string;
  databaseUrl: string;
  version: string;
  migrationsDir: string;
  logLevel: string;
  /** How long SIGTERM waits for in-flight requests before giving up. */
  shutdownGraceMs: number;
  /**
   * On SIGTERM, how long to keep serving while readiness fails, before the drain: the time a
   * load balancer that learns of the stop late (Swarm's DNS, gossiped to other nodes) still sends.
   */
  shutdownDelayMs: number;
  /** Listen on this unix socket instead of host:port (the proxy's release slots use this). */
  listenSocket?: string;
}

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

function intFrom(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${key}=${JSON.stringify(raw)} is not a non-negative integer; fix it in .env`);
  }
  return value;
}

/**
 * DATABASE_URL, with the password from DATABASE_PASSWORD_FILE (a Swarm secret, mounted as a file,
 * so the password is in no environment and no stack file) or DATABASE_PASSWORD (the Compose
 * stack), encoded here: any character works, `@`, `/`, `#` and `%` too.
 */
function databaseUrlFrom(env: NodeJS.ProcessEnv, readSecret: (path: string) => string): string {
  const databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) {
    throw new Error("DATABASE_URL is not set; set it (postgres://user:pass@host:5432/db) in the environment");
  }
  const file = env.DATABASE_PASSWORD_FILE;
  let password: string;
  if (file) {
    try {
      password = readSecret(file).replace(/\r?\n$/, "");
    } catch (err) {
      throw new Error(`DATABASE_PASSWORD_FILE=${file} cannot be read (${(err as Error).message}); grant the secret to this service`);
    }
  } else if (env.DATABASE_PASSWORD) {
    password = env.DATABASE_PASSWORD;
  } else {
    return databaseUrl;
  }
  const url = new URL(databaseUrl);
  url.password = encodeURIComponent(password);
  return url.toString();
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, readSecret = (path: string) => readFileSync(path, "utf8")): Config {
  const databaseUrl = databaseUrlFrom(env, readSecret);
  const logLevel = env.LOG_LEVEL ?? "info";
  if (!LOG_LEVELS.has(logLevel)) {
    throw new Error(`LOG_LEVEL=${logLevel} is unknown; use one of ${[...LOG_LEVELS].join(", ")}`);
  }
  const listenSocket = env.LISTEN_SOCKET || undefined;
  if (listenSocket !== undefined && !/^\/[A-Za-z0-9_./-]+\.sock$/.test(listenSocket)) {
    throw new Error(`LISTEN_SOCKET=${listenSocket} is not an absolute path ending in .sock; fix it in the compose file`);
  }
  return {
    listenSocket,
    port: intFrom(env, "PORT", 3000),
    host: env.HOST ?? "0.0.0.0",
    databaseUrl,
    version: env.APP_VERSION ?? "dev",
    migrationsDir: env.MIGRATIONS_DIR ?? "db/migrations",
    logLevel,
    shutdownGraceMs: intFrom(env, "SHUTDOWN_GRACE_MS", 20_000),
    shutdownDelayMs: intFrom(env, "SHUTDOWN_DELAY_MS", 0),
  };
}
