/** Pure helpers for the benchmark report: percentiles and an SVG latency-over-time chart. */

export interface Phase {
  name: string;
  at: number;
}

export interface Run {
  scenario: string;
  clients: number;
  ok: boolean;
  wallMs: number;
  servingAllMs: number | null;
  requests: number;
  failed: number;
  steadyP50: number | null;
  steadyP99: number | null;
  rollP50: number | null;
  rollP99: number | null;
  start: number;
  phases: Phase[];
  /** t: ms since the action started; ms: latency. */
  samples: { t: number; ms: number; ok: boolean }[];
}

export function percentile(samples: readonly { ms: number }[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Milliseconds from phase `from` to phase `to` of a run, or null when either is missing. */
export function phaseSpan(run: Pick<Run, "phases">, from: string, to: string): number | null {
  const a = run.phases.find((p) => p.name === from)?.at;
  const b = run.phases.find((p) => p.name === to)?.at;
  return a === undefined || b === undefined ? null : b - a;
}

/** One panel per run: p99 latency per 250 ms bucket, failures in red, phases as vertical lines. */
export function renderSvg(runs: readonly Run[]): string {
  const W = 900, H = 180, PAD = 40;
  const panels = runs.map((run, i) => {
    const y0 = i * (H + 30);
    const buckets = new Map<number, { ms: number[]; failed: number }>();
    for (const s of run.samples) {
      const b = Math.floor(s.t / 250);
      const e = buckets.get(b) ?? { ms: [], failed: 0 };
      e.ms.push(s.ms);
      if (!s.ok) e.failed++;
      buckets.set(b, e);
    }
    const keys = [...buckets.keys()].sort((a, b) => a - b);
    const tMin = (keys[0] ?? 0) * 250, tMax = ((keys.at(-1) ?? 1) + 1) * 250;
    const maxMs = Math.max(10, ...[...buckets.values()].map((b) => percentile(b.ms.map((ms) => ({ ms })), 99) ?? 0));
    const x = (t: number) => PAD + ((t - tMin) / (tMax - tMin || 1)) * (W - 2 * PAD);
    const y = (ms: number) => y0 + H - ((ms / maxMs) * (H - 30));
    const points = keys.map((k) => `${x(k * 250).toFixed(1)},${y(percentile(buckets.get(k)!.ms.map((ms) => ({ ms })), 99) ?? 0).toFixed(1)}`).join(" ");
    const fails = keys.filter((k) => buckets.get(k)!.failed > 0).map((k) => `<rect x="${x(k * 250).toFixed(1)}" y="${y0 + 20}" width="4" height="${H - 20}" fill="red" opacity="0.5"/>`).join("");
    const phases = [{ name: "start", at: run.start }, ...run.phases]
      // Labels step down so phases a moment apart stay readable.
      .map((p, k) => `<line x1="${x(p.at - run.start).toFixed(1)}" x2="${x(p.at - run.start).toFixed(1)}" y1="${y0 + 20}" y2="${y0 + H}" stroke="#888" stroke-dasharray="3"/><text x="${(x(p.at - run.start) + 2).toFixed(1)}" y="${y0 + 30 + (k % 3) * 11}" font-size="10">${p.name}</text>`)
      .join("");
    // The guard window, shaded: from its start to the switch back or its pass.
    const guardAt = run.phases.find((p) => p.name === "guard")?.at;
    const guardEnd = run.phases.find((p) => p.name === "revert" || p.name === "guard passed")?.at;
    const guard = guardAt === undefined ? "" : `<rect x="${x(guardAt - run.start).toFixed(1)}" y="${y0 + 20}" width="${Math.max(2, x((guardEnd ?? run.start + tMax) - run.start) - x(guardAt - run.start)).toFixed(1)}" height="${H - 20}" fill="orange" opacity="0.15"/>`;
    return `<g><text x="${PAD}" y="${y0 + 14}" font-size="12" font-weight="bold">${run.scenario}, ${run.clients} clients: p99 latency per 250 ms (max ${maxMs.toFixed(0)} ms), ${run.failed} failed</text>${guard}${phases}${fails}<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="${points}"/><line x1="${PAD}" x2="${W - PAD}" y1="${y0 + H}" y2="${y0 + H}" stroke="black"/></g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${runs.length * (H + 30)}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${panels.join("")}</svg>\n`;
}
