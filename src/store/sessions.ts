// Session queries. The balance is the ledger sum, and every check-then-write on it runs in one
// SQLite transaction, so concurrent requests can never take it below zero.
import { and, asc, eq, inArray, lte, sum } from 'drizzle-orm';
import { sessionLedger, sessions } from '../../schema/tables.ts';
import { atomically, atomicallyIf, type Db } from './db.ts';
import { insertInvoice, markInvoice } from './invoices.ts';
import type { CreditEntry, NewBookInvoice } from '../core/types.ts';
import { isSessionState, type SessionState } from '../core/session-machine.ts';
import { addCredit } from './credits.ts';
import { prepared } from './prepared.ts';

export interface Session {
  id: string;
  state: SessionState;
  pubkey: string | null;
  clientAddress: string | null;
  origin: 'http' | 'l402';
  createdAt: number; // unix ms
  lastUsedAt: number; // unix ms
}

export interface LedgerEntry {
  sessionId: string;
  kind: (typeof sessionLedger.$inferInsert)['kind'];
  amountMsats: number; // signed
  jobId?: string | null;
  paymentHash?: string | null;
  ref: string;
}

function toSession(r: typeof sessions.$inferSelect): Session {
  if (!isSessionState(r.state)) throw new Error(`session ${r.id} has unknown state ${r.state}`);
  return { id: r.id, state: r.state, pubkey: r.pubkey, clientAddress: r.clientAddress, origin: r.origin, createdAt: r.createdAt, lastUsedAt: r.lastUsedAt };
}

export function getSession(db: Db, id: string): Session | undefined {
  const r = db.select().from(sessions).where(eq(sessions.id, id)).get();
  return r && toSession(r);
}

export function balanceMsats(db: Db, sessionId: string): number {
  return Number(db.select({ total: sum(sessionLedger.amountMsats) }).from(sessionLedger).where(eq(sessionLedger.sessionId, sessionId)).get()?.total ?? 0);
}

/** Appends ledger entries (each `ref` once); call inside a transaction. */
export function addLedger(db: Db, entries: LedgerEntry[]): void {
  const now = Date.now();
  for (const e of entries) db.insert(sessionLedger).values({ ...e, createdAt: now }).onConflictDoNothing().run();
}

export function ledger(db: Db, sessionId: string): (typeof sessionLedger.$inferSelect)[] {
  return db.select().from(sessionLedger).where(eq(sessionLedger.sessionId, sessionId)).orderBy(asc(sessionLedger.id)).all();
}

export function createSession(db: Db, s: Omit<Session, 'createdAt' | 'lastUsedAt'>, invoice: NewBookInvoice): void {
  const now = Date.now();
  atomically(db, () => {
    db.insert(sessions).values({ ...s, createdAt: now, lastUsedAt: now, updatedAt: now }).run();
    insertInvoice(db, invoice, now);
  });
}

export interface SessionMove {
  sessionId: string;
  from: SessionState[]; // the move happens only from one of these
  to: SessionState | null; // null: state unchanged
  ledger?: LedgerEntry[];
  credits?: CreditEntry[];
  settle?: { paymentHash: string; status: 'paid' | 'expired' | 'withdrawn' };
  touch?: boolean; // counts as use (the TTL restarts)
}

/**
 * Compare-and-set on the session state with its ledger entries and credits; with `settle`, only if this call
 * marks the invoice (a settlement reported twice moves the session once). True when applied.
 */
export function moveSession(db: Db, m: SessionMove): boolean {
  const now = Date.now();
  return atomicallyIf(db, () => {
    const set: Partial<typeof sessions.$inferInsert> = { updatedAt: now };
    if (m.to) set.state = m.to;
    if (m.touch) set.lastUsedAt = now;
    const r = db.update(sessions).set(set).where(and(eq(sessions.id, m.sessionId), inArray(sessions.state, m.from))).run();
    if (r.changes !== 1) return false;
    if (m.settle && !markInvoice(db, m.settle.paymentHash, m.settle.status, now)) return false;
    addLedger(db, m.ledger ?? []);
    for (const c of m.credits ?? []) addCredit(db, c);
    return true;
  });
}

/** An unpaid session whose deposit invoice ran out: the invoice expires and the session is purged. */
export function purgeUnpaidSession(db: Db, sessionId: string, paymentHash: string): boolean {
  return atomicallyIf(db, () => {
    if (!markInvoice(db, paymentHash, 'expired', Date.now())) return false;
    return db.delete(sessions).where(and(eq(sessions.id, sessionId), eq(sessions.state, 'awaiting_deposit'))).run().changes === 1;
  });
}

/** Sessions unused since `beforeMs` in the given states. */
export function idleSessions(db: Db, states: SessionState[], beforeMs: number, limit = 500): Session[] {
  return db
    .select()
    .from(sessions)
    .where(and(inArray(sessions.state, states), lte(sessions.lastUsedAt, beforeMs)))
    .limit(limit)
    .all()
    .map(toSession);
}

/** Sessions in `states` opened from one client address, counted up to `upTo` (a bounded index range). */
export function countSessionsOf(db: Db, states: SessionState[], clientAddress: string, upTo: number): number {
  const q = prepared(db, 'countSessionsOf', () => db.$client.prepare('select count(*) n from (select 1 from sessions where client_address = ? and state = ? limit ?)'));
  let n = 0;
  for (const state of states) n += (q.get(clientAddress, state, upTo) as { n: number }).n;
  return n;
}

/** Open reservations (reserve without release), for the restart pass. */
export function openReservations(db: Db): { sessionId: string; jobId: string; amountMsats: number }[] {
  return db.$client
    .prepare(
      `select r.session_id as sessionId, r.job_id as jobId, -r.amount_msats as amountMsats
         from session_ledger r
        where r.kind = 'reserve'
          and not exists (select 1 from session_ledger x where x.kind = 'release' and x.job_id = r.job_id)`,
    )
    .all() as { sessionId: string; jobId: string; amountMsats: number }[];
}

/** What was taken from a session for one job, by kind (`reserve`: held while it runs; `debit`: charged). */
function takenFor(db: Db, jobId: string, kind: 'reserve' | 'debit'): number {
  const r = db
    .select({ total: sum(sessionLedger.amountMsats) })
    .from(sessionLedger)
    .where(and(eq(sessionLedger.jobId, jobId), eq(sessionLedger.kind, kind)))
    .get();
  return -Number(r?.total ?? 0);
}

export const reservedFor = (db: Db, jobId: string): number => takenFor(db, jobId, 'reserve');

/** What a job was debited in the end (0 when its failure left nothing to charge). */
export const debitedFor = (db: Db, jobId: string): number => takenFor(db, jobId, 'debit');
