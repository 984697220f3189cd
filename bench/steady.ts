import { startLoad } from "../test/support/load.js";
import { percentile } from "./report.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** req/s, p50 and p99 (ms) and failures of a 10 s window of steady load, after 2 s of warm-up. */
export async function steadyWindow(baseUrl: string, clients: number) {
  const load = startLoad({ baseUrl, clients, maxSeconds: 60 });
  await sleep(2_000);
  const from = Date.now();
  await sleep(10_000);
  const { samples } = await load.stop();
  const window = samples.filter((s) => s.at >= from && s.at <= from + 10_000);
  return { rps: window.length / 10, p50: percentile(window, 50), p99: percentile(window, 99), failed: window.filter((s) => s.status < 200 || s.status >= 300).length };
}
