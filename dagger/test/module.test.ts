/**
 * What `dagger functions` lists, checked fast with the SDK's own module introspector (the real
 * engine runs the module in test/dagger-engine.test.ts), plus the ways a module that
 * type-checks still breaks in the engine: a test file under src/ (the runtime loads every .ts
 * there), importing a name the generated runtime library lacks, a side effect served from the
 * function cache, and drifting pins.
 *
 * The module's tests live in dagger/test/, not beside the code, for the first of those reasons.
 */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { IMAGES, LINT_COMMANDS, UNIT_TEST_COMMAND } from "../src/commands/pipeline.js";
import { TRIVY_IMAGE } from "../src/commands/trivy.js";
import { CANARY_MIN_REQUESTS_DEFAULT, CANARY_STEP_SECONDS_DEFAULT } from "../src/commands/contract.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const src = join(repo, "dagger/src");
const sdk = join(repo, "dagger/node_modules/@dagger.io/dagger/dist/src");

interface Arg { defaultValue?: unknown; isOptional: boolean; description: string; defaultPath?: string; ignore?: string[] }
interface Fn { description: string; arguments: Record<string, Arg> }
/** What the introspector decides beyond toJSON(): the @func cache policy and the @check mark. */
interface Policy { cache?: string; isCheck: boolean }
let fns: Record<string, Fn>;
let ctor: Fn;
let policies: Record<string, Policy>;
let objectDescription: string;
let release: { description: string; properties: Record<string, { description: string }> };
let deployReturns: unknown;

beforeAll(async () => {
  // The introspector reads API types only from a non-.d.ts `*client.gen.ts`.
  const dir = mkdtempSync(join(tmpdir(), "dagger-introspect-"));
  const clientGen = join(dir, "client.gen.ts");
  copyFileSync(join(sdk, "api/client.gen.d.ts"), clientGen);
  writeFileSync(clientGen, readFileSync(clientGen, "utf8").replace('from "../common/context.js"', `from "${join(sdk, "common/context.js")}"`));
  const { scan } = await import(join(sdk, "module/introspector/index.js"));
  const introspected = await scan([join(src, "index.ts"), join(src, "result.ts"), clientGen], "slipway", false);
  const mod = introspected.toJSON();
  release = mod.objects.Release;
  deployReturns = JSON.stringify(mod.objects.Slipway.methods.deploy.returnType);
  fns = mod.objects.Slipway.methods;
  ctor = mod.objects.Slipway._constructor;
  objectDescription = mod.objects.Slipway.description;
  policies = Object.fromEntries(
    Object.entries(introspected.objects.Slipway.methods as Record<string, Policy>).map(([k, f]) => [k, { cache: f.cache, isCheck: f.isCheck }]),
  );
}, 60_000);

