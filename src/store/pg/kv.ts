// Small named values (subscription cursor, stub node key, demo spend) in the `kv` table: PostgreSQL twin of
// ../kv.ts. Values several workers write change by one conditional statement each: an `update … where` waits
// for a concurrent writer of the row and re-checks its condition on the committed value (READ COMMITTED), an
// `insert … on conflict` waits for a concurrent insert of the key.
import { eq, sql } from 'drizzle-orm';
import { kv } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';
import { integers } from '../kv.ts';

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

/** ../kv.ts addToNumber: the sum under the cap, or null. */
export async function addToNumber(q: PgQ, key: string, delta: number, cap: number): Promise<number | null> {
  integers({ delta, cap });
  await q.insert(kv).values({ key, value: '0' }).onConflictDoNothing();
  const r = await q.execute(sql`
    update ${kv} set value = (value::numeric + ${delta}::numeric)::text
     where key = ${key} and value::numeric + ${delta}::numeric <= ${cap}::numeric
    returning value`);
  const v = r.rows[0]?.value;
  return v === undefined ? null : Number(v);
}

/** ../kv.ts setMaxNumber: the larger of what is there and `value`. */
export async function setMaxNumber(q: PgQ, key: string, value: number): Promise<void> {
  integers({ value });
  await q.execute(sql`
    insert into ${kv} (key, value) values (${key}, ${String(value)})
    on conflict (key) do update set value = excluded.value where excluded.value::numeric > ${kv.value}::numeric`);
}

/** ../kv.ts getOrCreate: the first writer's value. */
export async function getOrCreate(q: PgQ, key: string, value: string): Promise<string> {
  await q.insert(kv).values({ key, value }).onConflictDoNothing();
  return (await getKv(q, key))!;
}
