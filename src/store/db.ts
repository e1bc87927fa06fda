// Opens the SQLite store (WAL, secure_delete) and applies the committed drizzle-kit migrations.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as tables from '../../schema/tables.ts';
import { PACKAGE_ROOT } from '../config.ts';

export type Db = BetterSQLite3Database<typeof tables> & { $client: Database.Database };

export const MIGRATIONS_DIR = resolve(PACKAGE_ROOT, 'schema/migrations');

/** The database was written by a newer Timmy: its schema has migrations this version does not know. */
export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
}

/** unix ms of the newest migration this version ships (drizzle records it as the migration's created_at). */
function newestKnownMigration(): number {
  const journal = JSON.parse(readFileSync(resolve(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as { entries: { when: number }[] };
  return Math.max(...journal.entries.map((e) => e.when));
}

/** Opens (creating if needed) the database file and brings its schema up to date. */
export function openDb(path: string): Db {
  mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  try {
    return prepareDb(sqlite);
  } catch (err) {
    sqlite.close();
    throw err;
  }
}

/** There is no database at the path a read-only command was pointed at (nothing is created there). */
export class NoStoreError extends Error {
  override name = 'NoStoreError';
}

/**
 * Opens an existing database for reading only (the CLI's `jobs`, `credits`): never creates a file or a
 * directory, never migrates; a missing or out-of-date store is a clear error instead.
 */
export function openDbReadOnly(path: string): Db {
  if (!existsSync(path)) {
    throw new NoStoreError(`no store at ${path}: the daemon has not run with this DATA_DIR (or DATABASE_PATH); set them as the daemon has them`);
  }
  const sqlite = new Database(path, { readonly: true, fileMustExist: true });
  try {
    sqlite.pragma('busy_timeout = 5000'); // ms; the daemon may be writing
    const hasTable = sqlite.prepare("select name from sqlite_master where type = 'table' and name = '__drizzle_migrations'").get();
    const applied = hasTable ? (sqlite.prepare('select max(created_at) m from __drizzle_migrations').get() as { m: number | null }).m : null;
    const newest = newestKnownMigration();
    if (applied !== null && applied > newest) throw new SchemaTooNewError(`${path} was written by a newer version of Timmy (its schema is ahead of this one)`);
    if (applied === null || applied < newest) throw new NoStoreError(`${path} is not up to date with this version of Timmy: run \`timmy migrate\` (or start the daemon) first`);
    return drizzle(sqlite, { schema: tables }) as Db;
  } catch (err) {
    sqlite.close();
    throw err;
  }
}

function prepareDb(sqlite: Database.Database): Db {
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL'); // WAL + NORMAL: a commit survives a process kill
  sqlite.pragma('busy_timeout = 5000'); // ms; the CLI may read while the daemon writes
  sqlite.pragma('secure_delete = ON'); // erased secrets do not linger in free pages (SPEC 1)
  sqlite.pragma('foreign_keys = ON');
  const applied = sqlite.prepare("select name from sqlite_master where type = 'table' and name = '__drizzle_migrations'").get()
    ? (sqlite.prepare('select max(created_at) m from __drizzle_migrations').get() as { m: number | null }).m
    : null;
  if (applied !== null && applied > newestKnownMigration()) {
    throw new SchemaTooNewError(`${sqlite.name} was written by a newer version of Timmy (its schema is ahead of this one); run that version, or restore a backup`);
  }
  const db = drizzle(sqlite, { schema: tables }) as Db;
  migrate(db, { migrationsFolder: MIGRATIONS_DIR });
  return db;
}

export function closeDb(db: Db): void {
  if (!db.$client.readonly) db.$client.pragma('wal_checkpoint(TRUNCATE)');
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

interface Pending {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (err: unknown) => void;
}
const groups = new WeakMap<object, Pending[]>();

/**
 * Group commit: runs `fn` in its own savepoint inside one transaction shared with every other grouped write
 * of this event-loop turn, and resolves once that transaction has committed. A commit costs far more than
 * the statements of one job (WAL pages, checkpoints); a burst of requests pays for one. `fn` either
 * commits whole or not at all, as with `atomically`; a throw rejects only its own promise.
 */
export function groupCommit<T>(db: Db, fn: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let queue = groups.get(db.$client);
    if (!queue) {
      queue = [];
      groups.set(db.$client, queue);
      setImmediate(() => flushGroup(db));
    }
    queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
  });
}

function flushGroup(db: Db): void {
  const queue = groups.get(db.$client) ?? [];
  groups.delete(db.$client);
  const results: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
  try {
    db.$client.transaction(() => {
      for (const p of queue) {
        try {
          results.push({ ok: true, value: db.$client.transaction(p.fn)() }); // a savepoint: a throw undoes only this one
        } catch (err) {
          results.push({ ok: false, err });
          // Some errors (disk full, I/O) end the whole transaction: run nothing more outside it.
          if (!db.$client.inTransaction) throw err;
        }
      }
    })();
  } catch (err) {
    for (const p of queue) p.reject(err); // the transaction failed: nothing of the group was written
    return;
  }
  queue.forEach((p, i) => {
    const r = results[i]!;
    if (r.ok) p.resolve(r.value);
    else p.reject(r.err);
  });
}
