import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { DEPLOY_BUNDLE } from "../../dagger/src/commands/ssh.js";
import { repoRoot } from "./database.js";
import { LogTap } from "./diagnose.js";
import { runUnderLoad, type LoadResult } from "./load.js";

export const API_IMAGE = "slipway/api";

/**
 * Where the release tests' stack publishes its proxy: README's own port, 8000, so that test 1 is
 * the quickstart; SLIPWAY_TEST_HTTP_PORT moves it when a quickstart of one's own holds 8000
 * (testenv/setup.sh says so in one line).
 */
export const TEST_HTTP_PORT = Number(process.env.SLIPWAY_TEST_HTTP_PORT || 8000);

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} [stack] ${msg}\n`);

/** Builds release `version` of the API with the real Dockerfile, as slipway/api:<version>. */
export async function buildRelease(version: string): Promise<void> {
  log(`docker build --build-arg APP_VERSION=${version} -t ${API_IMAGE}:${version} .`);
  await execa("docker", ["build", "-q", "--build-arg", `APP_VERSION=${version}`, "-t", `${API_IMAGE}:${version}`, "."], { cwd: repoRoot });
}

const composeFile = readFileSync(join(repoRoot, "docker-compose.prod.yml"), "utf8");
/** The compose file's default for VAR, the same pin the stack file uses. */
export const pinned = (variable: string) => new RegExp(`\\$\\{${variable}:-([^}]+)\\}`).exec(composeFile)![1]!;

/**
 * Builds the release images with the real Dockerfile, the fault images derived from v1, and the
 * proxy's image as the compose file names it. Built here, the proxy's image is one image for every
 * stack: were a stack's `up` to build it, a later build elsewhere would move the tag, and the next
 * `up -d` of every other stack would recreate its proxy under load.
 */
export async function buildImages(): Promise<void> {
  await execa("docker", ["build", "-q", "--build-arg", `NGINX_IMAGE=${pinned("NGINX_IMAGE")}`, "-t", `slipway/proxy:${pinned("PROXY_TAG")}`, "proxy"], { cwd: repoRoot });
  for (const version of ["v1", "v2"]) await buildRelease(version);
  await execa("docker", ["build", "-q", "--build-arg", `BASE=${API_IMAGE}:v1`, "-t", `${API_IMAGE}:unhealthy`, "-f", "unhealthy.Dockerfile", "."], {
    cwd: join(repoRoot, "test/fixtures"),
  });
  for (const version of ["clientbug1", "clientbug2"]) {
    await execa("docker", ["build", "-q", "--build-arg", `BASE=${API_IMAGE}:v1`, "--build-arg", `VERSION=${version}`, "-t", `${API_IMAGE}:${version}`, "-f", "clientbug.Dockerfile", "."], {
      cwd: join(repoRoot, "test/fixtures"),
    });
  }
  for (const fault of ["badmigration", "altermigration", "nullmigration", "brokenwrites", "notecolumn", "baddown", "renamedrop", "dodrop"]) {
    await execa("docker", ["build", "-q", "--build-arg", `BASE=${API_IMAGE}:v1`, "-t", `${API_IMAGE}:${fault}`, "-f", `${fault}.Dockerfile`, "."], {
      cwd: join(repoRoot, "test/fixtures"),
    });
  }
}

export interface ScriptResult {
  exitCode: number;
  stdout: string;
  /** stdout and stderr interleaved, as an operator sees them. */
  all: string;
}

export interface StackOptions {
  /** Published proxy port. */
  port: number;
  tag?: string;
  apiImage?: string;
  dir?: string;
  /** Where the proxy's port is published; 127.0.0.1 unless a test reaches it from elsewhere (the Dagger engine's containers). */
  bind?: string;
}

/** A Slipway deployment directory (the shipped bundle plus .env) and its compose project. */
export class Stack {
  readonly dir: string;
  readonly project: string;
  readonly port: number;
  /** With the characters a URL reserves: the stack must take any printable password (no `$`, which .env needs quoted). */
  readonly password = `${randomBytes(16).toString("hex")}@/#%41:?&`;
  /** Every container's log from `up` on, kept for a failing load test (support/diagnose.ts). */
  readonly logs: LogTap;

  constructor(readonly opts: StackOptions) {
    this.dir = opts.dir ?? mkdtempSync(join(tmpdir(), "slipway-stack-"));
    this.project = `slipwayt${randomBytes(3).toString("hex")}`;
    this.port = opts.port;
    this.logs = new LogTap(this.project, this.dir);
  }

  /** Copies exactly what `deploy` ships, and writes a .env as an operator would. */
  install(): this {
    for (const entry of DEPLOY_BUNDLE) cpSync(join(repoRoot, entry), join(this.dir, entry), { recursive: true });
    this.writeEnv();
    return this;
  }

  writeEnv(): void {
    const env = readFileSync(join(repoRoot, ".env.example"), "utf8")
      .replace(/^COMPOSE_PROJECT_NAME=.*$/m, `COMPOSE_PROJECT_NAME=${this.project}`)
      .replace(/^API_IMAGE=.*$/m, `API_IMAGE=${this.opts.apiImage ?? API_IMAGE}`)
      .replace(/^API_TAG=.*$/m, `API_TAG=${this.opts.tag ?? "v1"}`)
      .replace(/^HTTP_BIND=.*$/m, `HTTP_BIND=${this.opts.bind ?? "127.0.0.1"}`)
      .replace(/^HTTP_PORT=.*$/m, `HTTP_PORT=${this.port}`)
      .replace(/^POSTGRES_PASSWORD=.*$/m, `POSTGRES_PASSWORD=${this.password}`)
      // The guard holds every deploy for its window (30 s by default); the tests about it pass --guard.
      .replace(/^# GUARD_SECONDS=.*$/m, "GUARD_SECONDS=0")
      // Every load client comes from Docker's port forward; each names itself in this header (support/load.ts).
      .replace(/^# PROXY_CLIENT_HEADER=.*$/m, "PROXY_CLIENT_HEADER=X-Forwarded-For");
    writeFileSync(join(this.dir, ".env"), env, { mode: 0o600 });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async compose(args: string[], opts: { reject?: boolean } = {}): Promise<{ exitCode: number; stdout: string }> {
    const r = await execa("docker", ["compose", "-f", "docker-compose.prod.yml", ...args], { cwd: this.dir, reject: opts.reject ?? true });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout) };
  }

  async up(): Promise<void> {
    log(`${this.project}: docker compose up -d --wait (in ${this.dir})`);
    await this.compose(["up", "-d", "--wait", "--wait-timeout", "120"]);
    this.logs.start();
  }

  /** The image compose resolves for SERVICE from the compose file and .env (`docker compose config`). */
  async serviceImage(service: string): Promise<string> {
    const { stdout } = await this.compose(["config", "--format", "json"]);
    return JSON.parse(stdout).services[service].image;
  }

  /** Runs a host script from the deployment directory, as an operator would. */
  async script(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<ScriptResult> {
    const r = await execa("bash", [`scripts/${name}.sh`, ...args], {
      cwd: this.dir,
      reject: false,
      all: true,
      env: { SLIPWAY_LOCK_FILE: join(this.dir, ".deploy.lock"), ...env },
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), all: String(r.all) };
  }

  /** Runs a host script as script() does, and calls THEN once its output first matches AT (a step the test acts on). */
  async scriptOn(name: string, args: string[], at: RegExp, then: () => void): Promise<ScriptResult> {
    const child = execa("bash", [`scripts/${name}.sh`, ...args], { cwd: this.dir, reject: false, all: true, env: { SLIPWAY_LOCK_FILE: join(this.dir, ".deploy.lock") } });
    let seen = "";
    let fired = false;
    child.all!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (!fired && at.test(seen)) {
        fired = true;
        then();
      }
    });
    const r = await child;
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), all: String(r.all) };
  }

  read(file: string): string {
    try {
      return readFileSync(join(this.dir, file), "utf8");
    } catch {
      return "";
    }
  }

  /** A connection string to the stack's database, through the db container's own address. */
  async databaseUrl(): Promise<string> {
    const id = (await this.compose(["ps", "-q", "db"])).stdout;
    const { stdout: ip } = await execa("docker", ["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id.trim()]);
    return `postgres://slipway:${encodeURIComponent(this.password)}@${ip.trim()}:5432/slipway?sslmode=disable`;
  }

  /** The api containers of both release slots, running or not. */
  async apiContainers(): Promise<string[]> {
    return (await this.compose(["--profile", "*", "ps", "-aq", "api-a", "api-b"])).stdout.split("\n").filter(Boolean);
  }

  /**
   * The api containers by role: `serving` in the slot .env names, `kept` in the other one (the
   * release a roll keeps for rollback), each with the release it runs and whether it runs.
   */
  async slots(): Promise<{ serving: SlotContainer[]; kept: SlotContainer[] }> {
    const ids = await this.apiContainers();
    const active = /^API_SLOT=(.*)$/m.exec(this.read(".env"))?.[1] ?? "a";
    const all: SlotContainer[] = [];
    for (const id of ids) {
      const { stdout } = await execa("docker", ["inspect", "-f", "{{.Config.Image}}|{{.State.Running}}|{{range .Config.Env}}{{println .}}{{end}}", id]);
      const [image, running, env] = stdout.split("|");
      const slot = /LISTEN_SOCKET=\/run\/slipway\/api-([ab])\.sock/.exec(env ?? "")?.[1] ?? "?";
      all.push({ id, slot, image: image!, ref: image!.slice(image!.lastIndexOf("/") + 1).replace(/^[^:]*:/, ""), running: running === "true" });
    }
    return { serving: all.filter((c) => c.slot === active), kept: all.filter((c) => c.slot !== active) };
  }

  /** Removes what the last roll kept in the idle slot: a deploy of a new release finds it empty. */
  async dropKept(): Promise<void> {
    const { kept } = await this.slots();
    if (kept.length) await execa("docker", ["rm", "-f", ...kept.map((c) => c.id)]);
  }

  /** One container serves the release .env names; at most one other is kept, in the other slot. */
  async expectOneRelease(kept: string | null | "any"): Promise<void> {
    const { serving, kept: others } = await this.slots();
    const tag = /^API_TAG=(.*)$/m.exec(this.read(".env"))![1]!;
    if (serving.length !== 1 || serving[0]!.ref !== tag || !serving[0]!.running) throw new Error(`expected one running api:${tag} in the serving slot, found ${JSON.stringify(serving)}`);
    if (kept === "any" ? others.length > 1 : kept === null ? others.length !== 0 : others.length !== 1 || others[0]!.ref !== kept) {
      throw new Error(`expected ${kept === null ? "nothing" : `api:${kept}`} kept in the idle slot, found ${JSON.stringify(others)}`);
    }
  }

  /** Runs `action` under CLIENTS clients' reads and writes, with this stack's logs followed for a diagnosis. */
  underLoad<T>(clients: number, maxSeconds: number, action: () => Promise<T>): Promise<{ result: T; load: LoadResult; endedAt: number }> {
    this.logs.start();
    return runUnderLoad({ baseUrl: this.url, clients, maxSeconds }, action);
  }

  async down(): Promise<void> {
    this.logs.stop();
    // Both slots' profiles: a leftover in the idle slot would keep the network in use.
    await this.compose(["--profile", "*", "down", "-v", "--remove-orphans", "-t", "5"], { reject: false });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface SlotContainer {
  id: string;
  slot: string;
  image: string;
  /** What follows the repository: tag or tag@digest. */
  ref: string;
  running: boolean;
}

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/**
 * Runs a host script as its own process group and SIGKILLs the group the moment its log shows
 * `at`. Resolves once it is dead, with the log up to then.
 */
export async function killAt(stack: Stack, script: string, args: string[], at: RegExp): Promise<{ killed: boolean; log: string }> {
  const child = execa("bash", [`scripts/${script}.sh`, ...args], {
    cwd: stack.dir,
    detached: true,
    reject: false,
    env: { SLIPWAY_LOCK_FILE: join(stack.dir, ".deploy.lock") },
  });
  let log = "";
  let killed = false;
  child.stderr!.on("data", (chunk: Buffer) => {
    log += chunk.toString();
    if (!killed && at.test(log)) {
      killed = true;
      process.kill(-child.pid!, "SIGKILL");
    }
  });
  await child;
  return { killed, log };
}