describe("the Dagger module as the engine sees it", () => {
  it("exposes exactly the pipeline's functions, each documented", () => {
    expect(Object.keys(fns).sort()).toEqual(["backup", "build", "ci", "deploy", "kpi", "lint", "migrationPlan", "publish", "rollback", "scan", "scanReports", "smoke", "status", "test"]);
    for (const [name, fn] of Object.entries(fns)) expect(fn.description.length, name).toBeGreaterThan(20);
    expect(objectDescription).toMatch(/release pipeline/);
  });

  it("returns a typed Release from deploy, each field documented, so `… deploy --tag=v2 digest` selects one", () => {
    expect(Object.keys(release.properties).sort()).toEqual(["action", "digest", "log", "previous", "slot", "smoke", "summary", "tag", "verdict"]);
    for (const [name, p] of Object.entries(release.properties)) expect(p.description.length, name).toBeGreaterThan(10);
    expect(release.description).toMatch(/summary/);
    expect(deployReturns).toMatch(/Release/);
  });

  it("defaults every source to the repo, so `dagger call ci` needs no flags", () => {
    for (const [name, fn] of Object.entries(fns)) {
      const source = fn.arguments.source;
      if (!source) continue;
      expect(source.defaultPath, name).toBe("/");
      expect(source.ignore, name).toEqual(expect.arrayContaining(["**/node_modules", ".git", ".env"]));
    }
    const required = Object.entries(fns.ci!.arguments).filter(([k, a]) => k !== "source" && !a.isOptional && a.defaultValue === undefined);
    expect(required).toEqual([]);
  });

  it("has the documented arguments and defaults", () => {
    expect(fns.build!.arguments.version!.defaultValue).toBe("dev");
    expect(ctor.arguments.severity!.defaultValue).toBe("HIGH,CRITICAL");
    expect(fns.scan!.arguments.image!.isOptional).toBe(true);
    expect(ctor.arguments.dbRepository!.defaultValue).toBe("");
    expect(ctor.arguments.trivyCache!.isOptional).toBe(true);
    // The scan and image settings are given once, in the constructor: no function repeats them.
    for (const [name, fn] of Object.entries(fns)) {
      for (const shared of ["severity", "ignoreUnfixed", "dbRepository", "dbRepositoryInsecure", "trivyCache", "trivyImage", "nodeImage", "postgresImage"]) {
        expect(fn.arguments[shared], `${name} ${shared}`).toBeUndefined();
      }
    }
    expect(Object.keys(fns.deploy!.arguments)).toEqual([
      "source", "tag", "digest", "timeout", "guard", "canary", "canaryStep", "canaryMinRequests", "smokeUrl", "smokeWait", "slackWebhook",
      "environment", "operator", "approver", "commit", "author", "changelog",
    ]);
    expect(fns.deploy!.arguments.digest!.description).toMatch(/runs exactly that image/);
    // `dagger functions` shows literal defaults; they are the contract's (scripts/lib/contract.sh).
    expect(String(fns.deploy!.arguments.canaryStep!.defaultValue)).toBe(String(CANARY_STEP_SECONDS_DEFAULT));
    expect(String(fns.deploy!.arguments.canaryMinRequests!.defaultValue)).toBe(String(CANARY_MIN_REQUESTS_DEFAULT));
    expect(fns.deploy!.arguments.slackWebhook!.isOptional).toBe(true);
    expect(fns.rollback!.arguments.slackWebhook!.isOptional).toBe(true);
    expect(fns.smoke!.arguments.url!.isOptional).toBe(false);
    expect(ctor.arguments.dir!.defaultValue).toBe("/opt/slipway");
    expect(ctor.arguments.port!.defaultValue).toBe(22);
    expect(fns.deploy!.arguments.canary!.defaultValue).toBe("");
    expect(fns.deploy!.arguments.canaryStep!.defaultValue).toBe(60);
    expect(fns.deploy!.arguments.canaryMinRequests!.defaultValue).toBe(20);
    expect(ctor.arguments.knownHosts!.description).toMatch(/unknown keys fail/);
    expect(fns.rollback!.arguments.tag!.isOptional).toBe(true);
    expect(Object.keys(fns.publish!.arguments)).toEqual(expect.arrayContaining(["registry", "username", "password", "tag"]));
  });

  it("takes the host once, in the constructor, so on-call's rollback, status and kpi need no flags", () => {
    expect(Object.keys(ctor.arguments)).toEqual([
      "host", "user", "sshKey", "knownHosts", "port", "dir", "target", "sshImage",
      "severity", "ignoreUnfixed", "dbRepository", "dbRepositoryInsecure", "trivyCache", "trivyImage", "nodeImage", "postgresImage",
    ]);
    for (const [name, arg] of Object.entries(ctor.arguments)) expect(arg.isOptional || arg.defaultValue !== undefined, name).toBe(true);
    for (const name of ["rollback", "status", "kpi", "backup"]) {
      const required = Object.entries(fns[name]!.arguments).filter(([, a]) => !a.isOptional && a.defaultValue === undefined);
      expect(required, name).toEqual([]);
      for (const moved of ["host", "user", "sshKey", "knownHosts", "dir", "port"]) expect(fns[name]!.arguments[moved], `${name} ${moved}`).toBeUndefined();
    }
    expect(objectDescription).toMatch(/environments\/production\/\.env/);
  });

  it("pins the same images as commands/, the Dockerfile and the compose file", () => {
    expect(ctor.arguments.nodeImage!.defaultValue).toBe(IMAGES.node);
    expect(ctor.arguments.postgresImage!.defaultValue).toBe(IMAGES.postgres);
    expect(ctor.arguments.sshImage!.defaultValue).toBe(IMAGES.ssh);
    expect(ctor.arguments.trivyImage!.defaultValue).toBe(TRIVY_IMAGE);
    expect(readFileSync(join(repo, "Dockerfile"), "utf8")).toContain(`ARG NODE_IMAGE=${IMAGES.node}`);
    expect(readFileSync(join(repo, "docker-compose.prod.yml"), "utf8")).toContain(`\${POSTGRES_IMAGE:-${IMAGES.postgres}}`);
  });
});

/**
 * Which methods of the module class reach outside the engine, read from the source: a method
 * does when its body (or a private helper it calls, transitively) opens an SSH connection, pushes
 * to a registry, runs Trivy (which downloads its DB from a registry), or calls a URL (the smoke
 * test, a notification).
 */
