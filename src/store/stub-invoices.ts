// Queries for the stub Lightning node's own invoice book.
import { eq, and, isNull, sql } from 'drizzle-orm';
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
