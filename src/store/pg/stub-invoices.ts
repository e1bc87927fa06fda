// Queries for the stub Lightning node's own invoice book: PostgreSQL twin of ../stub-invoices.ts.
import { and, eq, isNull } from 'drizzle-orm';
import { stubInvoices } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';

export type StubInvoiceRow = typeof stubInvoices.$inferSelect;

export async function insertStubInvoice(q: PgQ, row: Omit<typeof stubInvoices.$inferInsert, 'paidAt'>): Promise<void> {
  const { paymentHash, preimage, bolt11, amountMsats, expiresAt } = row;
  await q.insert(stubInvoices).values({ paymentHash, preimage, bolt11, amountMsats, expiresAt });
}

export async function getStubInvoice(q: PgQ, paymentHash: string): Promise<StubInvoiceRow | undefined> {
  const rows = await q.select().from(stubInvoices).where(eq(stubInvoices.paymentHash, paymentHash)).limit(1);
  return rows[0];
}

/** Marks paid once; returns true only for the call that paid it. */
export async function markStubInvoicePaid(q: PgQ, paymentHash: string, atMs: number): Promise<boolean> {
  const r = await q
    .update(stubInvoices)
    .set({ paidAt: atMs })
    .where(and(eq(stubInvoices.paymentHash, paymentHash), isNull(stubInvoices.paidAt)))
    .returning({ h: stubInvoices.paymentHash });
  return r.length === 1;
}
