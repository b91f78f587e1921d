import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/integration/**"],
          // Properties run 10,000 cases; beside the integration suite on 2 cores one took over vitest's default 5 s.
          // A hang still fails, after a minute instead.
          testTimeout: 60_000
        }
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Real namespaces, daemons and traffic: one file at a time, generous timeouts.
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 120_000,
          hookTimeout: 60_000
        }
      }
    ]
  }
})
