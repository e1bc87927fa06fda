// One daemon per data directory (issue 14, item 19): a second one refuses with a clear message; a lock
// left by a killed daemon is taken over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { freePort, ROOT, startDaemon, startRelay, tempDir, type RelayProc } from './helpers/procs.ts';
import { TIME_SCALE } from './helpers/wait.ts';

let relay: RelayProc;
beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  await relay?.stop();
});

describe('data directory lock', () => {
  it('a second daemon on the same DATA_DIR refuses to start; after a crash the next one starts', async () => {
    const dataDir = tempDir();
    const first = await startDaemon({ relays: [relay.url], dataDir });
    try {
      const env = { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, RELAYS: relay.url, EMBEDDED_RELAY_PORT: 'off', HTTP_PORT: String(await freePort()) };
      const second = spawnSync(process.execPath, ['src/bin.js', 'start'], { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000 * TIME_SCALE });
      expect(second.status).toBe(2);
      expect(second.stdout + second.stderr).toContain(`another Timmy (pid ${first.child.pid}) is running on DATA_DIR ${dataDir}`);
    } finally {
      await first.kill('SIGKILL'); // leaves its lock file behind
    }
    const next = await startDaemon({ relays: [relay.url], dataDir });
    await next.kill('SIGTERM');
  });
});
