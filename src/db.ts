import pg from "pg";

/** The slice of pg.Pool the app needs, so handlers can be given a pool or a client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * A pool of a fixed size: its sessions open as the app starts and stay open. A pool that grows
 * on demand connects when the load rises, and the load rises most during a roll (the other
 * replica stops, a backup runs, the new release boots): a new backend (fork, SCRAM) on a busy
 * database host then outlasted connectionTimeoutMillis, and /health called the database
 * unreachable (Swarm, v1 -> v2). HikariCP gives the same advice: a fixed-size pool answers spikes.
 */
export const POOL_SIZE = 10;

export function createPool(databaseUrl: string): pg.Pool {
  return new pg.Pool({
    connectionString: databaseUrl,
    max: POOL_SIZE,
    // pg-pool closes an idle session only while the pool holds more than min: never, here.
    // (So no idleTimeoutMillis: it would have nothing to close.)
    min: POOL_SIZE,
    connectionTimeoutMillis: 2_000,
    // A query stuck behind a lock must not hold a request (and a drain) forever.
    statement_timeout: 5_000,
  });
}

/**
 * Opens up to `size` sessions at once, each returned to the pool as it connects: a request that
 * comes meanwhile takes the first one free, and no request opens a session of its own. Best
 * effort: a database at max_connections leaves fewer, and the pool opens the rest on demand.
 * Resolves to how many were opened; never rejects.
 */
export async function openSessions(pool: pg.Pool, size = POOL_SIZE): Promise<number> {
  const tries = await Promise.allSettled(Array.from({ length: size }, async () => (await pool.connect()).release()));
  return tries.filter((t) => t.status === "fulfilled").length;
}

/** The server refused one statement (severity ERROR, not FATAL or PANIC): its session still works. */
export function sessionSurvives(err: unknown): boolean {
  return err instanceof pg.DatabaseError && err.severity === "ERROR";
}

// A lost connection emits "error" on the client as well as failing its query; the query's
// rejection reports it, and an unheard "error" event would end the process.
const ignore = () => {};

/**
 * Queries on pooled sessions that outlive the statements the server refuses. pg.Pool#query
 * discards the session after any failed query: a burst of such errors (a missing table, statement
 * timeouts behind a migration's lock) then opens a new backend per request, and on a busy host the
 * next connect outlasts connectionTimeoutMillis, so /health calls the database unreachable.
 */
export function sessionKeepingQueries(pool: pg.Pool): Queryable {
  return {
    async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      const client = await pool.connect();
      client.on("error", ignore);
      try {
        const result = await client.query<R>(text, values);
        client.off("error", ignore);
        client.release();
        return result;
      } catch (err) {
        client.off("error", ignore);
        client.release(sessionSurvives(err) ? undefined : (err as Error));
        throw err;
      }
    },
  };
}
