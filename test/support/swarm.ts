/**
 * The test swarm (testenv/swarm.sh): three docker-in-docker nodes on one bridge network, images
 * through a registry on this machine. Commands run on a node with `docker exec`, as they would
 * over SSH on a manager.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { remoteScriptCommand, shipArgv, sshArgv, stagingDir, type ScriptCall, type SshTarget } from "../../dagger/src/commands/ssh.js";
import { repoRoot } from "./database.js";
import { TestRegistry } from "./sshd.js";
import { API_IMAGE, buildImages, getJson, pinned } from "./stack.js";

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} [swarm] ${msg}\n`);

export class TestSwarm {
  /** The registry as the nodes name it (the bridge's gateway). */
  registry = "";
  readonly ips: Record<string, string> = {};

  constructor(readonly registryPort: number) {}

  async up(): Promise<void> {
    log("testenv/swarm.sh up");
    await execa("bash", ["testenv/swarm.sh", "up", String(this.registryPort)], { cwd: repoRoot, stderr: "inherit" });
    const gw = await execa("bash", ["testenv/swarm.sh", "gateway"], { cwd: repoRoot });
    this.registry = `${gw.stdout.trim()}:${this.registryPort}`;
    for (const n of ["node1", "node2", "node3"]) this.ips[n] = (await execa("bash", ["testenv/swarm.sh", "ip", n], { cwd: repoRoot })).stdout.trim();
  }

  async down(): Promise<void> {
    await execa("bash", ["testenv/swarm.sh", "down"], { cwd: repoRoot, reject: false });
  }

  /** `docker ARGS` on NODE (node1 is the manager). */
  async docker(node: string, args: string[], opts: { input?: string; env?: Record<string, string>; cwd?: string; reject?: boolean } = {}) {
    const env = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    const r = await execa("docker", ["exec", ...(opts.input !== undefined ? ["-i"] : []), ...env, ...(opts.cwd ? ["-w", opts.cwd] : []), `slipway-swarm-${node}`, "docker", ...args], {
      input: opts.input,
      reject: opts.reject ?? true,
      all: true,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), all: String(r.all) };
  }

  /** Copies repository files into NODE at DIR, as `dagger call deploy` ships the bundle. */
  async ship(node: string, dir: string, entries: readonly string[]): Promise<void> {
    await execa("docker", ["exec", `slipway-swarm-${node}`, "mkdir", "-p", dir]);
    await execa("sh", ["-c", `tar -C "$1" -c ${entries.join(" ")} | docker exec -i "$2" tar -C "$3" -x`, "sh", repoRoot, `slipway-swarm-${node}`, dir]);
  }

  /** The image of each running task of SERVICE, and the service's update state. */
  async serviceState(service: string): Promise<{ running: string[]; update: string }> {
    const ps = await this.docker("node1", ["service", "ps", "--no-trunc", service, "--filter", "desired-state=running", "--format", "{{.Image}} {{.CurrentState}}"]);
    const running = ps.stdout.split("\n").filter((l) => / Running /.test(l)).map((l) => l.split(" ")[0]!);
    const update = await this.docker("node1", ["service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", service]);
    return { running, update: update.stdout.trim() };
  }

  /**
   * Waits until SERVICE's update reaches one of STATES and every running task runs an image
   * matching IMAGE (`completed` does not mean the old tasks are gone: SWARM.md).
   */
  async waitForUpdate(service: string, states: string[], image: RegExp, replicas: number, timeoutS = 180): Promise<string> {
    const deadline = Date.now() + timeoutS * 1000;
    let last = { running: [] as string[], update: "" };
    while (Date.now() < deadline) {
      last = await this.serviceState(service);
      if (states.includes(last.update) && last.running.length === replicas && last.running.every((i) => image.test(i))) return last.update;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`${service}: update ${JSON.stringify(last)} did not reach ${states.join("/")} with ${replicas} tasks of ${image}`);
  }

  /**
   * sshd on the manager (node1), with a host key made here and put in a known_hosts: the host
   * `dagger call deploy` reaches, with the same host-key checking as for a Compose host.
   */
  async managerSsh(): Promise<SshTarget> {
    const dir = mkdtempSync(join(tmpdir(), "slipway-swarm-ssh-"));
    const keygen = (file: string) => execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, file)]);
    await Promise.all([keygen("host_key"), keygen("client_key")]);
    const node = "slipway-swarm-node1";
    const put = (path: string, input: string) => execa("docker", ["exec", "-i", node, "sh", "-c", 'umask 077 && mkdir -p "$(dirname "$1")" && cat >"$1"', "sh", path], { input });
    // A real docker:dind is Alpine, without sshd or bash; the stand-in has both.
    await execa("docker", ["exec", node, "sh", "-c", "test -x /usr/sbin/sshd || apk add --no-cache openssh-server bash util-linux coreutils findutils"]);
    await put("/etc/slipway-ssh/host_key", readFileSync(join(dir, "host_key"), "utf8"));
    await put("/root/.ssh/authorized_keys", readFileSync(join(dir, "client_key.pub"), "utf8"));
    await put(
      "/etc/slipway-ssh/sshd_config",
      ["Port 22", "HostKey /etc/slipway-ssh/host_key", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UsePAM no", ""].join("\n"),
    );
    await execa("docker", ["exec", node, "sh", "-c", "mkdir -p /run/sshd && { [ ! -f /run/sshd.pid ] || kill \"$(cat /run/sshd.pid)\" || true; } && /usr/sbin/sshd -f /etc/slipway-ssh/sshd_config"]);
    const host = this.ips.node1!;
    writeFileSync(join(dir, "known_hosts"), `${host} ${readFileSync(join(dir, "host_key.pub"), "utf8").split(" ").slice(0, 2).join(" ")}\n`);
    for (let i = 0; i < 50; i++) {
      if ((await execa("ssh-keyscan", [host], { reject: false })).stdout) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { host, user: "root", port: 22, keyPath: join(dir, "client_key"), knownHostsPath: join(dir, "known_hosts") };
  }
}

