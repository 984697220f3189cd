/**
 * What a load test keeps when a request fails: the failed requests' times, and what the proxy,
 * the API and Postgres logged around them, read from a follower started with the stack (so the
 * logs of containers a release removed are kept too). One failing CI run is then enough to tell
 * a product fault from a test fault.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, statfsSync, writeFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./database.js";
import type { LoadResult, Sample } from "./load.js";

export const DIAGNOSIS_DIR = join(repoRoot, ".testenv", "failures");

/** One log line a container wrote, with the time Docker stamped on it. */
export interface LogLine {
  container: string;
  at: number;
  text: string;
}

/** `docker compose logs --follow` of every profile of one compose project, into a file. */
export class LogTap {
  private child?: ChildProcess;
  private out?: WriteStream;
  private sampler?: ReturnType<typeof setInterval>;
  /** Free bytes on the disk that holds Docker's data (and so the database and the logs), once a second. */
  readonly disk: { at: number; free: number }[] = [];
  readonly file: string;

  constructor(readonly project: string, readonly cwd: string) {
    mkdirSync(join(repoRoot, ".testenv", "logs"), { recursive: true });
    this.file = join(repoRoot, ".testenv", "logs", `${project}.log`);
  }

  /** Follows the project's containers, those started later included (compose attaches to them). */
  start(): void {
    // Again once it exited: started before the project had a container, compose has nothing to follow.
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    if (!this.out) {
      this.out = createWriteStream(this.file, { flags: "a" });
      // A full disk is one of the faults this follower is for: it must not end the test run.
      this.out.on("error", () => undefined);
    }
    this.child = spawn("docker", ["compose", "-f", "docker-compose.prod.yml", "--profile", "*", "logs", "--follow", "--timestamps", "--no-color"], {
      cwd: this.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.pipe(this.out, { end: false });
    this.child.stderr!.pipe(this.out, { end: false });
    this.child.on("error", () => undefined);
    this.child.unref();
    // A full disk fails writes fast while reads pass, and loses the very log lines that would say so.
    this.sampler ??= setInterval(() => {
      try {
        const fs = statfsSync("/var/lib/docker");
        this.disk.push({ at: Date.now(), free: fs.bavail * fs.bsize });
        if (this.disk.length > 7200) this.disk.shift();
      } catch {
        // no such directory: nothing to sample
      }
    }, 1_000);
    this.sampler.unref();
  }

  stop(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.child?.kill("SIGTERM");
    this.child = undefined;
    this.out?.end();
  }

  lines(): LogLine[] {
    let text = "";
    try {
      text = readFileSync(this.file, "utf8");
    } catch {
      return [];
    }
    return parseComposeLogs(text);
  }
}

/** `api-b-1  | 2026-12-02T11:03:03.786146950Z text` (compose's erase-line codes dropped). */
export function parseComposeLogs(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split("\n")) {
    // eslint-disable-next-line no-control-regex
    const line = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
    const m = /^(\S+)\s+\|\s+(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s?(.*)$/.exec(line);
    if (m) out.push({ container: m[1]!, at: Date.parse(m[2]!), text: m[3]! });
  }
  return out;
}

const stamp = (ms: number) => new Date(ms).toISOString().slice(11, 23);

/** The lines that explain failures: errors and warnings, the proxy's 5xx, anything naming a failed request's id. */
function telling(line: LogLine, failedIds: Set<string>): boolean {
  if (/^proxy/.test(line.container)) {
    const m = /"request_id":"([^"]+)".*"status":(\d+)/.exec(line.text);
    if (m) return Number(m[2]) >= 500 || failedIds.has(m[1]!);
    return true; // nginx's own error lines
  }
  if (/"level":(?:[4-6]\d)/.test(line.text)) return true;
  if (/\b(ERROR|FATAL|PANIC|WARNING|error|fatal|killed|terminated)\b/.test(line.text)) return true;
  return [...failedIds].some((id) => line.text.includes(id));
}

/** The request ids the proxy gave the failed answers (its log has them; the API logs them as reqId). */
function failedRequestIds(lines: LogLine[], from: number, to: number): Set<string> {
  const ids = new Set<string>();
  for (const l of lines) {
    if (!/^proxy/.test(l.container) || l.at < from || l.at > to) continue;
    const m = /"request_id":"([^"]+)".*"status":(\d+)/.exec(l.text);
    if (m && Number(m[2]) >= 500) ids.add(m[1]!);
  }
  return ids;
}

