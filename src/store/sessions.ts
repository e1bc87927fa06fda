// Session queries. The balance is the ledger sum, and every check-then-write on it runs in one
// SQLite transaction, so concurrent requests can never take it below zero.
import { and, asc, count, eq, inArray, lte, sql, sum } from 'drizzle-orm';
import { sessionInvoices, sessionLedger, sessions } from '../../schema/tables.ts';
import { atomically, type Db } from './db.ts';
import { isSessionState, type SessionState } from '../core/session-machine.ts';
import { addCredit, type CreditEntry } from './credits.ts';

export interface Session {
  id: string;
  state: SessionState;
  pubkey: string | null;
  clientAddress: string | null;
  origin: 'http' | 'l402';
  createdAt: number; // unix ms
  lastUsedAt: number; // unix ms
}

export type SessionInvoice = typeof sessionInvoices.$inferSelect;

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

type InvoiceRow = Omit<SessionInvoice, 'status' | 'paidAt' | 'createdAt'>;

export function createSession(db: Db, s: Omit<Session, 'createdAt' | 'lastUsedAt'>, invoice: InvoiceRow): void {
  const now = Date.now();
  atomically(db, () => {
    db.insert(sessions).values({ ...s, createdAt: now, lastUsedAt: now, updatedAt: now }).run();
    db.insert(sessionInvoices).values({ ...invoice, status: 'open', createdAt: now }).run();
  });
}

export function addSessionInvoice(db: Db, invoice: InvoiceRow): void {
  db.insert(sessionInvoices).values({ ...invoice, status: 'open', createdAt: Date.now() }).run();
}

export function getSessionInvoice(db: Db, paymentHash: string): SessionInvoice | undefined {
  return db.select().from(sessionInvoices).where(eq(sessionInvoices.paymentHash, paymentHash)).get();
}

export function sessionInvoicesOf(db: Db, sessionId: string): SessionInvoice[] {
  return db.select().from(sessionInvoices).where(eq(sessionInvoices.sessionId, sessionId)).orderBy(asc(sessionInvoices.createdAt)).all();
}

export interface SessionMove {
  sessionId: string;
  from: SessionState[]; // the move happens only from one of these
  to: SessionState | null; // null: state unchanged
  ledger?: LedgerEntry[];
  credits?: CreditEntry[];
  settle?: { paymentHash: string; status: 'paid' | 'expired' };
  touch?: boolean; // counts as use (the TTL restarts)
}

/** Compare-and-set on the session state with its ledger entries and invoice settlement; true when applied. */
export function moveSession(db: Db, m: SessionMove): boolean {
  const now = Date.now();
  return atomically(db, () => {
    const set: Partial<typeof sessions.$inferInsert> = { updatedAt: now };
    if (m.to) set.state = m.to;
    if (m.touch) set.lastUsedAt = now;
    const r = db.update(sessions).set(set).where(and(eq(sessions.id, m.sessionId), inArray(sessions.state, m.from))).run();
    if (r.changes !== 1) return false;
    if (m.settle) {
      db.update(sessionInvoices)
        .set(m.settle.status === 'paid' ? { status: 'paid', paidAt: now } : { status: 'expired' })
        .where(and(eq(sessionInvoices.paymentHash, m.settle.paymentHash), inArray(sessionInvoices.status, m.settle.status === 'paid' ? ['open', 'expired'] : ['open'])))
        .run();
    }
    addLedger(db, m.ledger ?? []);
    for (const c of m.credits ?? []) addCredit(db, c);
    return true;
  });
}

/** Marks a session invoice paid/expired on its own (the session no longer takes it). */
export function setSessionInvoiceStatus(db: Db, paymentHash: string, status: 'paid' | 'expired'): boolean {
  const r = db
    .update(sessionInvoices)
    .set(status === 'paid' ? { status, paidAt: Date.now() } : { status })
    .where(and(eq(sessionInvoices.paymentHash, paymentHash), inArray(sessionInvoices.status, status === 'paid' ? ['open', 'expired'] : ['open'])))
    .run();
  return r.changes === 1;
}

export function dueSessionInvoices(db: Db, nowS: number, limit = 500): SessionInvoice[] {
  return db
    .select()
    .from(sessionInvoices)
    .where(and(eq(sessionInvoices.status, 'open'), lte(sessionInvoices.expiresAt, nowS)))
    .limit(limit)
    .all();
}

export function openSessionInvoices(db: Db, afterHash = '', limit = 500): SessionInvoice[] {
  return db
    .select()
    .from(sessionInvoices)
    .where(and(eq(sessionInvoices.status, 'open'), sql`${sessionInvoices.paymentHash} > ${afterHash}`))
    .orderBy(sessionInvoices.paymentHash)
    .limit(limit)
    .all();
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

export function deleteSession(db: Db, id: string): void {
  db.delete(sessions).where(eq(sessions.id, id)).run();
}

export function countSessions(db: Db, states: SessionState[], clientAddress?: string): number {
  const conds = [inArray(sessions.state, states)];
  if (clientAddress) conds.push(eq(sessions.clientAddress, clientAddress));
  return db.select({ n: count() }).from(sessions).where(and(...conds)).get()?.n ?? 0;
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

export function reservedFor(db: Db, jobId: string): number {
  const r = db
    .select({ total: sum(sessionLedger.amountMsats) })
    .from(sessionLedger)
    .where(and(eq(sessionLedger.jobId, jobId), eq(sessionLedger.kind, 'reserve')))
    .get();
  return -Number(r?.total ?? 0);
}
