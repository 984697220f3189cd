/** Static checks of what runs on the host: shellcheck, --help on every script, and the compose file's rules. */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { repoRoot } from "./support/database.js";
import { Stack, TEST_HTTP_PORT } from "./support/stack.js";

const scripts = readdirSync(join(repoRoot, "scripts")).filter((f) => f.endsWith(".sh"));
/** What lib.sh sources: one job a file (sourced, never run). */
const libParts = readdirSync(join(repoRoot, "scripts/lib")).filter((f) => f.endsWith(".sh")).map((f) => `lib/${f}`);

describe("host scripts", () => {
  it("pass shellcheck, with the test environment's and the proxy's shell too", async () => {
    const files = [
      ...scripts.map((f) => `scripts/${f}`),
      ...libParts.map((f) => `scripts/${f}`),
      "proxy/slipway-upstream",
      ...readdirSync(join(repoRoot, "testenv")).filter((f) => f.endsWith(".sh")).map((f) => `testenv/${f}`),
    ];
    const r = await execa("shellcheck", ["-x", ...files], { cwd: repoRoot, reject: false, all: true });
    expect(r.exitCode, String(r.all)).toBe(0);
  });

  // lib*.sh are sourced, never run.
  it.each(scripts.filter((f) => !f.startsWith("lib")))("%s has --help and refuses an unknown option in one line", async (script) => {
    const help = await execa("bash", [`scripts/${script}`, "--help"], { cwd: repoRoot, reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/^Usage: scripts\//);
    const bad = await execa("bash", [`scripts/${script}`, "--bogus"], { cwd: repoRoot, reject: false, all: true });
    expect(bad.exitCode).not.toBe(0);
    expect(String(bad.all).trim().split("\n")).toHaveLength(1);
    expect(String(bad.all)).toMatch(/ERROR: unknown (option|argument) '--bogus'; see --help/);
  });

  it("call only functions they define (shellcheck cannot see a call to a renamed function)", () => {
    const files = [...scripts, ...libParts];
    // SQL in a quoted here-document is not shell.
    const sources = files.map((f) => readFileSync(join(repoRoot, "scripts", f), "utf8").replace(/<<'(\w+)'\n[\s\S]*?\n\1\n/g, "\n"));
    const defined = new Set(sources.flatMap((src) => [...src.matchAll(/^([a-z_][a-z0-9_]*)\(\) \{/gm)].map((m) => m[1]!)));
    // Words in command position that look like ours (snake_case); commands from PATH have no '_'.
    const position = /(?:^|[;&|(]|\$\(|\bthen|\belse|\bdo|\bif|!)\s*([a-z]+_[a-z0-9_]+)\b(?!\+?=|\[)/gm;
    const unknown = sources.flatMap((src, i) =>
      src.split("\n").filter((l) => !/^\s*#/.test(l))
        // Arithmetic, ((n > 0)) and $((n + 1)), names variables, not commands.
        .map((l) => l.replace(/\(\([^)]*\)\)/g, ""))
        .flatMap((l) => [...l.matchAll(position)].map((m) => m[1]!))
        .filter((name) => !defined.has(name)).map((name) => `${files[i]}: ${name}`));
    expect(unknown).toEqual([]);
    // The check finds what it is for.
    expect([..."if container_tag \"$id\"; then".matchAll(position)].map((m) => m[1])).toEqual(["container_tag"]);
  });

  it("refuse a malformed number or duration in .env before anything changes, in one line naming the key and a good value", async () => {
    const lib = readFileSync(join(repoRoot, "scripts/lib/settings.sh"), "utf8");
    const keys = [...(/^ENV_VALUES="([^"]*)"/m.exec(lib)![1]!.matchAll(/([A-Z0-9_]+):(\w+):(\S+)/g))].map((m) => m[1]!);
    // Every key .env.example documents as a number or a duration is among them.
    for (const key of ["GUARD_SECONDS", "GUARD_P99_FACTOR", "HOOK_TIMEOUT", "API_REPLICAS", "MIGRATION_LOCK_TIMEOUT", "API_START_PERIOD", "KPI_P99_SECONDS"]) expect(keys).toContain(key);
    const stack = new Stack({ port: TEST_HTTP_PORT }).install();
    try {
      const env = stack.read(".env").replace(/^POSTGRES_PASSWORD=.*$/m, "POSTGRES_PASSWORD=not-the-placeholder");
      for (const script of ["deploy", "rollback", "status", "repair", "backup"]) {
        for (const key of script === "deploy" ? keys : ["GUARD_P99_FACTOR", "HOOK_TIMEOUT"]) {
          writeFileSync(join(stack.dir, ".env"), `${env}${key}=two\n`);
          const r = await stack.script(script, script === "deploy" ? ["--no-pull", "v2"] : []);
          expect(r.exitCode, `${script} ${key}`).toBe(1);
          expect(r.all.trim().split("\n"), `${script} ${key}: ${r.all}`).toHaveLength(1);
          expect(r.all).toMatch(new RegExp(`ERROR: ${key} in \\.env is 'two', which is not a valid \\w+ \\([^)]+\\); use e\\.g\\. ${key}=\\S+`));
        }
      }
      // Nothing was touched: no lock taken, no history, no log of an operation.
      expect(stack.read(".deploy.lock")).toBe("");
      expect(stack.read("releases.log")).toBe("");
    } finally {
      rmSync(stack.dir, { recursive: true, force: true });
    }
  });

  it("count a migration rollback's losses from two measurements: rows, values, values changed; a table or column gone holds nothing", async () => {
    const before = ["public.items\t*\t3\t", "public.items\tname\t3\t111", "public.items\tnote\t1\t7", "public.items\tspare\t0\t0", "public.tags\t*\t0\t", "public.tags\ttag\t0\t0"].join("\n");
    const after = ["public.items\t*\t3\t", "public.items\tname\t3\t222", "public.items\tspare\t0\t0"].join("\n");
    const run = (fn: string) => execa("bash", ["-c", `set -euo pipefail; source scripts/lib.sh; ${fn} <(printf '%s\\n' "$1") <(printf '%s\\n' "$2")`, "t", before, after], { cwd: repoRoot });
    expect((await run("lost_values")).stdout.split("\n")).toEqual(["public.items.name: values changed", "public.items.note: 1 value(s)"]);
    // What must still be empty on the real database before its down sections run.
    expect((await run("emptied")).stdout.split("\n")).toEqual(["public.items\tnote", "public.tags\t*", "public.tags\ttag"]);
    for (const f of ["lib.sh", ...libParts]) expect(readFileSync(join(repoRoot, "scripts", f), "utf8"), f).not.toMatch(/data_at_stake|rows_where/);
  });

  it("stop the whole command when a check fails inside $(...), a pipeline or <(...)", async () => {
    for (const body of ['x=$(die "bad value"); echo "went on with \'$x\'"', 'die "bad value" | cat; echo "went on"', 'local_read() { read -r x < <(die "bad value"); sleep 1; echo "went on"; }; local_read']) {
      const r = await execa("bash", ["-c", `set -euo pipefail; source scripts/lib.sh; ${body}`], { cwd: repoRoot, reject: false, all: true });
      expect(r.exitCode, body).toBe(1);
      expect(String(r.all), body).toMatch(/ERROR: bad value/);
      expect(String(r.all), body).not.toMatch(/went on/);
    }
  });

  it("keep every file small enough to read in one sitting, lib.sh split by concern into lib/", () => {
    for (const f of [...scripts, ...libParts]) {
      const lines = readFileSync(join(repoRoot, "scripts", f), "utf8").split("\n").length;
      expect(lines, f).toBeLessThanOrEqual(310);
    }
    expect(libParts).toEqual(expect.arrayContaining(["lib/settings.sh", "lib/history.sh", "lib/containers.sh", "lib/roll.sh", "lib/guard.sh", "lib/migrations.sh"]));
  });

  it("name the fix when run outside a deployment directory", async () => {
    const r = await execa("bash", [join(repoRoot, "scripts/status.sh")], { cwd: "/tmp", reject: false, all: true });
    expect(r.exitCode).not.toBe(0);
    expect(String(r.all)).toMatch(/no docker-compose.prod.yml in \/tmp: run from the directory that holds it, or set SLIPWAY_DIR/);
  });
});

describe("RUNBOOK.md", () => {
  const runbook = readFileSync(join(repoRoot, "RUNBOOK.md"), "utf8");
  // Every command line on-call may copy: code blocks and inline code.
  const commands = [...runbook.matchAll(/```bash\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split("\n")).concat([...runbook.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!));

  it("names only scripts that exist, with flags those scripts take", () => {
    const used = commands.flatMap((line) => [...line.matchAll(/scripts\/([a-z-]+)\.sh((?: +[^ #;&|]+)*)/g)]);
    expect(used.length).toBeGreaterThan(20);
    for (const [, script, rest] of used) {
      const file = join(repoRoot, "scripts", `${script}.sh`);
      expect(scripts, `scripts/${script}.sh`).toContain(`${script}.sh`);
      const text = readFileSync(file, "utf8");
      for (const flag of (rest ?? "").match(/--[a-z][a-z-]*/g) ?? []) expect(text, `scripts/${script}.sh ${flag}`).toContain(`${flag}`);
    }
  });

  it("calls only the module's functions, and names the real lock and deployment paths", () => {
    const index = readFileSync(join(repoRoot, "dagger/src/index.ts"), "utf8");
    const functions = new Set([...index.matchAll(/@func\([^)]*\)\s*(?:@check\(\)\s*)?(?:async )?([a-zA-Z]+)\(/g)].map((m) => m[1]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)));
    const calls = commands.flatMap((line) => [...line.matchAll(/dagger call(?: --[^ ]+)* ([a-z-]+)/g)].map((m) => m[1]!));
    expect(calls).toEqual(expect.arrayContaining(["rollback", "status"]));
    for (const fn of calls) expect(functions, fn).toContain(fn);
    expect(runbook).not.toMatch(/\/run\/lock\/slipway/);
    expect(readFileSync(join(repoRoot, "scripts/lib.sh"), "utf8")).toContain('LOCK_FILE=${SLIPWAY_LOCK_FILE:-$SLIPWAY_DIR/.deploy.lock}');
    expect(runbook).toMatch(/`\.deploy\.lock` in the deployment directory/);
  });

  it("ends every numbered section with a check", () => {
    const sections = runbook.split(/^## (?=\d+\. )/m).slice(1);
    expect(sections.length).toBeGreaterThanOrEqual(10);
    for (const section of sections) expect(section, section.split("\n")[0]).toMatch(/\*\*Check\*\*/);
  });

  it("starts the rollback section with the button and `dagger call rollback`, and ends every branch with a check", () => {
    const section = runbook.slice(runbook.indexOf("## 2. Roll back"), runbook.indexOf("## 3."));
    expect(section.indexOf("rollback** → *Run workflow*")).toBeGreaterThan(0);
    expect(section.indexOf("dagger call rollback")).toBeLessThan(section.indexOf("scripts/rollback.sh"));
    expect(section).toMatch(/\*\*Check\*\*/);
    for (const branch of ["no earlier release in the history", "gone from the registry", "never turns", "point the proxy by hand", "Restore (§4)"]) expect(section, branch).toContain(branch);
  });
});

describe("docker-compose.prod.yml", () => {
  it("resolves, and keeps every rule of the production stack", async () => {
    const stack = new Stack({ port: TEST_HTTP_PORT }).install();
    try {
      const { stdout } = await stack.compose(["--profile", "*", "config", "--format", "json"]);
      const services = JSON.parse(stdout).services as Record<string, any>;
      expect(Object.keys(services).sort()).toEqual(["api-a", "api-b", "db", "migrate", "proxy"]);
      for (const [name, svc] of Object.entries(services)) {
        expect(svc.deploy?.resources?.limits?.memory, `${name} memory limit`).toBeTruthy();
        expect(svc.deploy?.resources?.limits?.cpus, `${name} cpu limit`).toBeTruthy();
        for (const v of svc.volumes ?? []) expect(v.type, `${name} must not bind-mount`).not.toBe("bind");
        if (name === "migrate") continue;
        expect(svc.restart, name).toBe("unless-stopped");
        // The api slots take their image's own probe (the Dockerfile's HEALTHCHECK) with these timings.
        if (name.startsWith("api-")) expect(svc.healthcheck?.test, name).toBeUndefined();
        else expect(svc.healthcheck?.test, `${name} healthcheck`).toBeTruthy();
        expect(svc.healthcheck?.interval, `${name} healthcheck`).toBeTruthy();
      }
      expect(Object.keys(services).filter((n) => services[n].ports?.length)).toEqual(["proxy"]);
      expect(services.proxy.ports[0].target).toBe(8080);
      for (const slot of ["a", "b"]) {
        const api = services[`api-${slot}`];
        expect(api.container_name).toBeUndefined();
        expect(api.image).toBe("slipway/api:v1");
        expect(api.profiles).toEqual([`slot-${slot}`]);
        expect(api.environment.LISTEN_SOCKET).toBe(`/run/slipway/api-${slot}.sock`);
      }
      expect(services.db.volumes[0].type).toBe("volume");
      expect(services.db.healthcheck.test.join(" ")).toContain("pg_isready -h 127.0.0.1");
      // Compose recreates a service's dependents with it: nothing may depend on what a release changes.
      expect(Object.keys(services["api-a"].depends_on)).toEqual(["db"]);
      // service_healthy costs every slot's `up` a fixed 500 ms tick; the api waits for the db itself.
      expect(services["api-a"].depends_on.db.condition).toBe("service_started");
      expect(services.proxy.depends_on).toBeUndefined();
      expect(services.db.user).toBe("postgres");
      for (const name of ["proxy", "api-a", "api-b", "db", "migrate"]) {
        expect(services[name].cap_drop, name).toEqual(["ALL"]);
        expect(services[name].security_opt, name).toContain("no-new-privileges:true");
      }
    } finally {
      await stack.down();
    }
  });

  it("reads only variables that .env.example documents", () => {
    const compose = readFileSync(join(repoRoot, "docker-compose.prod.yml"), "utf8");
    const example = readFileSync(join(repoRoot, ".env.example"), "utf8");
    const used = new Set([...compose.matchAll(/\$\{([A-Z_]+)/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(example, name).toMatch(new RegExp(`^#? ?${name}=`, "m"));
  });

  it("holds no secret itself, and refuses to start without the password", async () => {
    const raw = parse(readFileSync(join(repoRoot, "docker-compose.prod.yml"), "utf8"));
    // Every value that carries a password is .env's, interpolated; none is written here.
    const secrets: [string, unknown][] = [];
    const walk = (node: unknown, key = "") => {
      if (node && typeof node === "object") for (const [k, v] of Object.entries(node)) walk(v, k);
      else if (/PASSWORD/.test(key)) secrets.push([key, node]);
    };
    walk(raw);
    expect(secrets.map(([k]) => k).sort()).toEqual(expect.arrayContaining(["DATABASE_PASSWORD", "PGPASSWORD", "POSTGRES_PASSWORD"]));
    for (const [key, value] of secrets) expect(value, key).toMatch(/^\$\{POSTGRES_PASSWORD:\?[^}]*\}$/);
    // And no URL holds one: user@host, nothing between.
    const urls = [...JSON.stringify(raw).matchAll(/"DATABASE_URL":"([^"]*)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url).toMatch(/^postgres:\/\/\$\{POSTGRES_USER:-slipway\}@db:5432\//);
    const stack = new Stack({ port: TEST_HTTP_PORT }).install();
    try {
      const env = stack.read(".env").replace(/^POSTGRES_PASSWORD=.*$/m, "POSTGRES_PASSWORD=");
      writeFileSync(join(stack.dir, ".env"), env);
      const r = await stack.compose(["config"], { reject: false });
      expect(r.exitCode).not.toBe(0);
    } finally {
      await stack.down();
    }
  });
});
