// Sessions over PostgreSQL: ../sessions.ts statement for statement. The balance is the ledger sum; a write
// that depends on it holds the session row's lock (`select … for update`, taken by reads inside a
// transaction, or the compare-and-set `update` itself), so concurrent requests on several workers can never
// take it below zero.
import { and, asc, eq, inArray, lte, sql } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import { sessionLedger, sessions } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';
import { applyCounterMoves, insertInvoiceRow, markInvoiceRow, transactionIf, type CounterMoves } from './invoices.ts';
import { addCredit, int8, sumOf } from './credits.ts';
import type { CreditEntry, NewBookInvoice } from '../../core/types.ts';
import { isSessionState, type SessionState } from '../../core/session-machine.ts';
import type { LedgerEntry, Session, SessionMove } from '../sessions.ts';

export type { LedgerEntry, Session, SessionMove };

function toSession(r: typeof sessions.$inferSelect): Session {
  if (!isSessionState(r.state)) throw new Error(`session ${r.id} has unknown state ${r.state}`);
  return { id: r.id, state: r.state, pubkey: r.pubkey, clientAddress: r.clientAddress, origin: r.origin, createdAt: r.createdAt, lastUsedAt: r.lastUsedAt };
}

/**
 * Inside a transaction, the read locks the session row (`for update`) until the transaction ends: the core
 * decides ledger writes from what it reads here (close and expiry move out the balance, a debit reports the
 * balance after it), and under READ COMMITTED a concurrent reservation could otherwise land between the read
 * and the write. Outside one (the root store), a plain read.
 */
export async function getSession(q: PgQ, id: string): Promise<Session | undefined> {
  return inTransaction(q) ? lockSession(q, id) : toSessionOrNone(await q.select().from(sessions).where(eq(sessions.id, id)));
}

/** `getSession` holding the row's lock until the transaction ends: call inside one, before reading the balance. */
export async function lockSession(q: PgQ, id: string): Promise<Session | undefined> {
  return toSessionOrNone(await q.select().from(sessions).where(eq(sessions.id, id)).for('update'));
}

/** Whether `q` is a transaction (or a savepoint in one), not the pool. A plain boolean: no narrowing of `q`. */
const inTransaction = (q: PgQ): boolean => q instanceof PgTransaction;

function toSessionOrNone(rows: (typeof sessions.$inferSelect)[]): Session | undefined {
  const r = rows[0];
  return r && toSession(r);
}

/** The ledger sum, read as it stands (call after locking the session row when a write depends on it). */
export async function ledgerSum(q: PgQ, sessionId: string): Promise<number> {
  const [r] = await q.select({ total: sumOf(sessionLedger.amountMsats) }).from(sessionLedger).where(eq(sessionLedger.sessionId, sessionId));
  return r?.total ?? 0;
}

/**
 * The balance. Inside a transaction the session row is locked first (see `getSession`), and the sum is read
 * by the next statement, which sees every reservation committed before the lock was granted.
 */
export async function balanceMsats(q: PgQ, sessionId: string): Promise<number> {
  if (inTransaction(q)) await q.select({ id: sessions.id }).from(sessions).where(eq(sessions.id, sessionId)).for('update');
  return ledgerSum(q, sessionId);
}

/**
 * Appends ledger entries (each `ref` once, the first listing of a ref in `entries` winning as in SQLite);
 * call inside a transaction. One insert: ids follow the entries' order.
 */
export async function addLedger(q: PgQ, entries: LedgerEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const now = Date.now();
  await q
    .insert(sessionLedger)
    .values(entries.map((e) => ({ sessionId: e.sessionId, kind: e.kind, amountMsats: e.amountMsats, jobId: e.jobId, paymentHash: e.paymentHash, ref: e.ref, createdAt: now })))
    .onConflictDoNothing();
}

export async function ledger(q: PgQ, sessionId: string): Promise<(typeof sessionLedger.$inferSelect)[]> {
  return q.select().from(sessionLedger).where(eq(sessionLedger.sessionId, sessionId)).orderBy(asc(sessionLedger.id));
}

export async function createSession(q: PgQ, s: Omit<Session, 'createdAt' | 'lastUsedAt'>, invoice: NewBookInvoice): Promise<void> {
  const now = Date.now();
  await q.transaction(async (tx) => {
    await tx.insert(sessions).values({ id: s.id, state: s.state, pubkey: s.pubkey, clientAddress: s.clientAddress, origin: s.origin, createdAt: now, lastUsedAt: now, updatedAt: now });
    const moves: CounterMoves = new Map();
    await insertInvoiceRow(tx, invoice, now, moves);
    await applyCounterMoves(tx, moves);
  });
}

