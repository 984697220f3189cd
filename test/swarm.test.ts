/**
 * Slipway on a real 3-node Docker Swarm (testenv/swarm.sh: docker-in-docker nodes, images
 * through a registry on this machine), driven exactly as `dagger call deploy` drives a Compose
 * host: the bundle shipped and deploy.sh/rollback.sh/status.sh run over SSH to the manager, with
 * its host key checked. .env on the manager says SLIPWAY_TARGET=swarm. Each roll runs under reads
 * and writes through the proxy on another node, and no request may fail: a rolling update, a
 * rollback to the recorded digest, a never-healthy image (which Swarm rolls back by itself) and a
 * drained worker.
 */
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEPLOY_BUNDLE, sshArgv } from "../dagger/src/commands/ssh.js";
import { describeFailures, report, runUnderLoad } from "./support/load.js";
import { run, SwarmDeployment } from "./support/swarm.js";

const CLIENTS = 8;
const REPLICAS = 2;
const DIR = SwarmDeployment.DIR;

describe.sequential("Slipway on a 3-node Docker Swarm, over SSH to the manager", () => {
  // Kept between runs (test scaffolding): the next run's pushes upload only what changed.
  // Swarm rolls back a never-healthy release API_START_PERIOD plus 15 s after it starts: less waiting here.
  const slipway = new SwarmDeployment({ API_REPLICAS: String(REPLICAS), API_START_PERIOD: "10s" });
  const { swarm } = slipway;
  const url = () => slipway.url;
  const onManager = (command: string, input?: string) => slipway.onManager(command, input);
  const managerFile = (file: string) => slipway.managerFile(file);
  const remote = (call: Parameters<SwarmDeployment["remote"]>[0]) => slipway.remote(call);
  const daggerDeploy = (tag: string) => slipway.deploy(tag);
  const version = () => slipway.version();
  const lastRecord = async () => (await managerFile("releases.log")).trimEnd().split("\n").at(-1)!.split("\t");
  const envTag = async () => /^API_TAG=(.*)$/m.exec(await managerFile(".env"))?.[1];

  beforeAll(async () => {
    const first = await slipway.start();
    expect(first.exitCode, first.all).toBe(0);
    expect(first.all).toMatch(/first release of stack slipway/);
    expect(first.all).toMatch(/creating the Swarm secret slipway_postgres_password/);
    expect(first.all).not.toContain(slipway.password);
    expect(await version()).toBe("v1");
  });

  afterAll(() => slipway.stop());

  it("the API runs 2 replicas on different nodes, the database on the labelled node", async () => {
    const ps = await swarm.docker("node1", ["service", "ps", "slipway_api", "slipway_db", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}}"]);
    const nodes = Object.fromEntries(ps.stdout.split("\n").filter(Boolean).map((l) => l.split(" ")));
    expect(nodes["slipway_db.1"]).toBe("node1");
    expect(new Set([nodes["slipway_api.1"], nodes["slipway_api.2"]]).size).toBe(2);
    // The stack names no probe: each task runs its image's own HEALTHCHECK, with the stack's timings.
    const node = nodes["slipway_api.1"]!;
    const id = (await swarm.docker(node, ["ps", "-q", "--filter", "label=com.docker.swarm.service.name=slipway_api"])).stdout.split("\n")[0]!;
    const health = await swarm.docker(node, ["inspect", "-f", "{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.StartInterval}} {{.State.Health.Status}}", id]);
    expect(health.stdout).toBe('["CMD","perl","/app/healthcheck.pl"] 250ms healthy');
  });

  it("deploy.sh v2 over SSH rolls the replicas under reads and writes through another node's proxy, fails no request, and records v2 by digest", async () => {
    const { result, load } = await runUnderLoad({ baseUrl: url(), clients: CLIENTS, maxSeconds: 300 }, () => daggerDeploy("v2"));
    report("swarm: deploy.sh v1->v2", load);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toMatch(/pre-deploy backup/);
    expect(result.all).toMatch(/update: updating, 1\/2 replicas running v2/);
    expect(load.sent).toBeGreaterThan(100);
    expect(load.failed, describeFailures(load)).toEqual([]);
    const seen = load.samples.filter((s) => s.version).map((s) => s.version);
    expect(seen[0]).toBe("v1");
    expect(seen.at(-1)).toBe("v2");
    // deploy.sh returned once every replica ran v2: nothing older is left serving.
    const { running, update } = await swarm.serviceState("slipway_api");
    expect(update).toBe("completed");
    expect(running).toHaveLength(REPLICAS);
    for (const image of running) expect(image).toMatch(/slipway\/api:v2@sha256:[0-9a-f]{64}$/);
    const [, action, tag, digest, previous, operator] = await lastRecord();
    expect([action, tag, previous, operator]).toEqual(["deploy", "v2", "v1", "swarm-test"]);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await envTag()).toBe(`v2@${digest}`);
    expect((await onManager(`ls ${DIR}/backups`)).stdout).toMatch(/^slipway-\d{8}T\d{6}Z\.sql$/m);
  });

  it("rollback.sh over SSH re-deploys the previous release's digest with no failed request", async () => {
    const v1 = (await managerFile("releases.log")).split("\n").find((l) => l.split("\t")[2] === "v1")!.split("\t")[3]!;
    const { result, load } = await runUnderLoad({ baseUrl: url(), clients: CLIENTS, maxSeconds: 300 }, () => remote({ script: "rollback", args: ["--timeout", "90"] }));
    report("swarm: rollback.sh v2->v1", load);
    expect(result.exitCode, result.all).toBe(0);
    expect(load.failed, describeFailures(load)).toEqual([]);
    expect(await version()).toBe("v1");
    const { running } = await swarm.serviceState("slipway_api");
    for (const image of running) expect(image).toContain(`slipway/api:v1@${v1}`);
    expect((await lastRecord()).slice(1, 5)).toEqual(["rollback", "v1", v1, "v2"]);
    const status = await remote({ script: "status" });
    expect(status.exitCode, status.all).toBe(0);
    expect(status.all).toMatch(/target: +swarm, stack slipway/);
    expect(status.all).toContain(`slipway_api runs v1@${v1}`);
    expect(status.all).not.toMatch(/drift:/);
  });

  it("deploy.sh of an image that never turns healthy: Swarm rolls it back, no request fails, and the call fails with .env and the history unchanged", async () => {
    const env = await envTag();
    const history = await managerFile("releases.log");
    const { result, load } = await runUnderLoad({ baseUrl: url(), clients: CLIENTS, maxSeconds: 400 }, () => daggerDeploy("unhealthy"));
    report("swarm: never-healthy deploy, rolled back by Swarm", load);
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toMatch(/ERROR: Swarm rolled api back to v1@sha256:[0-9a-f]{64}: unhealthy never turned healthy/);
    expect(load.failed, describeFailures(load)).toEqual([]);
    expect(await version()).toBe("v1");
    expect(await envTag()).toBe(env);
    expect(await managerFile("releases.log")).toBe(history);
  });

  it("refuses a bad target, and a Swarm target on a host that is not a manager, with one line and nothing run", async () => {
    const bad = await remote({ script: "deploy", tag: "v2", args: ["--target", "kubernetes"] });
    expect(bad.exitCode).toBe(1);
    expect(bad.all).toMatch(/invalid target 'kubernetes'.*use compose or swarm/);
    await swarm.ship("node2", DIR, DEPLOY_BUNDLE.filter((e) => e !== ".env.example"));
    await execa("docker", ["exec", "-i", "slipway-swarm-node2", "sh", "-c", `cat >${DIR}/.env`], { input: "SLIPWAY_TARGET=swarm\nPOSTGRES_PASSWORD=x\n" });
    const worker = await execa("docker", ["exec", "-w", DIR, "slipway-swarm-node2", "bash", "scripts/deploy.sh", "v2"], { reject: false, all: true });
    expect(worker.exitCode).toBe(1);
    expect(worker.all).toMatch(/this host is not a Swarm manager/);
    expect(await version()).toBe("v1");
  });

  it("a deploy killed right after `docker stack deploy`: Swarm finishes the update, status.sh names the drift, repair.sh records it, no request fails", async () => {
    const v1 = await envTag();
    const { load } = await runUnderLoad({ baseUrl: url(), clients: CLIENTS, maxSeconds: 300 }, async () => {
      const [cmd, ...args] = slipway.scriptArgv({ script: "deploy", tag: "v2", args: ["--skip-backup", "--timeout", "90"] });
      const call = execa(cmd!, args, { reject: false, all: true });
      await new Promise<void>((resolve) => {
        call.all?.on("data", (chunk: Buffer) => {
          if (/waiting up to \d+s for Swarm's rolling update/.test(chunk.toString())) resolve();
        });
        void call.then(() => resolve());
      });
      // kill -9 of the script on the manager, as a lost or killed job leaves it.
      await onManager(`kill -KILL "$(sed -n 's/^pid=\\([0-9]*\\) .*/\\1/p' ${DIR}/.deploy.lock)"`);
      call.kill("SIGKILL");
      await call;
      return swarm.waitForUpdate("slipway_api", ["completed"], /slipway\/api:v2@/, REPLICAS);
    });
    report("swarm: deploy killed after docker stack deploy", load);
    expect(load.failed, describeFailures(load)).toEqual([]);
    expect(await envTag()).toBe(v1);
    const drift = await remote({ script: "status" });
    expect(drift.all).toMatch(/drift: an operation was interrupted before it finished: .*op=deploy:v2/);
    expect(drift.all).toMatch(/drift: \.env names v1@sha256:\S+ but the service runs v2@sha256:/);
    // What on-call runs by hand (RUNBOOK.md): repair.sh on the manager.
    const repair = await run(sshArgv(slipway.target, `cd ${DIR} && ./scripts/repair.sh`));
    expect(repair.exitCode, repair.all).toBe(0);
    expect(repair.all).toMatch(/recording the deploy of v2@sha256:[0-9a-f]{64} that was interrupted before its record/);
    expect((await lastRecord()).slice(1, 3)).toEqual(["deploy", "v2"]);
    expect(await envTag()).toMatch(/^v2@sha256:/);
    expect((await remote({ script: "status" })).all).not.toMatch(/drift:/);
    expect(await version()).toBe("v2");
  });

  it("rollback.sh --migrations on Swarm: the same rehearsal from one-off containers on the network; refused with a value, done without", async () => {
    const sql = async (q: string) => (await onManager("docker exec -i $(docker ps -q -f label=com.docker.swarm.service.name=slipway_db) psql -U slipway -d slipway -At", q)).stdout.trim();
    const noteColumn = () => sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'");
    const before = await envTag();
    const deployed = await daggerDeploy("notecolumn");
    expect(deployed.exitCode, deployed.all).toBe(0);
    expect(await noteColumn()).toBe("1");
    await sql("INSERT INTO items (name, note) VALUES ('swarm', 'keep me')");
    const refused = await remote({ script: "rollback", args: ["--migrations", "--timeout", "90"] });
    expect(refused.exitCode).toBe(1);
    expect(refused.all).toMatch(/rehearsing the down sections of 29990101000003 on a copy of the database/);
    expect(refused.all).toMatch(/ERROR: rolling back the migrations would lose data: public\.items\.note: 1 value\(s\); nothing was changed/);
    expect(await noteColumn()).toBe("1");
    expect(await envTag()).toMatch(/^notecolumn/);
    await sql("UPDATE items SET note = NULL");
    const done = await remote({ script: "rollback", args: ["--migrations", "--timeout", "90"] });
    expect(done.exitCode, done.all).toBe(0);
    expect(done.all).toMatch(/no data lost/);
    expect(done.all).toMatch(/rolled back 1 migration\(s\): 29990101000003/);
    expect(await noteColumn()).toBe("0");
    expect(await envTag()).toBe(before);
    expect(await sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'slipway_rehearsal_%'")).toBe("0");
  });

  it("draining a worker moves its tasks with no failed request", async () => {
    const { load } = await runUnderLoad({ baseUrl: url(), clients: CLIENTS, maxSeconds: 300 }, async () => {
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
