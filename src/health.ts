import type { Queryable } from "./db.js";
import { pendingMigrations } from "./migrations.js";

export type CheckState = "ok" | string;

export interface HealthReport {
  status: "ok" | "fail";
  version: string;
  checks: { database: CheckState; migrations: CheckState };
}

/**
 * Runs the readiness checks; each failing check is named with a short cause class. /health is
 * public: the driver's message (an address, a role name) goes to ONERROR, the log, not the answer.
 */
export async function checkHealth(db: Queryable, shipped: readonly string[], version: string, onError: (err: Error) => void = () => {}): Promise<HealthReport> {
  let database: CheckState = "ok";
  let migrations: CheckState = "ok";
  try {
    await db.query("SELECT 1");
    const pending = await pendingMigrations(db, shipped);
    if (pending.length > 0) migrations = `pending: ${pending.join(", ")}`;
  } catch (err) {
    database = "unreachable";
    onError(err as Error);
    migrations = "unknown";
  }
  const status = database === "ok" && migrations === "ok" ? "ok" : "fail";
  return { status, version, checks: { database, migrations } };
}
