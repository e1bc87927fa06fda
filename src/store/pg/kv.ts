// Small named values (subscription cursor, stub node key, demo spend) in the `kv` table: PostgreSQL twin of ../kv.ts.
import { eq, sql } from 'drizzle-orm';
import { kv } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';

export async function getKv(q: PgQ, key: string): Promise<string | undefined> {
  const rows = await q.select({ value: kv.value }).from(kv).where(eq(kv.key, key)).limit(1);
  return rows[0]?.value;
}

export async function setKv(q: PgQ, key: string, value: string): Promise<void> {
  await q
    .insert(kv)
    .values({ key, value })
    .onConflictDoUpdate({ target: kv.key, set: { value: sql`excluded.value` } });
}
