/**
 * What the pipeline runs inside its containers, shared with the local test run so both
 * execute the same commands: `npm test` calls `npm run test:unit` and `npm run lint` too.
 */
import { TAG_PATTERN } from "./contract.js";
export const INSTALL_COMMAND = ["npm", "ci", "--no-audit", "--no-fund"];
export const UNIT_TEST_COMMAND = ["npm", "run", "test:unit"];
export const LINT_COMMANDS = [
  ["npm", "run", "lint"],
  ["npm", "run", "lint:migrations"],
];

/** Postgres for unit tests: the env the test suite reads, and the service's own settings. */
export const TEST_DB = { alias: "db", user: "postgres", password: "slipway-test", database: "slipway_test" } as const;
export const testDatabaseUrl = (host: string, port = 5432) =>
  `postgres://${TEST_DB.user}:${TEST_DB.password}@${host}:${port}/${TEST_DB.database}?sslmode=disable`;

/** Default images, each overridable by a function argument (for registry mirrors). */
export const IMAGES = {
  node: "node:22.20.0-bookworm-slim",
  postgres: "postgres:17.6-bookworm",
  ssh: "alpine:3.22.2",
} as const;

/** Scanned-image registry reference: `<registry>/<repository>:<tag>`, validated. */
export function imageReference(registry: string, repository: string, tag: string): string {
  if (!/^[a-z0-9.-]+(?::[0-9]+)?$/.test(registry)) {
    throw new Error(`invalid registry ${JSON.stringify(registry)}: use a host[:port], e.g. ghcr.io`);
  }
  if (!/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(repository)) {
    throw new Error(`invalid repository ${JSON.stringify(repository)}: use lowercase path segments, e.g. acme/slipway-api`);
  }
  if (!TAG_PATTERN.test(tag)) {
    throw new Error(`invalid tag ${JSON.stringify(tag)}: use letters, digits, '_', '.', '-', e.g. v1.2.3`);
  }
  return `${registry}/${repository}:${tag}`;
}

/** The test runner's count line ("Tests  57 passed (57)"), for ci's one-line summary. */
export function testSummary(output: string): string {
  // Strip colour codes (ESC [ … m): the runner may colour its summary.
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\u001b\[[0-9;]*m/g, "");
  return plain.match(/^\s*Tests\s+(.+?)\s*$/m)?.[1] ?? (plain.trim().split("\n").at(-1)?.trim() ?? "");
}
