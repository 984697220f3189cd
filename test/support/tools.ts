import { readFileSync } from "node:fs";
import { repoRoot } from "./database.js";

/** Paths of the tools testenv/setup.sh built (Trivy, the test-DB writer, actionlint). */
export function toolPath(name: "trivy" | "trivydb" | "actionlint"): string {
  try {
    return readFileSync(`${repoRoot}.testenv/${name}-path`, "utf8").trim();
  } catch {
    throw new Error(`${name} is not built: run \`npm test\` (testenv/setup.sh builds it)`);
  }
}

/**
 * A skip of something the run promises is a failure under CI=true, unless SLIPWAY_ALLOW_SKIP
 * (comma-separated) names it: returns REASON to skip with, or throws one line naming what is missing.
 */
export function allowedSkip(name: string, reason: string | undefined): string | undefined {
  if (!reason) return undefined;
  const allowed = (process.env.SLIPWAY_ALLOW_SKIP ?? "").split(",").map((s) => s.trim());
  if (process.env.CI === "true" && !allowed.includes(name)) {
    throw new Error(`CI=true and ${name} cannot run: ${reason} (set SLIPWAY_ALLOW_SKIP=${name} to let it skip)`);
  }
  return reason;
}
