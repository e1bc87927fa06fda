// Queries for the stub Lightning node's own invoice book.
import { eq, and, asc, gt, isNull, sql } from 'drizzle-orm';
import { stubInvoices } from '../../schema/tables.ts';
import type { Db } from './db.ts';
import { prepared } from './prepared.ts';

export type StubInvoiceRow = typeof stubInvoices.$inferSelect;

export function insertStubInvoice(db: Db, row: Omit<typeof stubInvoices.$inferInsert, 'paidAt'>): void {
  const ph = (name: string) => sql.placeholder(name);
  const q = prepared(db, 'insertStubInvoice', () =>
    db
      .insert(stubInvoices)
      .values({ paymentHash: ph('paymentHash'), preimage: ph('preimage'), bolt11: ph('bolt11'), amountMsats: ph('amountMsats'), expiresAt: ph('expiresAt') })
      .prepare(),
  );
  q.run(row);
}

export function getStubInvoice(db: Db, paymentHash: string): StubInvoiceRow | undefined {
  const q = prepared(db, 'getStubInvoice', () => db.select().from(stubInvoices).where(eq(stubInvoices.paymentHash, sql.placeholder('h'))).prepare());
  return q.get({ h: paymentHash });
}

/** Marks paid once; returns true only for the call that paid it. */
export function markStubInvoicePaid(db: Db, paymentHash: string, atMs: number): boolean {
  const r = db
    .update(stubInvoices)
    .set({ paidAt: atMs })
    .where(and(eq(stubInvoices.paymentHash, paymentHash), isNull(stubInvoices.paidAt)))
    .run();
  return r.changes === 1;
}

/**
 * Invoices paid after `afterMs` (unix ms, exclusive), oldest payment first (ties by payment hash): what a
 * worker that did not serve the dev route polls to hear of settlements.
 */
export function paidSince(db: Db, afterMs: number, limit = 500): { paymentHash: string; paidAt: number }[] {
  return db
    .select({ paymentHash: stubInvoices.paymentHash, paidAt: stubInvoices.paidAt })
    .from(stubInvoices)
    .where(gt(stubInvoices.paidAt, afterMs))
    .orderBy(asc(stubInvoices.paidAt), asc(stubInvoices.paymentHash))
    .limit(limit)
    .all() as { paymentHash: string; paidAt: number }[];
}
