// The invoice book's queries: one table for every invoice, whatever it pays for. Status moves are
// compare-and-sets (open -> withdrawn|paid|expired, withdrawn -> paid|expired, expired -> paid) that keep
// the open-invoice counters in step, inside the caller's transaction.
import { and, asc, count, eq, lte, sql } from 'drizzle-orm';
import { counters, invoiceBook } from '../../schema/tables.ts';
import { atomically, atomicallyIf, type Db } from './db.ts';
import { addCredit } from './credits.ts';
import { insertIntents } from './outbox.ts';
import { prepared } from './prepared.ts';
import type { BookInvoice, CreditEntry, InvoicePurpose, InvoiceStatus, NewBookInvoice, PublishIntent, SubjectKind } from '../core/types.ts';

const openCounter = (kind: SubjectKind) => `open_invoices:${kind}`;
/** Literals (not bound parameters), so SQLite can use the partial indexes on open and live invoices. */
const OPEN = sql`${invoiceBook.status} = 'open'`;
const LIVE = sql`${invoiceBook.status} in ('open', 'withdrawn')`;

/** Where an invoice may move from each status. Open ones are counted; the counter moves when they leave. */
const MOVES_FROM: Readonly<Record<InvoiceStatus, readonly InvoiceStatus[]>> = {
  open: [],
  withdrawn: ['open'], // its subject gave up on it (cancelled, evicted); still payable until it runs out
  paid: ['open', 'withdrawn', 'expired'], // money that arrives late is still money
  expired: ['open', 'withdrawn'],
};

function addToCounter(db: Db, name: string, delta: number): void {
  const q = prepared(db, 'addToCounter', () =>
    db
      .insert(counters)
      .values({ name: sql.placeholder('name'), value: sql.placeholder('delta') })
      .onConflictDoUpdate({ target: counters.name, set: { value: sql`${counters.value} + excluded.value` } })
      .prepare(),
  );
  q.run({ name, delta });
}

/** How many invoices of this subject kind are open: one row read, whatever the size of the book. */
export function openInvoiceCount(db: Db, kind: SubjectKind): number {
  const q = prepared(db, 'openInvoiceCount', () => db.select({ v: counters.value }).from(counters).where(eq(counters.name, sql.placeholder('name'))).prepare());
  return q.get({ name: openCounter(kind) })?.v ?? 0;
}

/** Records an issued invoice as open. Call inside the transaction that records its subject. */
export function insertInvoice(db: Db, inv: NewBookInvoice, nowMs: number): void {
  const ph = (name: string) => sql.placeholder(name);
  const q = prepared(db, 'insertInvoice', () =>
    db
      .insert(invoiceBook)
      .values({
        paymentHash: ph('paymentHash'), subjectKind: ph('subjectKind'), subjectId: ph('subjectId'), purpose: ph('purpose'),
        account: ph('account'), amountMsats: ph('amountMsats'), bolt11: ph('bolt11'), status: 'open', expiresAt: ph('expiresAt'),
        createdAt: ph('createdAt'),
      })
      .prepare(),
  );
  q.run({ ...inv, createdAt: nowMs });
  addToCounter(db, openCounter(inv.subjectKind), 1);
}

/** Records an invoice on its own (its subject exists already, e.g. a session top-up). */
export function recordInvoice(db: Db, inv: NewBookInvoice, nowMs: number): void {
  atomically(db, () => insertInvoice(db, inv, nowMs));
}

export function getInvoice(db: Db, paymentHash: string): BookInvoice | undefined {
  const q = prepared(db, 'getInvoice', () => db.select().from(invoiceBook).where(eq(invoiceBook.paymentHash, sql.placeholder('h'))).prepare());
  return q.get({ h: paymentHash }) as BookInvoice | undefined;
}

/**
 * Moves an invoice to `status` from any status allowed to lead there (MOVES_FROM). Returns whether this
 * call moved it, so a settlement reported twice moves its subject once. Call inside a transaction.
 */
export function markInvoice(db: Db, paymentHash: string, status: Exclude<InvoiceStatus, 'open'>, nowMs: number): boolean {
  const q = prepared(db, 'markInvoice', () =>
    db
      .update(invoiceBook)
      .set({ status: sql`${sql.placeholder('to')}`, paidAt: sql`${sql.placeholder('paidAt')}` })
      .where(and(eq(invoiceBook.paymentHash, sql.placeholder('h')), eq(invoiceBook.status, sql.placeholder('from'))))
      .returning({ kind: invoiceBook.subjectKind })
      .prepare(),
  );
  const paidAt = status === 'paid' ? nowMs : null;
  for (const from of MOVES_FROM[status]) {
    const moved = q.get({ h: paymentHash, to: status, from, paidAt });
    if (!moved) continue;
    if (from === 'open') addToCounter(db, openCounter(moved.kind), -1);
    return true;
  }
  return false;
}