export async function run(argv: string[]) {
  const [cmd, ...args] = argv;
  const r = await execa(cmd!, args, { reject: false, all: true });
  return { exitCode: r.exitCode ?? -1, all: String(r.all) };
}

/**
 * Slipway on the test swarm, as an operator sets it up: images in the registry, sshd on the
 * manager, the operator's .env there (SLIPWAY_TARGET=swarm), and the first release shipped and
 * deployed with the command lines `dagger call deploy` runs. Shared by test/swarm.test.ts and
 * bench/swarm.ts.
 */
export class SwarmDeployment {
  static readonly DIR = "/opt/slipway";
  // Kept between runs (test scaffolding): the next run's pushes upload only what changed.
  readonly registry = new TestRegistry(5003, "0.0.0.0", join(homedir(), ".cache/slipway-testenv/swarm-registry"));
  readonly swarm = new TestSwarm(this.registry.port);
  /** With the characters a URL reserves, as in support/stack.ts. */
  readonly password = `${randomBytes(16).toString("hex")}@/#%41:?&`;
  url = "";
  target!: SshTarget;

  /** `env`: more .env lines for the manager. */
  constructor(readonly env: Record<string, string> = {}) {}

  /** Starts everything and deploys v1; returns the first deploy's output. */
  async start(): Promise<{ exitCode: number; all: string }> {
    await buildImages();
    await this.registry.start();
    const images = [
      [`${API_IMAGE}:v1`, "slipway/api:v1"],
      [`${API_IMAGE}:v2`, "slipway/api:v2"],
      [`${API_IMAGE}:unhealthy`, "slipway/api:unhealthy"],
      [`${API_IMAGE}:notecolumn`, "slipway/api:notecolumn"],
      [`slipway/proxy:${pinned("PROXY_TAG")}`, `slipway/proxy:${pinned("PROXY_TAG")}`],
      [pinned("POSTGRES_IMAGE"), pinned("POSTGRES_IMAGE")],
    ] as const;
    await Promise.all([this.swarm.up(), ...images.map(([image, repoTag]) => this.registry.push(image, repoTag))]);
    this.url = `http://${this.swarm.ips.node2}:8000`;
    this.target = await this.swarm.managerSsh();
    // The operator's .env on the manager; shipping never writes it. The password becomes a Swarm secret.
    const env = {
      SLIPWAY_TARGET: "swarm",
      API_IMAGE: `${this.swarm.registry}/slipway/api`,
      PROXY_IMAGE: `${this.swarm.registry}/slipway/proxy`,
      POSTGRES_IMAGE: `${this.swarm.registry}/${pinned("POSTGRES_IMAGE")}`,
      HTTP_PORT: "8000",
      POSTGRES_PASSWORD: this.password,
      ...this.env,
    };
    await this.onManager(`mkdir -p ${SwarmDeployment.DIR} && umask 077 && cat >${SwarmDeployment.DIR}/.env`, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(""));
    const first = await this.deploy("v1");
    for (let i = 0; i < 120 && (await this.version().catch(() => undefined)) !== "v1"; i++) await new Promise((r) => setTimeout(r, 1000));
    return first;
  }

  async stop(): Promise<void> {
    // SLIPWAY_KEEP_SWARM=1 leaves the nodes up to look at (testenv/swarm.sh down removes them).
    if (process.env.SLIPWAY_KEEP_SWARM === "1") return;
    await this.swarm.down();
    await this.registry.stop();
  }

  onManager(command: string, input?: string) {
    return execa("docker", ["exec", ...(input !== undefined ? ["-i"] : []), "slipway-swarm-node1", "sh", "-c", command], { input });
  }

  async managerFile(file: string): Promise<string> {
    return (await this.onManager(`cat ${SwarmDeployment.DIR}/${file}`)).stdout;
  }

  /** argv of a host script over SSH to the manager, as the Dagger functions build it. */
  scriptArgv(call: Omit<ScriptCall, "dir">): string[] {
    return sshArgv(this.target, remoteScriptCommand({ dir: SwarmDeployment.DIR, ...call }));
  }

  remote(call: Omit<ScriptCall, "dir">) {
    return run(this.scriptArgv(call));
  }

  /** What `dagger call deploy` runs: stage the bundle over SSH, then the staged deploy.sh, which installs it. */
  async deploy(tag: string, args: string[] = ["--timeout", "90"]) {
    const bundle = stagingDir(randomUUID());
    const ship = await run(shipArgv(this.target, repoRoot, SwarmDeployment.DIR, bundle));
    if (ship.exitCode !== 0) return ship;
    return this.remote({ script: "deploy", tag, bundle, args, operator: "swarm-test" });
  }

  async version(): Promise<string | undefined> {
    return (await getJson(`${this.url}/health`)).body?.version;
  }
}