function methodsReachingOut(file: string): Set<string> {
  const REACHES_OUT = [/\bthis\.connection\(/, /\.publish\(/, /\bthis\.trivy\(/, /\bsmokeJourney\(/, /\bpostNotification\(/];
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const bodies = new Map<string, string>();
  const visit = (node: ts.Node) => {
    if (ts.isMethodDeclaration(node) && node.body) bodies.set(node.name.getText(source), node.body.getText(source));
    ts.forEachChild(node, visit);
  };
  visit(source);
  const reaches = (name: string, seen: Set<string>): boolean => {
    const body = bodies.get(name);
    if (!body || seen.has(name)) return false;
    seen.add(name);
    if (REACHES_OUT.some((re) => re.test(body))) return true;
    return [...body.matchAll(/\bthis\.(\w+)\(/g)].some((m) => reaches(m[1]!, seen));
  };
  return new Set([...bodies.keys()].filter((name) => reaches(name, new Set())));
}

describe("what the engine caches and what `dagger check` runs", () => {
  it("every function that reaches a host or a registry opts out of the function cache", () => {
    const reaching = [...methodsReachingOut(join(src, "index.ts"))].filter((name) => name in fns).sort();
    // The detector itself must see the side effects we know of, or this test could not fail.
    expect(reaching).toEqual(expect.arrayContaining(["backup", "ci", "deploy", "kpi", "publish", "rollback", "scan", "scanReports", "smoke", "status"]));
    const cached = reaching.filter((name) => policies[name]!.cache !== "never");
    expect(cached, "add @func({ cache: \"never\" }) to these").toEqual([]);
  });

  it("the detector flags a side-effecting function that forgets the policy", () => {
    const dir = mkdtempSync(join(tmpdir(), "dagger-cache-policy-"));
    const file = join(dir, "index.ts");
    writeFileSync(file, "class M {\n  async poke() { return this.helper(); }\n  private helper() { return this.connection(); }\n  pure() { return 1; }\n}\n");
    expect([...methodsReachingOut(file)].sort()).toEqual(["helper", "poke"]);
  });

  it("marks lint, unit tests and the scan gate as checks, and nothing that deploys", () => {
    const checks = Object.entries(policies).filter(([, p]) => p.isCheck).map(([name]) => name).sort();
    expect(checks).toEqual(["lint", "scan", "test"]);
    for (const name of checks) {
      const required = Object.entries(fns[name]!.arguments).filter(([, a]) => !a.isOptional && a.defaultValue === undefined && !a.defaultPath);
      expect(required, `${name} must run with no arguments`).toEqual([]);
    }
  });

  it("keeps tests out of dagger/src, which the engine's runtime loads file by file", () => {
    const tests = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => /\.test\.ts$/.test(f));
    expect(tests).toEqual([]);
  });
});

describe("the commands the pipeline runs", () => {
  it("are the ones `npm test` runs here, so the local suite exercises them for real", () => {
    const scripts = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).scripts as Record<string, string>;
    const steps = scripts.test!.split("&&").map((s) => s.trim());
    for (const command of [UNIT_TEST_COMMAND, ...LINT_COMMANDS]) expect(steps).toContain(command.join(" "));
    expect(scripts["test:unit"]).toBe("vitest run --project unit");
  });
});

describe("imports from @dagger.io/dagger", () => {
  // What the engine's generated library exports besides the generated API.
  const RUNTIME = new Set(["connection", "connect", "Context", "func", "check", "generate", "argument", "object", "field", "enumType", "entrypoint"]);

  function generatedApiNames(): Set<string> {
    const api = readFileSync(join(sdk, "api/client.gen.d.ts"), "utf8");
    return new Set([...api.matchAll(/^export (?:declare )?(?:class|enum|type|const|function) (\w+)/gm)].map((m) => m[1]!));
  }

  function daggerImports(file: string): string[] {
    const src = readFileSync(file, "utf8");
    return [...src.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*["']@dagger\.io\/dagger["']/g)].flatMap((m) =>
      m[1]!.split(",").map((n) => n.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]!).filter(Boolean),
    );
  }

  it("uses only names the engine's runtime library exports", () => {
    const api = generatedApiNames();
    expect(api.has("dag")).toBe(true);
    expect(api.has("ExecError")).toBe(false);
    const files = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
    const used = files.flatMap((f) => daggerImports(join(src, f)));
    expect(used).toContain("object");
    const unsafe = used.filter((n) => !RUNTIME.has(n) && !api.has(n));
    expect(unsafe).toEqual([]);
  });
});