/** Expires a live invoice on its own (its subject no longer waits on it); the counter moves with it. */
export function expireInvoice(db: Db, paymentHash: string, nowMs: number): boolean {
  return atomically(db, () => markInvoice(db, paymentHash, 'expired', nowMs));
}

/**
 * Counts the open invoices again from the rows (at start): the counters are kept in step transaction by
 * transaction, and this makes sure no earlier version or crash left them off.
 */
export function recountOpenInvoices(db: Db): void {
  atomically(db, () => {
    for (const kind of ['job', 'session', 'bootstrap', 'zap'] as const) {
      const n = db.$client.prepare(`select count(*) n from invoice_book where status = 'open' and subject_kind = ?`).get(kind) as { n: number };
      db.$client.prepare('insert into counters (name, value) values (?, ?) on conflict(name) do update set value = excluded.value').run(openCounter(kind), n.n);
    }
  });
}

/** Live invoices (open or withdrawn) whose expiry has passed, oldest first. */
export function dueInvoices(db: Db, nowS: number, limit = 500): BookInvoice[] {
  return db
    .select()
    .from(invoiceBook)
    .where(and(LIVE, lte(invoiceBook.expiresAt, nowS)))
    .orderBy(asc(invoiceBook.expiresAt))
    .limit(limit)
    .all() as BookInvoice[];
}

/** Live invoices (open or withdrawn: payable) after `afterHash` in hash order: the resume pass pages through them. */
export function liveInvoices(db: Db, afterHash = '', limit = 500): BookInvoice[] {
  return db
    .select()
    .from(invoiceBook)
    .where(and(LIVE, sql`${invoiceBook.paymentHash} > ${afterHash}`))
    .orderBy(asc(invoiceBook.paymentHash))
    .limit(limit)
    .all() as BookInvoice[];
}

/** The oldest open invoices of a subject kind and purpose (e.g. the unpaid evaluation fees that waited longest). */
export function oldestOpen(db: Db, kind: SubjectKind, purpose: InvoicePurpose, limit: number): BookInvoice[] {
  const q = prepared(db, 'oldestOpen', () =>
    db
      .select()
      .from(invoiceBook)
      .where(and(OPEN, eq(invoiceBook.subjectKind, sql.placeholder('kind')), eq(invoiceBook.purpose, sql.placeholder('purpose'))))
      .orderBy(asc(invoiceBook.createdAt))
      .limit(sql.placeholder('limit'))
      .prepare(),
  );
  return q.all({ kind, purpose, limit }) as BookInvoice[];
}

/** Every invoice of one subject, oldest first. */
export function invoicesOf(db: Db, kind: SubjectKind, subjectId: string): BookInvoice[] {
  return db
    .select()
    .from(invoiceBook)
    .where(and(eq(invoiceBook.subjectKind, kind), eq(invoiceBook.subjectId, subjectId)))
    .orderBy(asc(invoiceBook.createdAt))
    .all() as BookInvoice[];
}

/** Invoice counts by subject kind, purpose and status (for /metrics). */
export function countInvoices(db: Db): { subjectKind: string; purpose: string; status: string; n: number }[] {
  return db
    .select({ subjectKind: invoiceBook.subjectKind, purpose: invoiceBook.purpose, status: invoiceBook.status, n: count() })
    .from(invoiceBook)
    .groupBy(invoiceBook.subjectKind, invoiceBook.purpose, invoiceBook.status)
    .all();
}

/**
 * Money for a subject that no longer waits for it: marks the invoice paid and credits the payer, with the
 * events that tell them, in one transaction. False when the invoice was already settled (reported twice).
 */
export function settleLate(db: Db, a: { paymentHash: string; credit: CreditEntry; subjectId: string; intents: PublishIntent[] }, nowMs: number): boolean {
  return atomicallyIf(db, () => {
    if (!markInvoice(db, a.paymentHash, 'paid', nowMs)) return false;
    addCredit(db, a.credit);
    insertIntents(db, a.subjectId, a.intents, nowMs);
    return true;
  });
}
