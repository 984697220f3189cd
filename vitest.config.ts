import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default"],
    // One Docker engine and one port 8000: test files run one at a time (the Swarm suite, which
    // shares neither, runs beside them: testenv/integration.sh).
    fileParallelism: false,
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "scripts/**/*.test.ts", "dagger/test/**/*.test.ts", "db/**/*.test.ts", "bench/**/*.test.ts", "swarm/**/*.test.ts", "proxy/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: ["test/swarm.test.ts"],
          sequence: { concurrent: false },
          testTimeout: 600_000,
          hookTimeout: 900_000,
        },
      },
      {
        // Its own nodes, registry and network: testenv/integration.sh runs it beside the others.
        test: {
          name: "swarm",
          include: ["test/swarm.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