/** The compare-and-set on the session row (which it leaves locked until the transaction ends); true when it matched. */
export async function updateSession(q: PgQ, m: Pick<SessionMove, 'sessionId' | 'from' | 'to' | 'touch'>, now: number): Promise<boolean> {
  const set: Partial<typeof sessions.$inferInsert> = { updatedAt: now };
  if (m.to) set.state = m.to;
  if (m.touch) set.lastUsedAt = now;
  const r = await q
    .update(sessions)
    .set(set)
    .where(and(eq(sessions.id, m.sessionId), inArray(sessions.state, m.from)))
    .returning({ id: sessions.id });
  return r.length === 1;
}

/**
 * Compare-and-set on the session state with its ledger entries and credits; with `settle`, only if this call
 * marks the invoice (a settlement reported twice moves the session once). True when applied. The `update`
 * locks the session row first (a concurrent mover or reserver waits for this commit), then the invoice,
 * the ledger and credits, the open-invoice counter last.
 */
export async function moveSession(q: PgQ, m: SessionMove): Promise<boolean> {
  const now = Date.now();
  return transactionIf(q, async (tx) => {
    if (!(await updateSession(tx, m, now))) return false;
    const moves: CounterMoves = new Map();
    if (m.settle && !(await markInvoiceRow(tx, m.settle.paymentHash, m.settle.status, now, moves))) return false;
    await addLedger(tx, m.ledger ?? []);
    for (const c of m.credits ?? []) await addCredit(tx, c);
    await applyCounterMoves(tx, moves);
    return true;
  });
}

/**
 * An unpaid session whose deposit invoice ran out: the invoice expires and the session is purged. Both or
 * neither, as in SQLite; the session row goes first (lock order: subject row, then its invoice).
 */
export async function purgeUnpaidSession(q: PgQ, sessionId: string, paymentHash: string): Promise<boolean> {
  return transactionIf(q, async (tx) => {
    const gone = await tx
      .delete(sessions)
      .where(and(eq(sessions.id, sessionId), eq(sessions.state, 'awaiting_deposit')))
      .returning({ id: sessions.id });
    if (gone.length !== 1) return false;
    const moves: CounterMoves = new Map();
    if (!(await markInvoiceRow(tx, paymentHash, 'expired', Date.now(), moves))) return false;
    await applyCounterMoves(tx, moves);
    return true;
  });
}

/** Sessions unused since `beforeMs` in the given states. */
export async function idleSessions(q: PgQ, states: SessionState[], beforeMs: number, limit = 500): Promise<Session[]> {
  const rows = await q
    .select()
    .from(sessions)
    .where(and(inArray(sessions.state, states), lte(sessions.lastUsedAt, beforeMs)))
    .limit(limit);
  return rows.map(toSession);
}

/** Sessions in `states` opened from one client address, counted up to `upTo` per state (a bounded index range each). */
export async function countSessionsOf(q: PgQ, states: SessionState[], clientAddress: string, upTo: number): Promise<number> {
  if (states.length === 0) return 0;
  const r = await q.execute(sql`
    select coalesce(sum(c.n), 0)::bigint as n
      from unnest(${sql.param(states)}::text[]) as s(state)
     cross join lateral (select count(*) as n from (select 1 from ${sessions} x where x.client_address = ${clientAddress} and x.state = s.state limit ${upTo}) b) c`);
  return int8(r.rows[0]?.n ?? 0);
}

/** Open reservations (reserve without release), for the restart pass. */
export async function openReservations(q: PgQ): Promise<{ sessionId: string; jobId: string; amountMsats: number }[]> {
  const r = await q.execute(sql`
    select r.session_id as session_id, r.job_id as job_id, -r.amount_msats as amount_msats
      from session_ledger r
     where r.kind = 'reserve'
       and not exists (select 1 from session_ledger x where x.kind = 'release' and x.job_id = r.job_id)`);
  return r.rows.map((row) => ({ sessionId: String(row.session_id), jobId: row.job_id as string, amountMsats: int8(row.amount_msats) }));
}

/** What was taken from a session for one job, by kind (`reserve`: held while it runs; `debit`: charged). */
async function takenFor(q: PgQ, jobId: string, kind: 'reserve' | 'debit'): Promise<number> {
  const [r] = await q
    .select({ total: sumOf(sessionLedger.amountMsats) })
    .from(sessionLedger)
    .where(and(eq(sessionLedger.jobId, jobId), eq(sessionLedger.kind, kind)));
  return -(r?.total ?? 0);
}

export const reservedFor = (q: PgQ, jobId: string): Promise<number> => takenFor(q, jobId, 'reserve');

/** What a job was debited in the end (0 when its failure left nothing to charge). */
export const debitedFor = (q: PgQ, jobId: string): Promise<number> => takenFor(q, jobId, 'debit');
