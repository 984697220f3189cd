import pg from "pg";

/** The slice of pg.Pool the app needs, so handlers can be given a pool or a client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export function createPool(databaseUrl: string): pg.Pool {
  return new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000,
    // A query stuck behind a lock must not hold a request (and a drain) forever.
    statement_timeout: 5_000,
  });
}
