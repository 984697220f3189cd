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
