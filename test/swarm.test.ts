/**
 * The stack file on a real 3-node Docker Swarm (testenv/swarm.sh: docker-in-docker nodes, images
 * through a registry on this machine): a rolling update, `docker service rollback`, an update to
 * a never-healthy image (which Swarm rolls back by itself) and a drained worker, each under reads
 * and writes through the proxy on another node, with no failed request.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEPLOY_BUNDLE } from "../dagger/src/commands/ssh.js";
import { repoRoot } from "./support/database.js";
import { describeFailures, report, runUnderLoad } from "./support/load.js";
import { TestRegistry } from "./support/sshd.js";
import { buildImages, getJson, API_IMAGE } from "./support/stack.js";
import { TestSwarm } from "./support/swarm.js";

const CLIENTS = 8;
const REPLICAS = 2;
const DIR = "/opt/slipway";
const compose = readFileSync(join(repoRoot, "docker-compose.prod.yml"), "utf8");
/** The compose file's default for VAR, the same pin the stack file uses. */
const pinned = (variable: string) => new RegExp(`\\$\\{${variable}:-([^}]+)\\}`).exec(compose)![1]!;

describe.sequential("the stack on a 3-node Docker Swarm", () => {
  const registry = new TestRegistry(5003, "0.0.0.0");
  const swarm = new TestSwarm(registry.port);
  const password = randomBytes(16).toString("hex");
  let url = "";

  const stackEnv = (tag: string) => ({
    API_IMAGE: `${swarm.registry}/slipway/api`,
    API_TAG: tag,
    API_REPLICAS: String(REPLICAS),
    PROXY_IMAGE: `${swarm.registry}/slipway/proxy`,
    POSTGRES_IMAGE: `${swarm.registry}/${pinned("POSTGRES_IMAGE")}`,
    HTTP_PORT: "8000",
  });
  const deploy = (tag: string) =>
    swarm.docker("node1", ["stack", "deploy", "--detach=true", "--with-registry-auth", "--resolve-image", "always", "-c", "docker-stack.yml", "slipway"], {
      cwd: DIR,
      env: stackEnv(tag),
    });
  const version = async () => (await getJson(`${url}/health`)).body?.version;

  beforeAll(async () => {
    await buildImages();
    await execa("docker", ["build", "-q", "--build-arg", `NGINX_IMAGE=${pinned("NGINX_IMAGE")}`, "-t", `slipway/proxy:${pinned("PROXY_TAG")}`, "proxy"], { cwd: repoRoot });
    await registry.start();
    for (const [image, repoTag] of [
      [`${API_IMAGE}:v1`, "slipway/api:v1"],
      [`${API_IMAGE}:v2`, "slipway/api:v2"],
      [`${API_IMAGE}:unhealthy`, "slipway/api:unhealthy"],
      [`slipway/proxy:${pinned("PROXY_TAG")}`, `slipway/proxy:${pinned("PROXY_TAG")}`],
      [pinned("POSTGRES_IMAGE"), pinned("POSTGRES_IMAGE")],
    ] as const) {
      await registry.push(image, repoTag);
    }
    await swarm.up();
    url = `http://${swarm.ips.node2}:8000`;
    await swarm.ship("node1", DIR, DEPLOY_BUNDLE.filter((e) => e !== ".env.example"));
    await swarm.docker("node1", ["secret", "create", "slipway_postgres_password", "-"], { input: password });
    const first = await deploy("v1");
    expect(first.exitCode, first.all).toBe(0);
    // The release's migrations, once, before the API can turn ready: a one-off container on the stack's network.
    const migrate = await swarm.docker("node1", [
      "run", "--rm", "--network", "slipway_default", "-e", `DATABASE_URL=postgres://slipway:${password}@db:5432/slipway?sslmode=disable`,
      `${swarm.registry}/slipway/api:v1`, "node_modules/.bin/dbmate", "--wait", "--wait-timeout", "120s", "up",
    ], { reject: false });
    expect(migrate.exitCode, migrate.all).toBe(0);
    await swarm.waitForUpdate("slipway_api", [""], /slipway\/api:v1/, REPLICAS);
    for (let i = 0; i < 120 && (await version().catch(() => undefined)) !== "v1"; i++) await new Promise((r) => setTimeout(r, 1000));
    expect(await version()).toBe("v1");
  });

  afterAll(async () => {
    // SLIPWAY_KEEP_SWARM=1 leaves the nodes up to look at (testenv/swarm.sh down removes them).
    if (process.env.SLIPWAY_KEEP_SWARM === "1") return;
    await swarm.down();
    await registry.stop();
  });

  it("the API runs 2 replicas on different nodes, the database on the labelled node", async () => {
    const ps = await swarm.docker("node1", ["service", "ps", "slipway_api", "slipway_db", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}}"]);
    const nodes = Object.fromEntries(ps.stdout.split("\n").filter(Boolean).map((l) => l.split(" ")));
    expect(nodes["slipway_db.1"]).toBe("node1");
    expect(new Set([nodes["slipway_api.1"], nodes["slipway_api.2"]]).size).toBe(2);
  });

  it("a rolling update v1→v2 under reads and writes through another node's proxy fails no request", async () => {
    const { result, load } = await runUnderLoad({ baseUrl: url, clients: CLIENTS, maxSeconds: 300 }, async () => {
      const r = await deploy("v2");
      expect(r.exitCode, r.all).toBe(0);
      return swarm.waitForUpdate("slipway_api", ["completed"], /slipway\/api:v2/, REPLICAS);
    });
    report("swarm: rolling update v1->v2", load);
    expect(result).toBe("completed");
    expect(load.sent).toBeGreaterThan(100);
    expect(load.failed, describeFailures(load)).toEqual([]);
    const seen = load.samples.filter((s) => s.version).map((s) => s.version);
    expect(seen[0]).toBe("v1");
    expect(seen.at(-1)).toBe("v2");
    expect(await version()).toBe("v2");
  });

  it("`docker service rollback` returns to v1 with no failed request", async () => {
    const { result, load } = await runUnderLoad({ baseUrl: url, clients: CLIENTS, maxSeconds: 300 }, async () => {
      const r = await swarm.docker("node1", ["service", "rollback", "--detach", "slipway_api"]);
      expect(r.exitCode, r.all).toBe(0);
      return swarm.waitForUpdate("slipway_api", ["rollback_completed"], /slipway\/api:v1/, REPLICAS);
    });
    report("swarm: service rollback v2->v1", load);
    expect(result).toBe("rollback_completed");
    expect(load.failed, describeFailures(load)).toEqual([]);
    expect(await version()).toBe("v1");
  });

  it("an update to an image that never turns healthy is rolled back by Swarm, with no failed request", async () => {
    const { result, load } = await runUnderLoad({ baseUrl: url, clients: CLIENTS, maxSeconds: 400 }, async () => {
      const r = await deploy("unhealthy");
      expect(r.exitCode, r.all).toBe(0);
      return swarm.waitForUpdate("slipway_api", ["rollback_completed"], /slipway\/api:v1/, REPLICAS, 300);
    });
    report("swarm: never-healthy update, rolled back by Swarm", load);
    expect(result).toBe("rollback_completed");
    expect(load.failed, describeFailures(load)).toEqual([]);
    expect(await version()).toBe("v1");
  });

  it("draining a worker moves its tasks with no failed request", async () => {
    const { load } = await runUnderLoad({ baseUrl: url, clients: CLIENTS, maxSeconds: 300 }, async () => {
      await swarm.docker("node1", ["node", "update", "--availability", "drain", "node3"]);
      // Not `2/2` (it shows that while the old task still drains): no task container left on node3.
      for (let i = 0; i < 120; i++) {
        const left = await swarm.docker("node3", ["ps", "-q", "--filter", "label=com.docker.swarm.service.name=slipway_api"]);
        const { running } = await swarm.serviceState("slipway_api");
        if (!left.stdout.trim() && running.length === REPLICAS) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
      throw new Error("node3 still runs an api task");
    });
    report("swarm: node3 drained", load);
    expect(load.failed, describeFailures(load)).toEqual([]);
    await swarm.docker("node1", ["node", "update", "--availability", "active", "node3"]);
  });
});
