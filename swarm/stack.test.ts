import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { generatedStack, STACK_FILE } from "./generate.js";
import { swarmStack, withoutPassword } from "./stack.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const compose = () => parse(readFileSync(join(root, "docker-compose.prod.yml"), "utf8"), { merge: true }) as Record<string, any>;
const stack = () => swarmStack(compose(), { proxyConfigName: "slipway_proxy_test" }) as Record<string, any>;

describe("the Swarm stack file", () => {
  it("is what swarm/generate.ts writes from the compose file (run `npm run swarm:stack` after changing either)", () => {
    expect(readFileSync(join(root, STACK_FILE), "utf8")).toBe(generatedStack());
  });

  it("rolls the API start-first, health-gated, rolled back by Swarm on failure, with no VIP", () => {
    const api = stack().services.api;
    expect(api.deploy.replicas).toBe("${API_REPLICAS:-2}");
    expect(api.deploy.update_config).toMatchObject({ order: "start-first", failure_action: "rollback", max_failure_ratio: 0, parallelism: 1 });
    expect(Number.parseInt(api.deploy.update_config.monitor, 10)).toBeGreaterThanOrEqual(15);
    expect(api.deploy.rollback_config).toMatchObject({ order: "start-first" });
    expect(api.deploy.endpoint_mode).toBe("dnsrr");
    expect(api.healthcheck).toEqual(compose().services["api-a"].healthcheck);
  });

  it("shares images, limits, health checks and hardening with the compose file instead of copying them", () => {
    const c = compose().services;
    const s = stack().services;
    expect(s.api.deploy.resources).toEqual(c["api-a"].deploy.resources);
    expect(s.api.stop_grace_period).toBe(c["api-a"].stop_grace_period);
    expect(s.db.image).toBe(c.db.image);
    expect(s.db.healthcheck).toEqual(c.db.healthcheck);
    expect(s.proxy.image).toBe(c.proxy.image);
    for (const name of ["api", "db", "proxy"]) expect(s[name].cap_drop).toEqual(["ALL"]);
    // What `docker stack deploy` ignores or refuses is gone.
    for (const service of Object.values(s) as Record<string, unknown>[]) {
      for (const key of ["build", "restart", "profiles", "depends_on", "shm_size", "container_name"]) expect(service).not.toHaveProperty(key);
    }
    expect(Object.keys(s).sort()).toEqual(["api", "db", "proxy"]);
  });

  it("keeps the password out of the stack: a Swarm secret, read from a file by Postgres and the API", () => {
    const s = stack();
    expect(JSON.stringify(s)).not.toMatch(/POSTGRES_PASSWORD[}:]|POSTGRES_PASSWORD"/);
    expect(s.services.db.environment.POSTGRES_PASSWORD_FILE).toBe("/run/secrets/postgres_password");
    expect(s.services.api.environment.DATABASE_PASSWORD_FILE).toBe("/run/secrets/postgres_password");
    expect(s.services.api.environment.DATABASE_URL).toBe("postgres://${POSTGRES_USER:-slipway}@db:5432/${POSTGRES_DB:-slipway}?sslmode=disable");
    expect(s.secrets.postgres_password.external).toBe(true);
    expect(s.services.api.environment.DATABASE_PASSWORD).toBeUndefined();
    expect(() => withoutPassword("postgres://u:${POSTGRES_PASSWORD}@db/x")).toThrow(/holds the password/);
  });

  it("pins the database to the labelled node, runs the proxy on every node in host mode, and names the proxy config by content", () => {
    const s = stack();
    expect(s.services.db.deploy.placement.constraints).toEqual(["node.labels.slipway.db == true"]);
    expect(s.services.db.deploy.update_config.order).toBe("stop-first");
    expect(s.services.proxy.deploy.mode).toBe("global");
    expect(s.services.proxy.ports).toEqual([{ target: 8080, published: "${HTTP_PORT:-8000}", protocol: "tcp", mode: "host" }]);
    expect(s.configs.proxy_conf).toEqual({ file: "./proxy/swarm.conf", name: "slipway_proxy_test" });
    expect(generatedStack()).toMatch(/name: slipway_proxy_[0-9a-f]{12}\n/);
    expect(s.networks.default).toEqual({ driver: "overlay", attachable: true });
  });
});
