// Queries for the stub Lightning node's own invoice book.
import { eq, and, isNull } from 'drizzle-orm';
import { stubInvoices } from '../../schema/tables.ts';
import type { Db } from './db.ts';

export type StubInvoiceRow = typeof stubInvoices.$inferSelect;

export function insertStubInvoice(db: Db, row: typeof stubInvoices.$inferInsert): void {
  db.insert(stubInvoices).values(row).run();
}

export function getStubInvoice(db: Db, paymentHash: string): StubInvoiceRow | undefined {
  return db.select().from(stubInvoices).where(eq(stubInvoices.paymentHash, paymentHash)).get();
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
