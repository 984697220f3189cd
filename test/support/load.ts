import http from "node:http";

/** One request's outcome; `ok` means a 2xx answer (a 4xx from our own input would be a bug too). */
export interface Sample {
  at: number;
  ms: number;
  kind: "read" | "write";
  status: number;
  error?: string;
  /** For reads: the version /health reported. */
  version?: string;
  /** For a failed answer: the start of its body (the API's JSON or a proxy's error page). */
  body?: string;
}

export interface LoadResult {
  samples: Sample[];
  sent: number;
  failed: Sample[];
  /** Ids of items whose POST returned 201: they must all still exist afterwards. */
  createdIds: number[];
}

export interface LoadOptions {
  baseUrl: string;
  clients: number;
  /** Hard bound on the run, whatever happens to `stop`. */
  maxSeconds: number;
}

/**
 * The address client ID says it has, in the X-Forwarded-For header: every load client reaches the
 * proxy from the same address (Docker's port forward), so the stacks name clients by that header
 * (PROXY_CLIENT_HEADER), as a host behind a CDN does. Only a header: no traffic goes there.
 */
export const clientAddress = (id: number) => `198.51.${100 + Math.floor(id / 250)}.${(id % 250) + 1}`;

/**
 * A bounded loopback load generator: each client alternates GET /health and POST /api/items
 * on its own keep-alive connection until stopped, under its own client address. Every non-2xx
 * answer and every connection error counts as a failure.
 */
export function startLoad(opts: LoadOptions): { stop: () => Promise<LoadResult> } {
  const samples: Sample[] = [];
  const createdIds: number[] = [];
  const deadline = Date.now() + opts.maxSeconds * 1000;
  let running = true;
  const url = new URL(opts.baseUrl);

  const request = (agent: http.Agent, kind: Sample["kind"], n: number, client: string) =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      const body = kind === "write" ? JSON.stringify({ name: `load-${n}` }) : undefined;
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          agent,
          method: kind === "write" ? "POST" : "GET",
          path: kind === "write" ? "/api/items" : "/health",
          headers: { "x-forwarded-for": client, ...(body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}) },
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            const sample: Sample = { at: Date.now(), ms: performance.now() - start, kind, status };
            if (status < 200 || status >= 300) sample.body = Buffer.concat(chunks).toString().slice(0, 300);
            if (status === 201) createdIds.push(JSON.parse(Buffer.concat(chunks).toString()).id);
            if (kind === "read" && status === 200) sample.version = JSON.parse(Buffer.concat(chunks).toString()).version;
            samples.push(sample);
            resolve();
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (err) => {
        samples.push({ at: Date.now(), ms: performance.now() - start, kind, status: 0, error: err.message });
        resolve();
      });
      req.end(body);
    });

  const client = async (id: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let n = 0; running && Date.now() < deadline; n++) {
      await request(agent, n % 2 === 0 ? "read" : "write", id * 1_000_000 + n, clientAddress(id));
    }
    agent.destroy();
  };
  const clients = Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i)));

  return {
    async stop() {
      running = false;
      await clients;
      const failed = samples.filter((s) => s.status < 200 || s.status >= 300);
      return { samples, sent: samples.length, failed, createdIds };
    },
  };
}

export function describeFailures(result: LoadResult): string {
  const byCause = new Map<string, number>();
  for (const f of result.failed) {
    const key = f.error ?? `HTTP ${f.status} on ${f.kind}`;
    byCause.set(key, (byCause.get(key) ?? 0) + 1);
  }
  return [...byCause].map(([k, v]) => `${v} x ${k}`).join(", ") || "none";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One hostile client: PATH requested back to back on one keep-alive connection from address
 * CLIENT until stopped (at most MAXSECONDS), as a client sending a request that any release
 * answers 5xx. Resolves to what it got, by status.
 */
export function startTrickle(opts: { baseUrl: string; path: string; client: string; maxSeconds: number }): { stop: () => Promise<Map<number, number>> } {
  const url = new URL(opts.path, opts.baseUrl);
  const statuses = new Map<number, number>();
  const deadline = Date.now() + opts.maxSeconds * 1000;
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = () =>
    new Promise<void>((resolve) => {
      const req = http.get(url, { agent, headers: { "x-forwarded-for": opts.client }, timeout: 10_000 }, (res) => {
        res.resume();
        res.on("end", () => {
          statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", () => {
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
        resolve();
      });
    });
  const loop = (async () => {
    while (running && Date.now() < deadline) await once();
    agent.destroy();
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return statuses;
    },
  };
}

/** Runs `action` while the load runs, with a second of traffic before and after it; `endedAt` is when the action returned. */
export async function runUnderLoad<T>(opts: LoadOptions, action: () => Promise<T>): Promise<{ result: T; load: LoadResult; endedAt: number }> {
  const load = startLoad(opts);
  await sleep(1_000);
  const result = await action();
  const endedAt = Date.now();
  await sleep(1_000);
  return { result, load: await load.stop(), endedAt };
}

export function report(label: string, load: LoadResult): void {
  const writes = load.samples.filter((s) => s.kind === "write").length;
  console.log(`${label}: ${load.sent} requests (${writes} writes), ${load.failed.length} failed (${describeFailures(load)})`);
}

/**
 * Every process's argv on this host (containers' too: their processes are the host's), sampled
 * every 20 ms while ACTION runs: what of SECRETS any of them held. A secret in argv is readable
 * by every user of the host (ps).
 */
export async function secretsInArgv<T>(secrets: string[], action: () => Promise<T>): Promise<{ result: T; hits: string[]; samples: number }> {
  const { readdirSync, readFileSync } = await import("node:fs");
  const hits = new Set<string>();
  let samples = 0;
  let running = true;
  const sample = () => {
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      let argv = "";
      try {
        argv = readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ");
      } catch {
        continue;
      }
      for (const s of secrets) if (argv.includes(s)) hits.add(`${pid}: ${argv.slice(0, 200)}`);
    }
    samples++;
  };
  const loop = (async () => {
    while (running) {
      sample();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    return { result: await action(), hits: [...hits], samples };
  } finally {
    running = false;
    await loop;
  }
}
