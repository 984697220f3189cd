import { existsSync, readFileSync } from "node:fs";
import { execa } from "execa";
import { repoRoot } from "./database.js";

/** What testenv/dagger-engine.sh set up: the CLI's environment, or why the engine tests skip. */
export interface DaggerEngine {
  env: Record<string, string>;
  /** "path": a dagger CLI already installed; "built": the engine built from source here. */
  source: "path" | "built";
  /** Where the engine's containers reach this machine, and the registry as each side names it. */
  gateway?: string;
  engineRegistry?: string;
  hostRegistry?: string;
}

export function daggerEngine(): DaggerEngine | { skip: string } {
  const skipFile = `${repoRoot}.testenv/dagger-skip`;
  const envFile = `${repoRoot}.testenv/dagger.env`;
  if (existsSync(skipFile)) return { skip: readFileSync(skipFile, "utf8").trim() };
  if (!existsSync(envFile)) return { skip: "testenv/dagger-engine.sh has not run: run `npm test`" };
  const env = Object.fromEntries(
    readFileSync(envFile, "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  // build.sh prints PATH as "<bin>:$PATH" for a shell to expand.
  if (env.PATH) env.PATH = env.PATH.replace(/^"?([^"]*?)"?:"?\$PATH"?$/, "$1") + `:${process.env.PATH}`;
  return {
    env,
    source: env.SLIPWAY_DAGGER_SOURCE === "built" ? "built" : "path",
    gateway: env.SLIPWAY_ENGINE_GATEWAY,
    engineRegistry: env.SLIPWAY_ENGINE_REGISTRY,
    hostRegistry: env.SLIPWAY_HOST_REGISTRY,
  };
}

export interface DaggerResult {
  exitCode: number;
  stdout: string;
  /** stdout and stderr interleaved: the CLI's progress, the function's errors, the result. */
  all: string;
  seconds: number;
}

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} [dagger] ${msg}\n`);

/** Runs the real `dagger` CLI against the module in `cwd` (default: this repo), plain progress. */
export async function dagger(engine: DaggerEngine, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<DaggerResult> {
  const start = performance.now();
  log(`dagger ${args.join(" ")}`);
  const r = await execa("dagger", ["--progress=plain", ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...engine.env, NO_COLOR: "1", ...opts.env },
    reject: false,
    all: true,
    timeout: 1_200_000,
  });
  const seconds = (performance.now() - start) / 1000;
  log(`  exit ${r.exitCode} after ${seconds.toFixed(0)} s`);
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), all: String(r.all), seconds };
}
