/**
 * The smoke test: a real user journey through the public URL after a release, then a verdict.
 * /health must report the expected version, then an item is created, read back and deleted.
 * Takes `fetch` as a parameter so tests run it against a real server.
 */

export interface SmokeStep {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

export interface SmokeOptions {
  /** The version /health must report (the release's tag); any when empty. */
  version?: string;
  /** How long /health may take to answer ok (a proxy still settling); the other steps get one try. */
  healthWaitMs?: number;
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

/** A public base URL: http(s), no credentials, query or fragment. */
export function validateUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`invalid url ${JSON.stringify(url)}: use http(s)://host[:port][/path], e.g. https://app.example.com`);
  }
  if (!/^https?:$/.test(parsed.protocol) || parsed.username || parsed.password || parsed.search || parsed.hash) {
    throw new Error(`invalid url ${JSON.stringify(url)}: use http(s)://host[:port][/path] with no credentials, query or fragment`);
  }
  return parsed.href.replace(/\/$/, "");
}

/** Runs the journey step by step, stopping at the first failure. Never throws for a failed step. */
export async function smokeJourney(url: string, opts: SmokeOptions = {}): Promise<SmokeStep[]> {
  const base = validateUrl(url);
  const doFetch = opts.fetch ?? fetch;
  const timeout = opts.requestTimeoutMs ?? 10_000;
  const steps: SmokeStep[] = [];
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await doFetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeout),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text: text.slice(0, 200) };
  };
  const step = async (name: string, run: () => Promise<string>) => {
    const start = Date.now();
    try {
      steps.push({ name, ok: true, detail: await run(), ms: Date.now() - start });
    } catch (err) {
      steps.push({ name, ok: false, detail: (err as Error).message, ms: Date.now() - start });
    }
    return steps.at(-1)!.ok;
  };

  const healthy = await step("GET /health", async () => {
    const deadline = Date.now() + (opts.healthWaitMs ?? 15_000);
    let last = "";
    for (;;) {
      const r = await call("GET", "/health").catch((e: Error) => ({ status: 0, json: undefined, text: e.message }));
      const version = r.json?.version;
      if (r.status === 200 && r.json?.status === "ok" && (!opts.version || version === opts.version)) return `ok, version ${version}`;
      last = r.status === 200 ? `reports version ${version}, not ${opts.version}` : `answered ${r.status || "nothing"}: ${r.text}`;
      if (Date.now() >= deadline) throw new Error(last);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });
  if (!healthy) return steps;

  let id: number | undefined;
  const name = `slipway-smoke-${Date.now()}`;
  const expect = (r: { status: number; text: string }, status: number) => {
    if (r.status !== status) throw new Error(`answered ${r.status}, not ${status}: ${r.text}`);
  };
  if (!(await step("POST /api/items", async () => {
    const r = await call("POST", "/api/items", { name });
    expect(r, 201);
    id = r.json?.id;
    if (typeof id !== "number") throw new Error(`no item id in ${r.text}`);
    return `created item ${id}`;
  }))) return steps;
  if (!(await step("GET /api/items/:id", async () => {
    const r = await call("GET", `/api/items/${id}`);
    expect(r, 200);
    if (r.json?.name !== name) throw new Error(`read back ${r.text}, not the item just created`);
    return `read item ${id}`;
  }))) return steps;
  if (!(await step("DELETE /api/items/:id", async () => {
    expect(await call("DELETE", `/api/items/${id}`), 204);
    return `deleted item ${id}`;
  }))) return steps;
  await step("GET /api/items/:id after delete", async () => {
    expect(await call("GET", `/api/items/${id}`), 404);
    return "gone";
  });
  return steps;
}

/** One line per step, and whether the journey passed. */
export function smokeReport(steps: SmokeStep[]): { passed: boolean; text: string } {
  const passed = steps.length > 0 && steps.every((s) => s.ok);
  const lines = steps.map((s) => `${s.ok ? "ok  " : "FAIL"} ${s.name} (${s.ms} ms): ${s.detail}`);
  const failed = steps.find((s) => !s.ok);
  lines.push(passed ? "smoke test passed" : `smoke test failed at ${failed?.name ?? "the start"}: ${failed?.detail ?? "no step ran"}`);
  return { passed, text: lines.join("\n") };
}
