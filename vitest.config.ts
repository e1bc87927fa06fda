import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/pg-server.ts'], // PostgreSQL, started only when a test asks for a database
    // Backstops only (x4 of what a fast machine needs, like every deadline in test/helpers/wait.ts): tests
    // wait on events and progress, and a slow machine must not be mistaken for a stuck one.
    testTimeout: 240_000,
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] } },
      // The tests that drive the store through the core run again on PostgreSQL (test/helpers/store-under-test.ts).
      // So do the daemon tests of the paid flow, restarts, sessions and zaps (each daemon on a database of its own).
      {
        extends: true,
        test: {
          name: 'pg',
          include: ['test/core/**/*.test.ts', 'test/nostr/**/*.test.ts', 'test/paid-flow.test.ts', 'test/restart.test.ts', 'test/sessions.test.ts', 'test/zaps.test.ts'],
          env: { TIMMY_TEST_STORE: 'pg' },
        },
      },
    ],
  },
});
