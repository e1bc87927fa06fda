// Opens the SQLite store (WAL, secure_delete) and applies the committed drizzle-kit migrations.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as tables from '../../schema/tables.ts';
import { PACKAGE_ROOT } from '../config.ts';

export type Db = BetterSQLite3Database<typeof tables> & { $client: Database.Database };

export const MIGRATIONS_DIR = resolve(PACKAGE_ROOT, 'schema/migrations');

/** Opens (creating if needed) the database file and brings its schema up to date. */
export function openDb(path: string): Db {
  mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL'); // WAL + NORMAL: a commit survives a process kill
  sqlite.pragma('busy_timeout = 5000'); // ms; the CLI may read while the daemon writes
  sqlite.pragma('secure_delete = ON'); // erased secrets do not linger in free pages (SPEC 1)
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle(sqlite, { schema: tables }) as Db;
  migrate(db, { migrationsFolder: MIGRATIONS_DIR });
  return db;
}

export function closeDb(db: Db): void {
  db.$client.pragma('wal_checkpoint(TRUNCATE)');
  db.$client.close();
}

/**
 * Runs `fn` in one SQLite transaction (a savepoint when nested). Uses better-sqlite3's transaction on the
 * same connection as `db`, so statements prepared once per connection (prepared.ts) work inside it.
 */
export function atomically<T>(db: Db, fn: () => T): T {
  return db.$client.transaction(fn)();
}

class Rollback extends Error {}

/** Runs `fn` in one transaction that commits only when `fn` returns true (a failed compare-and-set rolls back). */
export function atomicallyIf(db: Db, fn: () => boolean): boolean {
  try {
    return db.$client.transaction(() => {
      if (!fn()) throw new Rollback();
      return true;
    })();
  } catch (err) {
    if (err instanceof Rollback) return false;
    throw err;
  }
}
