// Rate limits shared by every worker: one row per allowed hit in `rate_hits`, counted over a sliding window.
import { and, eq, gt, lt, sql } from 'drizzle-orm';
import { rateHits } from '../../schema/tables.ts';
import { atomically, type Db } from './db.ts';

/**
 * Records a hit on `key` unless `limit` hits already fall in the window ending at `nowMs` (those after
 * `nowMs - windowMs`); null when taken, else the ms until the oldest of them leaves the window. The count
 * and the insert are one transaction (one SQLite writer: nothing lands between them).
 */
export function take(db: Db, key: string, limit: number, windowMs: number, nowMs: number): number | null {
  return atomically(db, () => {
    const r = db
      .select({ n: sql<number>`count(*)`, oldest: sql<number | null>`min(${rateHits.at})` })
      .from(rateHits)
      .where(and(eq(rateHits.key, key), gt(rateHits.at, nowMs - windowMs)))
      .get();
    if ((r?.n ?? 0) >= limit) return Math.max(1, r!.oldest! + windowMs - nowMs);
    db.insert(rateHits).values({ key, at: nowMs }).run();
    return null;
  });
}

/** Deletes the hits before `beforeMs` (the retention pass: older than any window); how many went. */
export function prune(db: Db, beforeMs: number): number {
  return db.delete(rateHits).where(lt(rateHits.at, beforeMs)).run().changes;
}

/**
 * Called first in a transaction that checks a cap and then creates what it counts: such transactions run one
 * at a time, so the count each one reads is exact at its commit. SQLite: one writer at a time already.
 */
export function holdCaps(db: Db, name: string): void {
  void db, name;
}
