/**
 * The Swarm stack file, derived from docker-compose.prod.yml: images, environment, health checks,
 * limits and hardening come from there (one source of truth), and only what Swarm needs
 * differently is decided here. Pure: a parsed compose document in, a stack document out.
 *
 * What changes, and why:
 * - One `api` service with replicas, not two release slots: Swarm rolls the tasks itself
 *   (start-first, health-gated, rolled back by itself on failure). The API listens on TCP, and
 *   the proxy resolves `tasks.api` (no VIP: it needs IPVS, and a VIP keeps sending to a task
 *   that is stopping, moby #38841).
 * - No `migrate` service: the release's migrations run once, before the update, as a one-off
 *   container on the stack's network (the deploy script does it, under its lock).
 * - The database password is a Swarm secret (a file in the container), never an environment
 *   value in the stack file: Postgres reads POSTGRES_PASSWORD_FILE, the API DATABASE_PASSWORD_FILE.
 * - `docker stack deploy` ignores or refuses build, restart, profiles, depends_on with conditions,
 *   container_name and shm_size: they are dropped (Swarm restarts tasks by its restart_policy).
 * - The proxy runs on every node (global) with its port published in host mode: the routing
 *   mesh needs IPVS too, and host mode keeps the client's address.
 * - No service gets a virtual IP (endpoint_mode dnsrr): a VIP needs IPVS in the kernel, which
 *   small VPS kernels (and this test machine's) lack; a name resolves to its tasks instead.
 */

export interface StackOptions {
  /** The name of the proxy's Swarm config, which must change whenever its content does. */
  proxyConfigName: string;
}

type Doc = Record<string, unknown>;
type Service = Record<string, unknown>;

/** Keys `docker stack deploy` ignores or refuses; Swarm has its own answer to each. */
const UNSUPPORTED = ["build", "restart", "profiles", "depends_on", "container_name", "shm_size", "security_opt"] as const;

export const SECRET = "postgres_password";
const SECRET_PATH = `/run/secrets/${SECRET}`;

function swarmService(source: Service): Service {
  const out: Service = { ...source };
  for (const key of UNSUPPORTED) delete out[key];
  return out;
}

function environment(service: Service): Record<string, string> {
  const env = service.environment;
  if (!env || Array.isArray(env)) throw new Error("expected the compose file's environment as a map");
  return { ...(env as Record<string, string>) };
}

/** The DATABASE_URL of the compose file, which must hold no password (the secret supplies it). */
export function withoutPassword(url: string): string {
  if (/POSTGRES_PASSWORD/.test(url)) throw new Error(`DATABASE_URL in the compose file holds the password: ${url}`);
  return url;
}

function deployOf(service: Service): Doc {
  return { ...((service.deploy as Doc | undefined) ?? {}) };
}

export function swarmStack(compose: Doc, opts: StackOptions): Doc {
  const services = compose.services as Record<string, Service>;
  for (const name of ["api-a", "proxy", "db"]) {
    if (!services?.[name]) throw new Error(`the compose file has no ${name} service`);
  }
  const apiSource = services["api-a"]!;
  const apiEnv = environment(apiSource);
  delete apiEnv.LISTEN_SOCKET;
  apiEnv.DATABASE_URL = withoutPassword(apiEnv.DATABASE_URL ?? "");
  delete apiEnv.DATABASE_PASSWORD;
  apiEnv.DATABASE_PASSWORD_FILE = SECRET_PATH;
  // Swarm drops a stopping task from DNS 2 s before SIGTERM, but other nodes learn of it by
  // gossip, later under load: the task keeps serving this long after SIGTERM before it drains.
  apiEnv.SHUTDOWN_DELAY_MS = "${SHUTDOWN_DELAY_MS:-5000}";

  const api: Service = {
    ...swarmService(apiSource),
    image: "${API_IMAGE:-slipway/api}:${API_TAG:-latest}",
    environment: apiEnv,
    secrets: [SECRET],
    deploy: {
      ...deployOf(apiSource),
      replicas: "${API_REPLICAS:-2}",
      // A new task starts, turns healthy, and only then is an old one stopped; any failure in
      // the monitor window (a crash after start) rolls the whole update back, replica by replica.
      update_config: { parallelism: 1, order: "start-first", failure_action: "rollback", monitor: "20s", max_failure_ratio: 0 },
      rollback_config: { parallelism: 1, order: "start-first", failure_action: "pause", monitor: "10s", max_failure_ratio: 0 },
      restart_policy: { condition: "any", delay: "2s" },
      // No virtual IP: the proxy resolves the tasks itself (see proxy/swarm.conf).
      endpoint_mode: "dnsrr",
    },
  };
  delete api.volumes;

  const dbSource = services.db!;
  const dbEnv = environment(dbSource);
  delete dbEnv.POSTGRES_PASSWORD;
  dbEnv.POSTGRES_PASSWORD_FILE = SECRET_PATH;
  const db: Service = {
    ...swarmService(dbSource),
    environment: dbEnv,
    secrets: [SECRET],
    deploy: {
      ...deployOf(dbSource),
      replicas: 1,
      // The data volume lives on one node: the database runs there and nowhere else, and an
      // update stops the old server before the new one opens the same files.
      placement: { constraints: ["node.labels.slipway.db == true"] },
      update_config: { order: "stop-first" },
      restart_policy: { condition: "any", delay: "2s" },
      endpoint_mode: "dnsrr",
    },
  };

  const proxySource = services.proxy!;
  const proxy: Service = {
    ...swarmService(proxySource),
    ports: [{ target: 8080, published: "${HTTP_PORT:-8000}", protocol: "tcp", mode: "host" }],
    configs: [{ source: "proxy_conf", target: "/etc/nginx/conf.d/default.conf" }],
    deploy: {
      ...deployOf(proxySource),
      mode: "global",
      update_config: { parallelism: 1, order: "stop-first", failure_action: "rollback", monitor: "10s" },
      restart_policy: { condition: "any", delay: "2s" },
      endpoint_mode: "dnsrr",
    },
  };
  delete proxy.volumes;

  return {
    services: { proxy, api, db },
    networks: {
      // Attachable, so the release's one-off migration container can join it.
      default: { driver: "overlay", attachable: true },
    },
    volumes: { "db-data": {} },
    secrets: { [SECRET]: { external: true, name: "${SLIPWAY_SECRET_PREFIX:-slipway}_postgres_password" } },
    configs: { proxy_conf: { file: "./proxy/swarm.conf", name: opts.proxyConfigName } },
  };
}
