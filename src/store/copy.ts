// Moving a store from SQLite to PostgreSQL (`timmy migrate --to postgres://…`): every row of every table,
// in one PostgreSQL transaction, into an empty, migrated database. The two schemas have the same tables
// and JS column names (test/schema-agreement.test.ts), so a row read from one is a row for the other.
import { getTableName, sql } from 'drizzle-orm';
import * as lite from '../../schema/tables.ts';
import * as pgTables from '../../schema/tables-pg.ts';
import { openDbReadOnly } from './db.ts';
import { openPgDb } from './pg/db.ts';

const BATCH = 500; // rows per insert (PostgreSQL takes at most 65,535 parameters per statement)

/** Tables whose id comes from an identity sequence: moved past the copied ids afterwards. */
const IDENTITY_TABLES = ['outbox', 'credits', 'session_ledger'];

export class TargetNotEmptyError extends Error {
  override name = 'TargetNotEmptyError';
}

/** Copies the SQLite store at `sqlitePath` into the PostgreSQL database at `url`; returns rows per table. */
export async function copySqliteToPg(sqlitePath: string, url: string): Promise<Record<string, number>> {
  const from = openDbReadOnly(sqlitePath);
  const to = await openPgDb(url);
  try {
    const names = Object.keys(lite) as (keyof typeof lite)[];
    const copied: Record<string, number> = {};
    await to.transaction(async (tx) => {
      for (const name of names) {
        const table = getTableName(pgTables[name]);
        const existing = await tx.execute(sql`select 1 from ${sql.identifier(table)} limit 1`);
        if (existing.rows.length > 0) throw new TargetNotEmptyError(`the target database already has rows in ${table}: moving a store needs an empty one`);
      }
      for (const name of names) {
        // Read whole tables from SQLite: a store that fits one file fits in memory a table at a time.
        const rows = from.select().from(lite[name]).all() as Record<string, unknown>[];
        for (let i = 0; i < rows.length; i += BATCH) {
          await tx.insert(pgTables[name]).values(rows.slice(i, i + BATCH) as never);
        }
        copied[getTableName(pgTables[name])] = rows.length;
      }
      for (const table of IDENTITY_TABLES) {
        await tx.execute(sql`select setval(pg_get_serial_sequence(${table}, 'id'), coalesce((select max(id) from ${sql.identifier(table)}), 0) + 1, false)`);
      }
    });
    return copied;
  } finally {
    from.$client.close();
    await to.$client.end();
  }
}
