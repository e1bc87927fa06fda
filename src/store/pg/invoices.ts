// The invoice book over PostgreSQL: ../invoices.ts statement for statement (meanings are there). Status moves
// are compare-and-sets (`update … where status = $from`): under READ COMMITTED a concurrent mover waits for
// the winner's commit, re-reads the row and updates nothing. Statuses only move forward (open → withdrawn →
// expired → paid), so trying the allowed `from`s in that order one by one never misses a move.
//
// Lock order (docs/scale-out.md 2.3): subject rows → invoice rows → ledger/credit inserts → counter rows
// last. The open-invoice counters are the hottest rows of the store (one per subject kind), so the composite
// ops of this folder collect their counter moves (`CounterMoves`) and apply them at the end of their
// transaction; `insertInvoice` and `markInvoice`, called on their own, move the counter at once.
import { and, asc, count, eq, lte, sql } from 'drizzle-orm';
import { counters, invoiceBook } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';
import { addCredit } from './credits.ts';
import { insertIntents } from './outbox.ts';
import type { BookInvoice, CreditEntry, InvoicePurpose, InvoiceStatus, NewBookInvoice, PublishIntent, SubjectKind } from '../../core/types.ts';

const openCounter = (kind: SubjectKind) => `open_invoices:${kind}`;
const SUBJECT_KINDS = ['job', 'session', 'bootstrap', 'zap'] as const satisfies readonly SubjectKind[];
/** Literals (not bound parameters), so the planner can use the partial indexes on open and live invoices. */
const OPEN = sql`${invoiceBook.status} = 'open'`;
const LIVE = sql`${invoiceBook.status} in ('open', 'withdrawn')`;

/** Where an invoice may move from each status, in the order statuses move (see the header). */
const MOVES_FROM: Readonly<Record<InvoiceStatus, readonly InvoiceStatus[]>> = {
  open: [],
  withdrawn: ['open'],
  paid: ['open', 'withdrawn', 'expired'],
  expired: ['open', 'withdrawn'],
};

/** Counter deltas of one transaction, by counter name, applied last by `applyCounterMoves`. */
export type CounterMoves = Map<string, number>;

function addToCounter(q: PgQ, name: string, delta: number) {
  return q
    .insert(counters)
    .values({ name, value: delta })
    .onConflictDoUpdate({ target: counters.name, set: { value: sql`${counters.value} + excluded.value` } });
}

/**
 * Applies the collected counter moves, in name order (two transactions moving the same counters lock them in
 * the same order). A net zero writes nothing: the counter reads the same (a missing row counts 0).
 */
export async function applyCounterMoves(q: PgQ, moves: CounterMoves): Promise<void> {
  for (const name of [...moves.keys()].sort()) {
    const delta = moves.get(name)!;
    if (delta !== 0) await addToCounter(q, name, delta);
  }
  moves.clear();
}

function noteMove(moves: CounterMoves, kind: SubjectKind, delta: number): void {
  const name = openCounter(kind);
  moves.set(name, (moves.get(name) ?? 0) + delta);
}

/** How many invoices of this subject kind are open: one row read, whatever the size of the book. */
export async function openInvoiceCount(q: PgQ, kind: SubjectKind): Promise<number> {
  const [r] = await q.select({ v: counters.value }).from(counters).where(eq(counters.name, openCounter(kind)));
  return r?.v ?? 0;
}

/** `insertInvoice` with its counter move collected into `moves` (applied by the caller, last). */
export async function insertInvoiceRow(q: PgQ, inv: NewBookInvoice, nowMs: number, moves: CounterMoves): Promise<void> {
  await q.insert(invoiceBook).values({
    paymentHash: inv.paymentHash, subjectKind: inv.subjectKind, subjectId: inv.subjectId, purpose: inv.purpose, account: inv.account,
    amountMsats: inv.amountMsats, bolt11: inv.bolt11, status: 'open', expiresAt: inv.expiresAt, createdAt: nowMs,
  });
  noteMove(moves, inv.subjectKind, 1);
}

/** Records an issued invoice as open. Call inside the transaction that records its subject. */
export async function insertInvoice(q: PgQ, inv: NewBookInvoice, nowMs: number): Promise<void> {
  const moves: CounterMoves = new Map();
  await insertInvoiceRow(q, inv, nowMs, moves);
  await applyCounterMoves(q, moves);
}

/** Records an invoice on its own (its subject exists already, e.g. a session top-up). */
export async function recordInvoice(q: PgQ, inv: NewBookInvoice, nowMs: number): Promise<void> {
  await q.transaction((tx) => insertInvoice(tx, inv, nowMs));
}

export async function getInvoice(q: PgQ, paymentHash: string): Promise<BookInvoice | undefined> {
  const [r] = await q.select().from(invoiceBook).where(eq(invoiceBook.paymentHash, paymentHash));
  return r as BookInvoice | undefined;
}

/** `markInvoice` with its counter move collected into `moves` (applied by the caller, last). */
export async function markInvoiceRow(q: PgQ, paymentHash: string, status: Exclude<InvoiceStatus, 'open'>, nowMs: number, moves: CounterMoves): Promise<boolean> {
  const paidAt = status === 'paid' ? nowMs : null;
  for (const from of MOVES_FROM[status]) {
    const [moved] = await q
      .update(invoiceBook)
      .set({ status, paidAt })
      .where(and(eq(invoiceBook.paymentHash, paymentHash), eq(invoiceBook.status, from)))
      .returning({ kind: invoiceBook.subjectKind });
    if (!moved) continue;
    if (from === 'open') noteMove(moves, moved.kind, -1);
    return true;
  }
  return false;
}

/**
 * Moves an invoice to `status` from any status allowed to lead there (MOVES_FROM). Returns whether this
 * call moved it, so a settlement reported twice moves its subject once. Call inside a transaction.
 */
