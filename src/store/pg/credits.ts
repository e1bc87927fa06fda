// The credits ledger over PostgreSQL: ../credits.ts statement for statement. Entries are append-only; each
// `ref` happens once (`on conflict do nothing`: a concurrent insert of the same ref waits for the first and
// then writes nothing); a balance is a sum.
import { desc, eq, sql } from 'drizzle-orm';
import { credits } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';
import { parseInt8 } from '../pg-types.ts';
import type { CreditEntry } from '../../core/types.ts';
import { CreditRaced } from '../credits.ts';

export type { CreditEntry };
export { CreditRaced };

/**
 * An int8 (or integral numeric) as a number, exactly. drizzle's node-postgres driver hands aggregates and raw
 * rows over as text whatever the pool's parsers; a number already parsed passes through.
 */
export function int8(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v == null) throw new TypeError('int8: null where a number was expected');
  return parseInt8(String(v));
}

/** `coalesce(sum(col), 0)` as an exact number (sum of bigint is numeric in PostgreSQL). */
export const sumOf = (col: unknown) => sql<number>`coalesce(sum(${col}), 0)::bigint`.mapWith(int8);

/**
 * Appends an entry unless its ref exists; true when written. Call inside the transition's transaction. A
 * spend (negative delta) first takes the account's advisory lock (held to the end of the enclosing
 * transaction), so spends of one account on every worker commit one after another, each reading the balance
 * the ones before it left (READ COMMITTED: a new snapshot per statement); one that would take the balance
 * below zero throws CreditRaced, rolling its whole transaction back.
 */
export async function addCredit(q: PgQ, e: CreditEntry): Promise<boolean> {
  if (e.deltaMsats >= 0) return insertCredit(q, e);
  return q.transaction(async (tx) => {
    await lockAccount(tx, e.account);
    if (!(await insertCredit(tx, e))) return false;
    const after = await creditBalanceMsats(tx, e.account);
    if (after < 0) throw new CreditRaced(e.account, after - e.deltaMsats, e.deltaMsats);
    return true;
  });
}

/**
 * The per-account lock every spend takes: after its subject's row (a spend comes with its subject's move), before
 * the counter rows, the same order in every transaction.
 */
export async function lockAccount(q: PgQ, account: string): Promise<void> {
  await q.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`acct:${account}`}, 0))`);
}

async function insertCredit(q: PgQ, e: CreditEntry): Promise<boolean> {
  const rows = await q
    .insert(credits)
    .values({ account: e.account, deltaMsats: e.deltaMsats, reason: e.reason, jobId: e.jobId, ref: e.ref, createdAt: Date.now() })
    .onConflictDoNothing()
    .returning({ id: credits.id });
  return rows.length === 1;
}

export async function creditBalanceMsats(q: PgQ, account: string): Promise<number> {
  const [r] = await q.select({ total: sumOf(credits.deltaMsats) }).from(credits).where(eq(credits.account, account));
  return r?.total ?? 0;
}

export async function creditEntries(q: PgQ, account?: string, limit = 200): Promise<(CreditEntry & { createdAt: number })[]> {
  const s = q.select().from(credits);
  return (account ? s.where(eq(credits.account, account)) : s).orderBy(desc(credits.id)).limit(limit);
}

export async function creditBalances(q: PgQ): Promise<{ account: string; balanceMsats: number }[]> {
  return q
    .select({ account: credits.account, balanceMsats: sql<number>`sum(${credits.deltaMsats})::bigint`.mapWith(int8) })
    .from(credits)
    .groupBy(credits.account);
}
