// Terminal escapes from strangers never reach the operator's terminal through the CLI (issue 14, item 13).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/procs.ts';
import { openDb, closeDb } from '../src/store/db.ts';
import { createJob } from '../src/store/jobs.ts';
import { addCredit } from '../src/store/credits.ts';

const EVIL = 'clear\x1b[2J\x1b]0;owned\x07 nul\u0000 cr\rX rtl\u202Efdp.exe';

describe('CLI output', () => {
  it('timmy jobs and timmy credits show what strangers wrote as visible escapes', () => {
    const dataDir = tempDir();
    const db = openDb(join(dataDir, 'timmy.db'));
    const id = 'e'.repeat(64);
    createJob(db, {
      job: {
        id, kind: 5050, source: 'nostr', customerPubkey: 'c'.repeat(64), clientAddress: null, requestJson: null, encryption: 'none',
        input: EVIL, params: {}, relays: [], bidMsats: null, requestCreatedAt: 1, expiresAt: null,
      },
      state: 'failed',
      patch: { errorMessage: `invalid: ${EVIL}` },
      intents: [],
    });
    addCredit(db, { account: 'c'.repeat(64), deltaMsats: 1000, reason: EVIL, jobId: id, ref: 'test' });
    closeDb(db);
    const run = (...args: string[]) => execFileSync(process.execPath, ['src/bin.js', ...args], { cwd: ROOT, env: { PATH: process.env.PATH, DATA_DIR: dataDir }, encoding: 'utf8' });
    for (const out of [run('jobs'), run('jobs', '--json'), run('credits', 'c'.repeat(64))]) {
      expect(out).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
      expect(out).toContain('\\u001b');
    }
    expect(JSON.parse(run('jobs', '--json').split('\n')[0]!).input).toBe(EVIL.slice(0, 80)); // still the real text, as JSON
  });
});