export async function markInvoice(q: PgQ, paymentHash: string, status: Exclude<InvoiceStatus, 'open'>, nowMs: number): Promise<boolean> {
  const moves: CounterMoves = new Map();
  const moved = await markInvoiceRow(q, paymentHash, status, nowMs, moves);
  await applyCounterMoves(q, moves);
  return moved;
}

/** Expires a live invoice on its own (its subject no longer waits on it); the counter moves with it. */
export async function expireInvoice(q: PgQ, paymentHash: string, nowMs: number): Promise<boolean> {
  return q.transaction((tx) => markInvoice(tx, paymentHash, 'expired', nowMs));
}

/**
 * Counts the open invoices again from the rows (at start). The counter rows are made to exist and locked
 * first: a concurrent invoice insert or move then either committed before the count (and is in it) or
 * moves its counter after this commits (and adds to the recounted value).
 */
export async function recountOpenInvoices(q: PgQ): Promise<void> {
  await q.transaction(async (tx) => {
    const names = SUBJECT_KINDS.map(openCounter).sort();
    await tx.insert(counters).values(names.map((name) => ({ name, value: 0 }))).onConflictDoNothing();
    await tx.execute(sql`select name from ${counters} where name = any(${sql.param(names)}::text[]) order by name collate "C" for update`);
    const rows = await tx
      .select({ kind: invoiceBook.subjectKind, n: count() })
      .from(invoiceBook)
      .where(OPEN)
      .groupBy(invoiceBook.subjectKind);
    const open = new Map(rows.map((r) => [r.kind, r.n]));
    for (const kind of SUBJECT_KINDS) {
      await tx.update(counters).set({ value: open.get(kind) ?? 0 }).where(eq(counters.name, openCounter(kind)));
    }
  });
}

/** Live invoices (open or withdrawn) whose expiry has passed, oldest first. */
export async function dueInvoices(q: PgQ, nowS: number, limit = 500): Promise<BookInvoice[]> {
  return (await q
    .select()
    .from(invoiceBook)
    .where(and(LIVE, lte(invoiceBook.expiresAt, nowS)))
    .orderBy(asc(invoiceBook.expiresAt))
    .limit(limit)) as BookInvoice[];
}

/** Live invoices after `afterHash` in hash order (byte order, as SQLite compares): the resume pass pages through them. */
export async function liveInvoices(q: PgQ, afterHash = '', limit = 500): Promise<BookInvoice[]> {
  return (await q
    .select()
    .from(invoiceBook)
    // The database's collation, not "C": the partial index is built in it, and the comparison and the order
    // agree whatever it is (payment hashes are lowercase hex), so the pages cover every row once.
    .where(and(LIVE, sql`${invoiceBook.paymentHash} > ${afterHash}`))
    .orderBy(invoiceBook.paymentHash)
    .limit(limit)) as BookInvoice[];
}

/** The oldest open invoices of a subject kind and purpose (e.g. the unpaid evaluation fees that waited longest). */
export async function oldestOpen(q: PgQ, kind: SubjectKind, purpose: InvoicePurpose, limit: number): Promise<BookInvoice[]> {
  return (await q
    .select()
    .from(invoiceBook)
    .where(and(OPEN, eq(invoiceBook.subjectKind, kind), eq(invoiceBook.purpose, purpose)))
    .orderBy(asc(invoiceBook.createdAt))
    .limit(limit)) as BookInvoice[];
}

/** Every invoice of one subject, oldest first. */
export async function invoicesOf(q: PgQ, kind: SubjectKind, subjectId: string): Promise<BookInvoice[]> {
  return (await q
    .select()
    .from(invoiceBook)
    .where(and(eq(invoiceBook.subjectKind, kind), eq(invoiceBook.subjectId, subjectId)))
    .orderBy(asc(invoiceBook.createdAt))) as BookInvoice[];
}

/** Invoice counts by subject kind, purpose and status (for /metrics). */
export async function countInvoices(q: PgQ): Promise<{ subjectKind: string; purpose: string; status: string; n: number }[]> {
  return q
    .select({ subjectKind: invoiceBook.subjectKind, purpose: invoiceBook.purpose, status: invoiceBook.status, n: count() })
    .from(invoiceBook)
    .groupBy(invoiceBook.subjectKind, invoiceBook.purpose, invoiceBook.status);
}

/** Rolls back a transaction whose compare-and-set failed (atomicallyIf); never leaves this folder's functions. */
export class NotMoved extends Error {}

/** `atomicallyIf`: runs `fn` in a transaction (a savepoint when nested) that commits only when it resolves true. */
export async function transactionIf(q: PgQ, fn: (tx: PgQ) => Promise<boolean>): Promise<boolean> {
  try {
    return await q.transaction(async (tx) => {
      if (!(await fn(tx))) throw new NotMoved();
      return true;
    });
  } catch (err) {
    if (err instanceof NotMoved) return false;
    throw err;
  }
}

/**
 * Money for a subject that no longer waits for it: marks the invoice paid and credits the payer, with the
 * events that tell them, in one transaction. False when the invoice was already settled (reported twice).
 */
export async function settleLate(
  q: PgQ,
  a: { paymentHash: string; credit: CreditEntry; subjectId: string; intents: PublishIntent[] },
  nowMs: number,
): Promise<boolean> {
  return transactionIf(q, async (tx) => {
    const moves: CounterMoves = new Map();
    if (!(await markInvoiceRow(tx, a.paymentHash, 'paid', nowMs, moves))) return false;
    await addCredit(tx, a.credit);
    await insertIntents(tx, a.subjectId, a.intents, nowMs);
    await applyCounterMoves(tx, moves);
    return true;
  });
}

