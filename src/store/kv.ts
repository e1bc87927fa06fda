// Small named values (subscription cursor, stub node key, demo spend) in the `kv` table.
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
