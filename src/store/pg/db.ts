// The PostgreSQL connection: a pool with exact number parsing, and the committed migrations applied under an
// advisory lock (workers starting together must not each create the tables).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase, type NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase } from 'drizzle-orm/pg-core';
import * as tables from '../../../schema/tables-pg.ts';
import { PACKAGE_ROOT } from '../../config.ts';
import { NoStoreError, SchemaTooNewError } from '../db.ts';
import { pgTypes } from '../pg-types.ts';
import { redactDatabaseUrl } from '../open.ts';

export const MIGRATIONS_PG_DIR = resolve(PACKAGE_ROOT, 'schema/migrations-pg');

/** The pool's database, or a transaction on it: every store function takes either. */
export type PgQ = PgDatabase<NodePgQueryResultHKT, typeof tables>;
export type PgDb = NodePgDatabase<typeof tables> & { $client: pg.Pool };

/** Now in unix ms by the database's clock: leases are compared with it, so workers' clocks may disagree. */
export const DB_NOW_MS = sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;

const MIGRATION_LOCK = 7_411_789; // pg_advisory_lock key: one migrator at a time

function newestKnownMigration(): number {
  const journal = JSON.parse(readFileSync(resolve(MIGRATIONS_PG_DIR, 'meta/_journal.json'), 'utf8')) as { entries: { when: number }[] };
  return Math.max(...journal.entries.map((e) => e.when));
}

async function appliedMigration(client: pg.PoolClient): Promise<number | null> {
  const t = await client.query<{ t: string | null }>("select to_regclass('drizzle.__drizzle_migrations')::text as t");
  if (!t.rows[0]?.t) return null;
  const r = await client.query<{ m: number | null }>('select max(created_at) as m from drizzle.__drizzle_migrations');
  return r.rows[0]?.m ?? null;
}

/** Opens a pool on `url` and brings the schema up to date (once, under a lock shared by every worker). */
export async function openPgDb(url: string, opts: { migrate?: boolean; max?: number } = {}): Promise<PgDb> {
  const pool = new pg.Pool({ connectionString: url, types: pgTypes, max: opts.max ?? 10 });
  pool.on('error', () => {}); // an idle client's connection dropped: the pool replaces it; queries report their own errors
  try {
    const client = await pool.connect();
    try {
      await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        const applied = await appliedMigration(client);
        const newest = newestKnownMigration();
        if (applied !== null && applied > newest) {
          throw new SchemaTooNewError(`${redactDatabaseUrl(url)} was written by a newer version of Timmy (its schema is ahead of this one); run that version, or restore a backup`);
        }
        if (opts.migrate === false) {
          if (applied === null || applied < newest) throw new NoStoreError(`${redactDatabaseUrl(url)} is not up to date with this version of Timmy: run \`timmy migrate\` (or start the daemon) first`);
        } else if (applied === null || applied < newest) {
          await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_PG_DIR });
        }
      } finally {
        await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      }
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end();
    throw err;
  }
  return drizzle(pool, { schema: tables }) as PgDb;
}
