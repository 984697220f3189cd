/**
 * Release references: what `publish` returns, and what `deploy` sends the host. A release is
 * pinned by its registry digest so the host runs exactly the image that passed the scan, whatever
 * its tag points at by then.
 */
import { DIGEST_PATTERN as DIGEST } from "./contract.js";
import { validateRef } from "./shell.js";

/** `registry/repo:tag@sha256:…` (what the engine's publish returns) → `registry/repo@sha256:…`. */
export function pinnedReference(published: string): string {
  const match = /^([^@\s]+?)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@(sha256:[0-9a-f]{64})$/.exec(published);
  if (!match) throw new Error(`the registry returned ${JSON.stringify(published)}, not a reference with a sha256 digest`);
  return `${match[1]}@${match[2]}`;
}

/** The host scripts' release argument: `tag`, or `tag@digest` when a digest is given. */
export function releaseRef(tag: string, digest = ""): string {
  if (digest && !DIGEST.test(digest)) {
    throw new Error(`invalid digest ${JSON.stringify(digest)}: use sha256:<64 lowercase hex digits>, as ci prints it`);
  }
  if (digest && tag.includes("@") && !tag.endsWith(`@${digest}`)) {
    throw new Error(`${tag} and digest ${digest} pin different images; give one`);
  }
  return validateRef(digest && !tag.includes("@") ? `${tag}@${digest}` : tag);
}

/** What a host script's last machine-readable line says (scripts/lib.sh result_line). */
export interface HostResult {
  outcome: "ok" | "failed";
  /** deploy, rollback, guard-rollback, canary-rollback, … */
  action: string;
  tag: string;
  digest: string;
  previous: string;
  slot: string;
  /** The guard's and each canary step's verdict with its figures ("; "-joined), or "". */
  verdict: string;
  error: string;
}

const RESULT_LINE = /^slipway-result (\{.*\})\s*$/;

/** The last `slipway-result {…}` line of a host script's output, or undefined when it printed none (it stopped before it began). */
export function hostResult(output: string): HostResult | undefined {
  const line = output.split("\n").map((l) => RESULT_LINE.exec(l.trim())).filter(Boolean).at(-1);
  if (!line) return undefined;
  const raw = JSON.parse(line[1]!) as Record<string, unknown>;
  const text = (key: string) => (typeof raw[key] === "string" ? (raw[key] as string) : "");
  if (raw.outcome !== "ok" && raw.outcome !== "failed") throw new Error(`the host's result line has outcome ${JSON.stringify(raw.outcome)}`);
  return { outcome: raw.outcome, action: text("action"), tag: text("tag"), digest: text("digest"), previous: text("previous"), slot: text("slot"), verdict: text("verdict"), error: text("error") };
}

/** One line for a person (and the notification) from the host's result. */
export function resultSummary(r: HostResult): string {
  if (r.outcome === "failed") return `${r.action} failed: ${r.error}`;
  const digest = r.digest && r.digest !== "-" ? ` (${r.digest})` : "";
  const verdict = r.verdict ? `; ${r.verdict}` : "";
  return `${r.action === "deploy" ? "deployed" : "rolled back to"} ${r.tag}${digest}, slot ${r.slot || "?"}; before: ${r.previous || "-"}${verdict}`;
}

/** What `deploy` returns (dagger/src/result.ts's Release), from its output and smoke report; fails when the host printed no result line. */
export function releaseFields(log: string, smoke: string) {
  const r = hostResult(log);
  if (!r) throw new Error("the host printed no slipway-result line: is the bundle's deploy.sh older than this module? Deploy again with this module");
  const { action, tag, digest, slot, previous, verdict } = r;
  return { action, tag, digest, slot, previous, verdict, smoke: smoke.trim(), summary: resultSummary(r), log };
}
