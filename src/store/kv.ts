// Small named values (subscription cursor, stub node key, demo spend) in the `kv` table.
import { eq } from 'drizzle-orm';
import { kv } from '../../schema/tables.ts';
import type { Db } from './db.ts';

export function getKv(db: Db, key: string): string | undefined {
  return db.select().from(kv).where(eq(kv.key, key)).get()?.value;
}

export function setKv(db: Db, key: string, value: string): void {
  db.insert(kv).values({ key, value }).onConflictDoUpdate({ target: kv.key, set: { value } }).run();
}
