/**
 * The guard's and the canary's judge (lib/judge.awk) on streams written here: what it decides
 * from the proxy's log lines and the clock's ticks, with no Docker. test/release.test.ts runs it
 * on a real proxy's log.
 */
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

const line = (slot: string, status: number, duration: number, uri = "/api/items", client?: string) =>
  `{"time":"2026-12-02T00:00:00+00:00","request_id":"r","method":"POST","uri":"${uri}",${client === undefined ? "" : `"client":"${client}",`}"status":${status},"duration":${duration},"upstream":"unix:/run/slipway/api-${slot}.sock","upstream_status":"${status}","bytes":2}`;

interface Opts { base?: string; seconds?: number; baseline?: number; minTotal?: number; minClients?: number }

/** The judge's -v arguments, as watch_slot passes them. */
function judgeArgs(o: Opts): string[] {
  const vars = {
    sock: "/api-b.sock", base: o.base ? `/api-${o.base}.sock` : "", start: 1000, seconds: o.seconds ?? 30, every: 3, max5xx: 1, p99min: 1,
    factor: 3, baseline: o.baseline ?? 0.02, min_sample: 5, min_total: o.minTotal ?? 20, window: 100, bad: 2,
    ...(o.minClients === undefined ? {} : { min_clients: o.minClients }),
  };
  return Object.entries(vars).flatMap(([k, v]) => ["-v", `${k}=${v}`]);
}

async function judge(lines: string[], o: Opts = {}): Promise<string[]> {
  const r = await execa("awk", ["-f", "scripts/lib/judge.awk", ...judgeArgs(o)], { cwd: repoRoot, input: `${lines.join("\n")}\n` });
  return r.stdout.split("\n").filter(Boolean);
}

/** A stream of SECONDS at RATE requests a second to slot b (each from make), ticks every 0.2 s. */
function stream(seconds: number, rate: number, make: (i: number, t: number) => string | string[]): string[] {
  const out: string[] = [];
  let i = 0;
  for (let k = 0; k <= seconds * 5 + 1; k++) {
    const t = 1000 + k / 5;
    out.push(`TICK ${t.toFixed(3)}`);
    for (let k = 0; k < rate / 5; k++) out.push(...[make(i++, t)].flat());
  }
  return out;
}

