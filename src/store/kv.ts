// Small named values (subscription cursor, stub node key, demo spend) in the `kv` table. Values several workers
// write are changed by one conditional statement each (a sum under a cap, a maximum, a first writer wins),
// never read-modify-write from the caller.
import { eq, sql } from 'drizzle-orm';
import { prepared } from './prepared.ts';
import { kv } from '../../schema/tables.ts';
import type { Db } from './db.ts';

export function getKv(db: Db, key: string): string | undefined {
  return db.select().from(kv).where(eq(kv.key, key)).get()?.value;
}

export function setKv(db: Db, key: string, value: string): void {
  const q = prepared(db, 'setKv', () =>
    db
      .insert(kv)
      .values({ key: sql.placeholder('key'), value: sql.placeholder('value') })
      .onConflictDoUpdate({ target: kv.key, set: { value: sql`excluded.value` } })
      .prepare(),
  );
  q.run({ key, value });
}

/**
 * Adds `delta` to the integer kept at `key` (absent: 0) unless the sum would exceed `cap`; the new value, or
 * null (nothing changed) when over the cap. The check and the write are one statement.
 */
export function addToNumber(db: Db, key: string, delta: number, cap: number): number | null {
  integers({ delta, cap });
  db.$client.prepare("insert into kv (key, value) values (?, '0') on conflict (key) do nothing").run(key);
  const r = prepared(db, 'addToNumber', () =>
    db.$client.prepare(
      'update kv set value = cast(cast(value as integer) + cast(@delta as integer) as text) where key = @key and cast(value as integer) + cast(@delta as integer) <= cast(@cap as integer) returning value',
    ),
  ).get({ delta, key, cap }) as { value: string } | undefined;
  return r ? Number(r.value) : null;
}

/** Sets the integer at `key` to `value` unless it already holds a larger one (a cursor that only moves forward). */
export function setMaxNumber(db: Db, key: string, value: number): void {
  integers({ value });
  prepared(db, 'setMaxNumber', () =>
    db.$client.prepare(
      'insert into kv (key, value) values (?, cast(cast(? as integer) as text)) on conflict (key) do update set value = excluded.value where cast(excluded.value as integer) > cast(kv.value as integer)',
    ),
  ).run(key, value);
}

/** The value at `key`, stored first as `value` when absent: every caller gets the first writer's value. */
export function getOrCreate(db: Db, key: string, value: string): string {
  db.$client.prepare('insert into kv (key, value) values (?, ?) on conflict (key) do nothing').run(key, value);
  return getKv(db, key)!;
}

/** The numbers kept in `kv` are integers (better-sqlite3 binds a JS number as a REAL, which would write "5.0"). */
export function integers(values: Record<string, number>): void {
  for (const [name, v] of Object.entries(values)) if (!Number.isSafeInteger(v)) throw new RangeError(`kv: ${name} must be an integer, got ${v}`);
}
