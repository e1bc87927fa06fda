// Moving a SQLite store to PostgreSQL with `timmy migrate --to` (issue 11, item 7): every row of every table
// arrives equal; the identity sequences go on after the copied ids; a second copy into a filled database is
// refused; the CLI's reports read the moved store through DATABASE_URL.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { asc } from 'drizzle-orm';
import { getTableConfig as liteConfig } from 'drizzle-orm/sqlite-core';
import * as lite from '../schema/tables.ts';
import * as pgTables from '../schema/tables-pg.ts';
import { ROOT, tempDir } from './helpers/procs.ts';
import { freshPgDatabase } from './helpers/pg.ts';
import { openDb, closeDb } from '../src/store/db.ts';
import { openPgStore } from '../src/store/pg/store.ts';

const FIXTURE = join(ROOT, 'test/fixtures/v0-store/data');

describe('timmy migrate --to', () => {
  it('copies every row of a SQLite store into an empty PostgreSQL database, once', async () => {
    const dataDir = tempDir('timmy-move-');
    cpSync(FIXTURE, dataDir, { recursive: true }); // a store with rows in every state (migrated by the command)
    const pg = await freshPgDatabase();
    const env = { PATH: process.env.PATH, DATA_DIR: dataDir };
    const run = (...args: string[]) => spawnSync(process.execPath, ['src/bin.js', ...args], { cwd: ROOT, env, encoding: 'utf8' });
    try {
      const moved = run('migrate', '--to', pg.url);
      expect(moved.stderr).toBe('');
      expect(moved.status).toBe(0);
      expect(moved.stdout).toMatch(/^copied \d+ rows from /);
      expect(moved.stdout).not.toContain(new URL(pg.url).password); // the URL is shown without its password

      const db = openDb(join(dataDir, 'timmy.db'));
      const store = await openPgStore(pg.url);
      try {
        let total = 0;
        for (const name of Object.keys(lite) as (keyof typeof lite)[]) {
          const config = liteConfig(lite[name]);
          const key = config.columns.find((c) => c.primary)?.name ?? config.primaryKeys[0]?.columns[0]?.name ?? config.columns[0]!.name;
          const liteKey = Object.entries(lite[name]).find(([, col]) => (col as { name?: string }).name === key)![0];
          const want = db.select().from(lite[name]).orderBy(asc((lite[name] as never)[liteKey])).all();
          const got = await store.db.select().from(pgTables[name]).orderBy(asc((pgTables[name] as never)[liteKey]));
          expect(got.length).toBe(want.length);
          expect(new Set(got.map((r) => JSON.stringify(r)))).toEqual(new Set(want.map((r) => JSON.stringify(r))));
          total += want.length;
        }
        expect(total).toBeGreaterThan(20);
        // New rows get ids after the copied ones (a restarted sequence would collide with a copied id).
        await store.credits.addCredit({ account: 'f'.repeat(64), deltaMsats: 1, reason: 'after the move', jobId: null, ref: 'after-move' });
        const after = (await store.credits.creditEntries(undefined, 1))[0]!;
        expect(after.reason).toBe('after the move');
      } finally {
        closeDb(db);
        await store.close();
      }

      const again = run('migrate', '--to', pg.url);
      expect(again.status).toBe(1);
      expect(again.stderr).toMatch(/already has rows in .*: moving a store needs an empty one/);

      // The CLI's reports read the moved store.
      const jobs = execFileSync(process.execPath, ['src/bin.js', 'jobs', '--json'], { cwd: ROOT, env: { ...env, DATABASE_URL: pg.url }, encoding: 'utf8' });
      expect(jobs.trim().split('\n').length).toBeGreaterThan(3);
    } finally {
      await pg.drop();
    }
  });
});