describe("the streaming judge (lib/judge.awk)", () => {
  it("a release failing every write trips within a handful of requests, not seconds", async () => {
    const out = await judge(stream(30, 300, () => [line("b", 500, 0.003), line("b", 200, 0.002, "/health")]));
    expect(out.at(-1)).toBe("TRIP 5xx 100.0 % > 1 % (6 of 6 requests)");
  });

  it("a healthy release passes the whole window, with a progress line every 3 s; /health is not counted", async () => {
    const out = await judge(stream(30, 300, (i) => [line("b", 200, 0.004 + (i % 7) / 1000), line("b", 503, 0.001, "/health/ready")]));
    expect(out.filter((l) => l.startsWith("STEP")).length).toBeGreaterThanOrEqual(9);
    expect(out.at(-1)).toMatch(/^PASS \d+ 0 0$/);
  });

  it("latency that doubles but stays under the limit passes; past the limit for 3 s on end, it trips", async () => {
    const doubled = await judge(stream(30, 100, () => line("b", 200, 0.04)), { baseline: 0.02 });
    expect(doubled.at(-1)).toMatch(/^PASS /);
    const slow = await judge(stream(30, 100, () => line("b", 200, 1.4)), { baseline: 0.02 });
    expect(slow.at(-1)).toBe("TRIP p99 1.400 s > 1.000 s (100 requests)");
    // A spike shorter than GUARD_SAMPLE_SECONDS (a slow second after the switch) does not trip.
    const spike = await judge(stream(30, 100, (_i, t) => line("b", 200, t >= 1004 && t < 1005.5 ? 1.4 : 0.01)), { baseline: 0.02 });
    expect(spike.at(-1)).toMatch(/^PASS /);
  });

  it("one 5xx among many requests is not a trip", async () => {
    const out = await judge(stream(30, 300, (i) => line("b", i === 500 ? 502 : 200, 0.004)));
    expect(out.at(-1)).toMatch(/^PASS \d+ 1 0$/);
  });

  it("beside a canary: a fault both releases share is not the canary's; its own is, naming what the stable release got", async () => {
    // A database fault: a fifth of either release's writes fail.
    const shared = await judge(stream(10, 300, (i) => (i % 10 === 0 ? line("b", (i / 10) % 5 === 0 ? 500 : 200, 0.003) : line("a", i % 10 === 1 || i % 10 === 6 ? 500 : 200, 0.003))), { base: "a", seconds: 10 });
    expect(shared.at(-1)).toMatch(/^PASS /);
    const own = await judge(stream(10, 300, (i) => (i % 10 === 0 ? line("b", 500, 0.003) : line("a", 200, 0.003))), { base: "a", seconds: 10 });
    expect(own.at(-1)).toMatch(/^TRIP 5xx 100\.0 % > 1 % \(6 of 6 requests\)\t\(stable: \d+ requests, 0 5xx\)$/);
  });

  it("answers while the stream is still open: the host's awk reads line by line (mawk read a pipe in 4 KiB blocks, so a quiet host's verdict came 30 s late)", async () => {
    // A starved 1 s canary step's ticks, then nothing more, and the pipe left open as docker logs -f leaves it.
    const args = judgeArgs({ base: "a", seconds: 1, baseline: 0, minTotal: 50 }).map((a) => `'${a}'`).join(" ");
    const run = execa("bash", ["-c", `source scripts/lib/guard.sh && judge_stream -f scripts/lib/judge.awk ${args}`], { cwd: repoRoot, stdin: "pipe" });
    run.stdin!.write(stream(3, 0, () => []).join("\n") + "\n");
    let out = "";
    const verdict = new Promise<boolean>((resolve) => {
      run.stdout!.on("data", (d: Buffer) => { out += d; if (/STARVED/.test(out)) resolve(true); });
      // Generous: a judge that reads as lines come answers in milliseconds; the block-reading one never does before the pipe closes.
      setTimeout(() => resolve(false), 10_000);
    });
    const beforeClose = await verdict;
    run.stdin!.end();
    await run;
    expect(beforeClose, `the judge answered only once its input closed: ${out}`).toBe(true);
    expect(out.trim().split("\n").at(-1)).toBe("STARVED 0 2");
  });

  it("a canary short of its requests waits once, up to its length again, then is starved; the guard passes unjudged", async () => {
    const few = stream(20, 5, (i) => (i % 5 === 0 ? line("b", 200, 0.003) : line("a", 200, 0.003)));
    const canary = await judge(few, { base: "a", seconds: 10, minTotal: 30 });
    expect(canary.filter((l) => l.startsWith("WAIT"))).toEqual(["WAIT only 10 of the 30 requests needed so far; waiting up to 10s more"]);
    expect(canary.at(-1)).toBe("STARVED 20 20");
    const guard = await judge(stream(30, 0, () => []));
    expect(guard.at(-1)).toBe("PASS 0 0 0");
  });

  describe("by client: a release is judged by what more than one client sees (GUARD_MIN_CLIENTS)", () => {
    /** Ten clients' healthy writes, and every third request one hostile client's request that any release answers 500. */
    const hostile = (i: number, status = 200, slot = "b") => (i % 3 === 0 ? line(slot, 500, 0.002, "/api/items?limit=999", "203.0.113.66") : line(slot, status, 0.003, "/api/items", `198.51.100.${i % 10}`));

    it("one client's 5xx, a third of all requests, never trip a healthy release; PASS says how many that client got", async () => {
      const out = await judge(stream(30, 300, (i) => hostile(i)), { minClients: 2 });
      const [, total, errors, top] = out.at(-1)!.split(" ").map(Number);
      expect(out.at(-1)).toMatch(/^PASS /);
      expect(errors).toBeGreaterThan(0.3 * total!);
      expect(top).toBe(errors);
      // Counted request by request, as before, the same stream trips at once.
      expect((await judge(stream(30, 300, (i) => hostile(i)), { minClients: 1 })).at(-1)).toMatch(/^TRIP 5xx 3\d\.\d % > 1 % /);
    });

    it("a release failing every client's writes still trips within a handful of requests, the hostile one left out", async () => {
      const out = await judge(stream(30, 300, (i) => hostile(i, 500)), { minClients: 2 });
      expect(out.at(-1)).toMatch(/^TRIP 5xx \d+\.\d % > 1 % \((\d+) of (\d+) requests; the \d of the client with the most left out\)$/);
      // Within a handful of requests, as before.
      expect(Number(/of (\d+) requests/.exec(out.at(-1)!)![1])).toBeLessThanOrEqual(12);
    });

    it("two clients failing trip at GUARD_MIN_CLIENTS 2, not at 3", async () => {
      const two = (i: number) => (i % 3 === 0 ? line("b", 500, 0.002, "/api/items", `203.0.113.${i % 2}`) : line("b", 200, 0.003, "/api/items", `198.51.100.${i % 10}`));
      expect((await judge(stream(30, 300, two), { minClients: 2 })).at(-1)).toMatch(/^TRIP 5xx /);
      expect((await judge(stream(30, 300, two), { minClients: 3 })).at(-1)).toMatch(/^PASS /);
    });

    it("a client whose requests leave the window leaves the counts: its old 5xx do not stay against the release", async () => {
      // The hostile client for the first 5 s only, then two others fail one request each, far apart.
      const out = await judge(stream(30, 300, (i, t) => (t < 1005 ? hostile(i) : line("b", i === 4000 || i === 6000 ? 500 : 200, 0.003, "/api/items", `198.51.100.${i % 10}`))), { minClients: 2 });
      expect(out.at(-1)).toMatch(/^PASS \d+ \d+ \d+$/);
    });

    it("beside a canary the same rule holds on both slots: a hostile client on both is neither's fault", async () => {
      const both = (i: number) => hostile(i, 200, i % 2 === 0 ? "b" : "a");
      expect((await judge(stream(10, 300, both), { base: "a", seconds: 10, minClients: 2 })).at(-1)).toMatch(/^PASS /);
      const broken = (i: number) => (i % 2 === 0 ? hostile(i, 500, "b") : hostile(i, 200, "a"));
      expect((await judge(stream(10, 300, broken), { base: "a", seconds: 10, minClients: 2 })).at(-1)).toMatch(/^TRIP 5xx \d+\.\d % > 1 % .*\t\(stable: \d+ requests, \d+ 5xx\)$/);
    });

    it("a client value cannot forge another field: nginx escapes its quotes (escape=json)", async () => {
      const forged = (i: number) => line("b", 200, 0.003, "/api/items", i % 2 ? 'x\\",\\"status\\":500,\\"a\\":\\"' : "198.51.100.1");
      expect((await judge(stream(10, 300, forged), { seconds: 10, minClients: 2 })).at(-1)).toMatch(/^PASS \d+ 0 0$/);
    });
  });
});
