// Queries for the stub Lightning node's own invoice book: PostgreSQL twin of ../stub-invoices.ts.
import { and, asc, eq, gt, isNull, sql } from 'drizzle-orm';
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

/** Invoices paid after `afterMs` (unix ms, exclusive), oldest payment first (ties by payment hash). */
export async function paidSince(q: PgQ, afterMs: number, limit = 500): Promise<{ paymentHash: string; paidAt: number }[]> {
  return (await q
    .select({ paymentHash: stubInvoices.paymentHash, paidAt: stubInvoices.paidAt })
    .from(stubInvoices)
    .where(gt(stubInvoices.paidAt, afterMs))
    // Byte order, as SQLite's: both engines list ties the same way whatever the database's collation.
    .orderBy(asc(stubInvoices.paidAt), sql`${stubInvoices.paymentHash} collate "C"`)
    .limit(limit)) as { paymentHash: string; paidAt: number }[];
}