function summariseFailures(failed: Sample[]): string[] {
  const byCause = new Map<string, Sample[]>();
  for (const f of failed) {
    const key = `${f.error ?? `HTTP ${f.status}`} on ${f.kind}${f.body ? `: ${f.body.slice(0, 120).replace(/\s+/g, " ")}` : ""}`;
    byCause.set(key, [...(byCause.get(key) ?? []), f]);
  }
  return [...byCause].map(([cause, s]) => {
    const ms = s.map((x) => x.ms).sort((a, b) => a - b);
    return `${s.length} x ${cause} (answered ${stamp(s[0]!.at)}..${stamp(s.at(-1)!.at)}, in ${ms[0]!.toFixed(0)}-${ms.at(-1)!.toFixed(0)} ms)`;
  });
}

/**
 * Writes what explains LOAD's failed requests to .testenv/failures/LABEL.log and returns a
 * summary of at most about 60 lines for the assertion message. Nothing when nothing failed.
 */
export function diagnose(label: string, load: LoadResult, tap?: LogTap): string {
  if (!load.failed.length) return "";
  const first = Math.min(...load.failed.map((f) => f.at - f.ms));
  const last = Math.max(...load.failed.map((f) => f.at));
  const from = first - 3_000;
  const to = last + 2_000;
  const lines = (tap?.lines() ?? []).filter((l) => l.at >= from && l.at <= to);
  const ids = failedRequestIds(lines, from, to);
  const told = lines.filter((l) => telling(l, ids));
  const distinct = new Map<string, number>();
  for (const l of told) {
    const key = `${l.container.replace(/-\d+$/, "")}: ${l.text.replace(/"(time|reqId|request_id|pid|hostname|responseTime|duration)":("[^"]*"|[0-9.]+),?/g, "").slice(0, 300)}`;
    distinct.set(key, (distinct.get(key) ?? 0) + 1);
  }
  const disk = (tap?.disk ?? []).filter((d) => d.at >= from && d.at <= to);
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const summary = [
    `${label}: ${load.failed.length} of ${load.sent} requests failed between ${stamp(first)} and ${stamp(last)} (UTC)`,
    ...summariseFailures(load.failed),
    disk.length ? `free disk under /var/lib/docker meanwhile: ${gib(Math.min(...disk.map((d) => d.free)))} at the least, ${gib(Math.max(...disk.map((d) => d.free)))} at the most` : "free disk: not sampled",
    tap ? `logs from ${stamp(from)} to ${stamp(to)}: ${lines.length} lines, ${told.length} telling; distinct:` : "no log tap: only the client's view",
    ...[...distinct].slice(0, 40).map(([k, n]) => `  ${n} x ${k}`),
  ];
  mkdirSync(DIAGNOSIS_DIR, { recursive: true });
  const file = join(DIAGNOSIS_DIR, `${label.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80)}-${Date.now()}.log`);
  const failures = load.failed.map((f) => `${stamp(f.at)} ${f.kind} ${f.status} ${f.ms.toFixed(0)}ms ${f.error ?? ""} ${f.body ?? ""}`);
  writeFileSync(file, [...summary, "", "== failed requests", ...failures, "", "== every log line in the window", ...lines.map((l) => `${stamp(l.at)} ${l.container} ${l.text}`)].join("\n"));
  return [...summary, `kept in ${file}`].join("\n");
}

/** Fails with the diagnosis when any request of LOAD failed. */
export function assertNoFailedRequests(label: string, load: LoadResult, tap?: LogTap): void {
  if (load.failed.length) throw new Error(diagnose(label, load, tap));
}

/** Fails with the diagnosis when anything failed but the bad release's own answers: writes it answered 500. */
export function assertOnlyBadWrites(label: string, load: LoadResult, tap?: LogTap): void {
  const other = load.failed.filter((f) => !(f.kind === "write" && f.status === 500));
  if (other.length) throw new Error(diagnose(label, { ...load, failed: other }, tap));
}
