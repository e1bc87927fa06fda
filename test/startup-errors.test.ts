// The usual operator mistakes end in one clear line naming the setting or the path, never a stack trace
// (issue 14, item 18).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ROOT, startDaemon, tempDir } from './helpers/procs.ts';
import { freshPgDatabase } from './helpers/pg.ts';
import { TIME_SCALE } from './helpers/wait.ts';
import { openDb, closeDb } from '../src/store/db.ts';

/** A port really bound (listen resolves the host first: wait for 'listening' before starting a daemon on it). */
function occupy(port: number): Promise<ReturnType<typeof createServer>> {
  return new Promise((resolve) => {
    const s = createServer().listen(port, '127.0.0.1', () => resolve(s));
  });
}

function timmy(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['src/bin.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', EMBEDDED_RELAY_PORT: 'off', RELAYS: 'ws://127.0.0.1:9', ...env },
    encoding: 'utf8',
    timeout: 15_000 * TIME_SCALE, // a daemon that did start by mistake is ended here, and the status check fails
  });
  const out = r.stdout + r.stderr;
  expect(out, out).not.toMatch(/\n\s+at /); // no stack trace
  return { status: r.status, out };
}

describe('start-up mistakes', () => {
  it('HTTP_PORT in use names the variable', async () => {
    const port = await freePort();
    const blocker = await occupy(port);
    try {
      const r = timmy(['start'], { DATA_DIR: tempDir(), HTTP_PORT: String(port) });
      expect(r.status).toBe(2);
      expect(r.out).toContain(`HTTP_PORT=${port}: the port is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('EMBEDDED_RELAY_PORT in use names the variable', async () => {
    const port = await freePort();
    const blocker = await occupy(port);
    try {
      const r = timmy(['start'], { DATA_DIR: tempDir(), HTTP_PORT: String(await freePort()), EMBEDDED_RELAY_PORT: String(port) });
      expect(r.status).toBe(2);
      expect(r.out).toContain(`EMBEDDED_RELAY_PORT=${port}: the port is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('a damaged database, a database from a newer Timmy, an unusable DATA_DIR and a bad key are named', async () => {
    const env = async (dir: string) => ({ DATA_DIR: dir, HTTP_PORT: String(await freePort()) });
    const damaged = tempDir();
    writeFileSync(join(damaged, 'timmy.db'), 'this is not SQLite'.repeat(100));
    let r = timmy(['start'], await env(damaged));
    expect(r.status).toBe(2);
    expect(r.out).toContain(`${join(damaged, 'timmy.db')} is not a Timmy database, or it is damaged`);

    const newer = tempDir();
    const db = openDb(join(newer, 'timmy.db'));
    db.$client.prepare('insert into __drizzle_migrations (hash, created_at) values (?, ?)').run('from-the-future', 9_999_999_999_999);
    closeDb(db);
    r = timmy(['start'], await env(newer));
    expect(r.status).toBe(2);
    expect(r.out).toContain('was written by a newer version of Timmy');

    const file = join(tempDir(), 'a-file');
    writeFileSync(file, '');
    r = timmy(['start'], await env(join(file, 'data'))); // a path under a regular file
    expect(r.status).toBe(2);
    expect(r.out).toContain(`DATA_DIR ${join(file, 'data')} cannot be used: ENOTDIR`);

    r = timmy(['start'], { ...(await env(tempDir())), NOSTR_SECRET_KEY: 'nsec1notakeyatall' });
    expect(r.status).toBe(2);
    expect(r.out).toContain('NOSTR_SECRET_KEY: not an nsec or a 64-character hex secret key');
    expect(r.out).not.toContain('nsec1notakeyatall');
  });

  it('a malformed NWC_URL names the part that is wrong, never the secret', async () => {
    const secret = 'ab'.repeat(31) + 'zz';
    const r = timmy(['start'], { DATA_DIR: tempDir(), HTTP_PORT: String(await freePort()), NWC_URL: `nostr+walletconnect://${'c'.repeat(64)}?relay=wss://r.example&secret=${secret}` });
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('NWC_URL: secret= must be 64 hex characters');
    expect(r.out).not.toContain(secret);
  });

  it('timmy credits with a bad npub says so', () => {
    const r = timmy(['credits', 'npub1definitelynotvalid'], { DATA_DIR: tempDir() });
    expect(r.status).toBe(2);
    expect(r.out).toContain('is not a valid npub');
  });

  it('a worker whose keys differ from the other workers\' on one DATABASE_URL refuses to start, naming the key', async () => {
    const db = await freshPgDatabase();
    try {
      const first = await startDaemon({ relays: ['ws://127.0.0.1:9'], waitForRelay: false, env: { DATABASE_URL: db.url } });
      await first.kill('SIGTERM');
      /** A DATA_DIR of its own holding copies of the first worker's keys, `replaced` given another key. */
      const copyOfKeys = (replaced?: string) => {
        const dir = tempDir();
        for (const f of ['nostr.key', 'macaroon.key', 'storage.key']) copyFileSync(join(first.dataDir, f), join(dir, f));
        if (replaced) writeFileSync(join(dir, replaced), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
        return dir;
      };
      const start = async (dir: string) => timmy(['start'], { DATA_DIR: dir, HTTP_PORT: String(await freePort()), DATABASE_URL: db.url });
      for (const name of ['macaroon.key', 'storage.key']) {
        const r = await start(copyOfKeys(name));
        expect(r.status).toBe(2);
        expect(r.out).toMatch(new RegExp(`${name.replace('.', '\\.')} differs from the other workers' \\(sha256 [0-9a-f]{12}… here, [0-9a-f]{12}… theirs\\): give every worker the same DATA_DIR keys`));
        expect(r.out.match(/differs from the other workers'/g)).toHaveLength(1); // only that one
      }
      const other = copyOfKeys('nostr.key');
      const r = await start(other);
      expect(r.status).toBe(2);
      expect(r.out).toContain(`the Nostr key differs from the other workers' (pubkey `);
      expect(r.out).toContain(`, ${first.pubkey.slice(0, 12)}… theirs): give every worker the same NOSTR_SECRET_KEY or ${join(other, 'nostr.key')}`);
      // The same keys (the Nostr key given as NOSTR_SECRET_KEY this time): it starts, as the same identity.
      const dir = copyOfKeys();
      const sk = readFileSync(join(dir, 'nostr.key'), 'utf8').trim();
      rmSync(join(dir, 'nostr.key'));
      const second = await startDaemon({ relays: ['ws://127.0.0.1:9'], waitForRelay: false, dataDir: dir, env: { DATABASE_URL: db.url, NOSTR_SECRET_KEY: sk } });
      expect(second.pubkey).toBe(first.pubkey);
      expect(await second.kill('SIGTERM')).toBe(0);
    } finally {
      await db.drop();
    }
  });
});
