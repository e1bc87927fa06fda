// Looks into a daemon's store from a test: its SQLite file (read-only; WAL readers never block the writer), or,
// in the `pg` vitest project, the PostgreSQL database test/helpers/procs.ts gave the daemon's DATA_DIR.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { TEST_STORE } from './store-under-test.ts';

/** SQLite only: `fn` on the daemon's file, opened read-only. Tests that also run on PostgreSQL use `query`. */
export function readDb<T>(dataDir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, 'timmy.db'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const databaseOf = new Map<string, Promise<string>>(); // DATA_DIR -> its PostgreSQL database (pg project)

/**
 * The DATABASE_URL for daemons on `dataDir` in the `pg` project (null on SQLite): a fresh database the first
 * time, the same one when a daemon on that directory starts again (a restart keeps its store).
 */
export function databaseFor(dataDir: string): Promise<string> | null {
  if (TEST_STORE !== 'pg') return null;
  let url = databaseOf.get(dataDir);
  if (!url) {
    url = import('./pg.ts').then(async ({ freshPgDatabase }) => (await freshPgDatabase()).url);
    databaseOf.set(dataDir, url);
  }
  return url;
}

/** One statement with `?` placeholders on the daemon's store, SQLite or PostgreSQL; its rows (numbers as numbers). */
export async function query<T = Record<string, unknown>>(dataDir: string, sql: string, ...params: unknown[]): Promise<T[]> {
  const url = databaseFor(dataDir);
  if (!url) return readDb(dataDir, (db) => db.prepare(sql).all(...params) as T[]);
  const [{ default: pg }, { pgTypes }] = await Promise.all([import('pg'), import('../../src/store/pg-types.ts')]);
  const client = new pg.Client({ connectionString: await url, types: pgTypes });
  await client.connect();
  try {
    let n = 0;
    return (await client.query(sql.replace(/\?/g, () => `$${++n}`), params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** The first row of `query`, or undefined. */
export async function queryOne<T = Record<string, unknown>>(dataDir: string, sql: string, ...params: unknown[]): Promise<T | undefined> {
  return (await query<T>(dataDir, sql, ...params))[0];
}

export function jobRow(dataDir: string, id: string): Promise<{ state: string; error_message: string | null } | undefined> {
  return queryOne(dataDir, 'select * from jobs where id = ?', id);
}

export function outboxRows(dataDir: string, jobId: string): Promise<{ id: number; intent_json: string; event_id: string | null; acked_at: number | null }[]> {
  return query(dataDir, 'select * from outbox where job_id = ? order by id', jobId);
}
