// Credits ledger queries. Entries are append-only; each `ref` happens once; a balance is a sum.
import { desc, eq, sql, sum } from 'drizzle-orm';
import { credits } from '../../schema/tables.ts';
import { atomically, type Db } from './db.ts';
import { prepared } from './prepared.ts';
import type { CreditEntry } from '../core/types.ts';

export type { CreditEntry };

/**
 * A spend would take its account below zero: another transaction (on another worker) spent the same credit
 * between the charge's read of the balance and this commit. Thrown from the spend, so the whole transaction
 * it belongs to rolls back; the caller charges again against the balance as it now is.
 */
export class CreditRaced extends Error {
  override name = 'CreditRaced';
  constructor(
    readonly account: string,
    readonly balanceMsats: number, // msats, before the refused entry
    readonly deltaMsats: number, // msats, the refused entry (negative)
  ) {
    super(`credit of ${account} was spent meanwhile: ${balanceMsats} msats left, ${-deltaMsats} msats wanted`);
  }
}

/**
 * Appends an entry unless its ref exists; true when written. Call inside the transition's transaction. A
 * spend (negative delta) must leave the balance at zero or above, else CreditRaced (nothing written). One
 * SQLite writer: the balance read here is the one the entry lands on.
 */
export function addCredit(db: Db, e: CreditEntry): boolean {
  if (e.deltaMsats >= 0) return insertCredit(db, e);
  return atomically(db, () => {
    if (!insertCredit(db, e)) return false;
    const after = creditBalanceMsats(db, e.account);
    if (after < 0) throw new CreditRaced(e.account, after - e.deltaMsats, e.deltaMsats);
    return true;
  });
}

function insertCredit(db: Db, e: CreditEntry): boolean {
  const q = prepared(db, 'addCredit', () =>
    db
      .insert(credits)
      .values({
        account: sql.placeholder('account'),
        deltaMsats: sql.placeholder('deltaMsats'),
        reason: sql.placeholder('reason'),
        jobId: sql.placeholder('jobId'),
        ref: sql.placeholder('ref'),
        createdAt: sql.placeholder('createdAt'),
      })
      .onConflictDoNothing()
      .prepare(),
  );
  return q.run({ ...e, createdAt: Date.now() }).changes === 1;
}

export function creditBalanceMsats(db: Db, account: string): number {
  const q = prepared(db, 'creditBalance', () =>
    db.select({ total: sum(credits.deltaMsats) }).from(credits).where(eq(credits.account, sql.placeholder('account'))).prepare(),
  );
  return Number(q.get({ account })?.total ?? 0);
}

export function creditEntries(db: Db, account?: string, limit = 200): (CreditEntry & { createdAt: number })[] {
  const q = db.select().from(credits);
  return (account ? q.where(eq(credits.account, account)) : q).orderBy(desc(credits.id)).limit(limit).all();
}

export function creditBalances(db: Db): { account: string; balanceMsats: number }[] {
  return db
    .select({ account: credits.account, balanceMsats: sql<number>`sum(${credits.deltaMsats})` })
    .from(credits)
    .groupBy(credits.account)
    .all();
}
