/**
 * What `dagger functions` would list, checked with the SDK's own module introspector (the
 * engine can't run here), plus the two ways a module that type-checks still breaks in the
 * engine: importing a name the generated runtime library lacks, and drifting pins.
 */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { IMAGES, LINT_COMMANDS, UNIT_TEST_COMMAND } from "./commands/pipeline.js";
import { TRIVY_IMAGE } from "./commands/trivy.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const repo = join(here, "../..");
const sdk = join(repo, "dagger/node_modules/@dagger.io/dagger/dist/src");

interface Arg { defaultValue?: unknown; isOptional: boolean; description: string; defaultPath?: string; ignore?: string[] }
interface Fn { description: string; arguments: Record<string, Arg> }
let fns: Record<string, Fn>;
let objectDescription: string;

beforeAll(async () => {
  // The introspector reads API types only from a non-.d.ts `*client.gen.ts`.
  const dir = mkdtempSync(join(tmpdir(), "dagger-introspect-"));
  const clientGen = join(dir, "client.gen.ts");
  copyFileSync(join(sdk, "api/client.gen.d.ts"), clientGen);
  writeFileSync(clientGen, readFileSync(clientGen, "utf8").replace('from "../common/context.js"', `from "${join(sdk, "common/context.js")}"`));
  const { scan } = await import(join(sdk, "module/introspector/index.js"));
  const mod = (await scan([join(here, "index.ts"), clientGen], "slipway", false)).toJSON();
  fns = mod.objects.Slipway.methods;
  objectDescription = mod.objects.Slipway.description;
}, 60_000);

describe("the Dagger module as the engine sees it", () => {
  it("exposes exactly the pipeline's functions, each documented", () => {
    expect(Object.keys(fns).sort()).toEqual(["backup", "build", "ci", "deploy", "lint", "publish", "rollback", "scan", "scanReports", "status", "test"]);
    for (const [name, fn] of Object.entries(fns)) expect(fn.description.length, name).toBeGreaterThan(20);
    expect(objectDescription).toMatch(/release pipeline/);
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
    expect(fns.scan!.arguments.severity!.defaultValue).toBe("HIGH,CRITICAL");
    expect(fns.scan!.arguments.image!.isOptional).toBe(true);
    expect(Object.keys(fns.deploy!.arguments)).toEqual(["source", "host", "user", "sshKey", "knownHosts", "tag", "dir", "port", "timeout", "sshImage"]);
    expect(fns.deploy!.arguments.dir!.defaultValue).toBe("/opt/slipway");
    expect(fns.deploy!.arguments.port!.defaultValue).toBe(22);
    expect(fns.deploy!.arguments.knownHosts!.description).toMatch(/unknown keys fail/);
    expect(fns.rollback!.arguments.tag!.isOptional).toBe(true);
    expect(Object.keys(fns.publish!.arguments)).toEqual(expect.arrayContaining(["registry", "username", "password", "tag"]));
  });

  it("pins the same images as commands/, the Dockerfile and the compose file", () => {
    const defaults = (key: string) => new Set(Object.values(fns).map((f) => f.arguments[key]?.defaultValue).filter(Boolean));
    expect(defaults("nodeImage")).toEqual(new Set([IMAGES.node]));
    expect(defaults("postgresImage")).toEqual(new Set([IMAGES.postgres]));
    expect(defaults("sshImage")).toEqual(new Set([IMAGES.ssh]));
    expect(defaults("trivyImage")).toEqual(new Set([TRIVY_IMAGE]));
    expect(readFileSync(join(repo, "Dockerfile"), "utf8")).toContain(`ARG NODE_IMAGE=${IMAGES.node}`);
    expect(readFileSync(join(repo, "docker-compose.prod.yml"), "utf8")).toContain(`\${POSTGRES_IMAGE:-${IMAGES.postgres}}`);
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
    const files = readdirSync(here, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    const used = files.flatMap((f) => daggerImports(join(here, f)));
    expect(used).toContain("object");
    const unsafe = used.filter((n) => !RUNTIME.has(n) && !api.has(n));
    expect(unsafe).toEqual([]);
  });
});
