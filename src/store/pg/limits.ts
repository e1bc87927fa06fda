// Rate limits shared by every worker over PostgreSQL: ../limits.ts, with the key's advisory lock held from the
// count to the insert, so two workers taking the last hit of a window at once cannot both see room for it.
import { and, count, eq, gt, lt, min, sql } from 'drizzle-orm';
import { rateHits } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';

/** ../limits.ts take: null when taken, else the ms until a hit leaves the window. */
export async function take(q: PgQ, key: string, limit: number, windowMs: number, nowMs: number): Promise<number | null> {
  return q.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`rate:${key}`}, 0))`);
    const [r] = await tx
      .select({ n: count(), oldest: min(rateHits.at) })
      .from(rateHits)
      .where(and(eq(rateHits.key, key), gt(rateHits.at, nowMs - windowMs)));
    if ((r?.n ?? 0) >= limit) return Math.max(1, r!.oldest! + windowMs - nowMs);
    await tx.insert(rateHits).values({ key, at: nowMs });
    return null;
  });
}

/** ../limits.ts prune. */
export async function prune(q: PgQ, beforeMs: number): Promise<number> {
  const r = await q.delete(rateHits).where(lt(rateHits.at, beforeMs));
  return r.rowCount ?? 0;
}

/**
 * ../limits.ts holdCaps: a transaction-scoped advisory lock per cap, taken before anything else (so the
 * transactions waiting for it hold nothing another one needs). Without it two workers both read a count one
 * below the cap and both create: the cap is passed by one per worker.
 */
export async function holdCaps(q: PgQ, name: string): Promise<void> {
  await q.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`caps:${name}`}, 0))`);
}
