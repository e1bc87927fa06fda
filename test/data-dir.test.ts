// The data directory holds keys and the decrypted words of private requests: owner-only, also when it
// was created loose by an older version (issue 14, item 10).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';

let relay: RelayProc;
beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  await relay?.stop();
});

const mode = (p: string) => statSync(p).mode & 0o777;

describe('data directory', () => {
  it('is 0700 with every file in it 0600, including a directory and database left world-readable before', async () => {
    const dataDir = join(tempDir(), 'data');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    writeFileSync(join(dataDir, 'timmy.db'), '');
    chmodSync(join(dataDir, 'timmy.db'), 0o644);
    let daemon: DaemonProc | null = null;
    try {
      daemon = await startDaemon({ relays: [relay.url], dataDir });
      expect(mode(dataDir)).toBe(0o700);
      const files = readdirSync(dataDir);
      expect(files).toEqual(expect.arrayContaining(['timmy.db', 'timmy.db-wal', 'nostr.key']));
      for (const f of files) expect(mode(join(dataDir, f)), f).toBe(0o600);
    } finally {
      await daemon?.kill('SIGTERM');
    }
  });
});
