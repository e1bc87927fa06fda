// NIP-57 zaps: PostgreSQL twin of ../zaps.ts (the zap request behind each zap invoice, its target, its outcome).
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { jobs, outbox, zaps } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';
import type { NewZap, ZapOutcome, ZapRow } from '../zaps.ts';

export type { NewZap, ZapOutcome, ZapRow };

/** Records a zap request with its invoice's hash. Call in the transaction that records the invoice. */
export async function insertZap(q: PgQ, z: NewZap): Promise<void> {
  await q.insert(zaps).values({
    id: z.id,
    paymentHash: z.paymentHash,
    senderPubkey: z.senderPubkey,
    targetEventId: z.targetEventId,
    targetJobId: z.targetJobId,
    targetSessionId: z.targetSessionId,
    targetPaymentHash: z.targetPaymentHash,
    amountMsats: z.amountMsats,
    requestJson: z.requestJson,
    relaysJson: JSON.stringify(z.relays),
    createdAt: z.createdAt,
  });
}

function rowOf(r: typeof zaps.$inferSelect | undefined): ZapRow | undefined {
  if (!r) return undefined;
  const { relaysJson, ...rest } = r;
  return { ...rest, relays: JSON.parse(relaysJson) as string[] };
}

export async function getZap(q: PgQ, id: string): Promise<ZapRow | undefined> {
  const rows = await q.select().from(zaps).where(eq(zaps.id, id)).limit(1);
  return rowOf(rows[0]);
}

/** Sets what a zap's payment did, once; false when it was set already. */
export async function settleZap(q: PgQ, id: string, outcome: ZapOutcome, paidAtMs: number): Promise<boolean> {
  const r = await q
    .update(zaps)
    .set({ outcome, paidAt: paidAtMs })
    .where(and(eq(zaps.id, id), isNull(zaps.outcome)))
    .returning({ id: zaps.id });
  return r.length === 1;
}

/** The job an event id stands for: the job request itself, or one of the events Timmy published about it. */
export async function jobOfEvent(q: PgQ, eventId: string): Promise<string | null> {
  const job = await q.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, eventId)).limit(1);
  if (job.length > 0) return eventId;
  const ev = await q.select({ jobId: outbox.jobId }).from(outbox).where(eq(outbox.eventId, eventId)).orderBy(asc(outbox.id)).limit(1); // SQLite: the first in its event-id index
  return ev[0]?.jobId ?? null;
}

/**
 * The open deposit or top-up invoice of a session bound to `pubkey` (deposits first, then the oldest): what
 * a profile zap from that pubkey pays. Null when there is none.
 */
export async function openSessionInvoiceOf(q: PgQ, pubkey: string): Promise<{ sessionId: string; paymentHash: string } | null> {
  const r = await q.execute<{ session_id: string; payment_hash: string }>(
    sql`select s.id session_id, i.payment_hash from sessions s join invoice_book i on i.subject_kind = 'session' and i.subject_id = s.id
        where s.pubkey = ${pubkey} and s.state in ('awaiting_deposit', 'active', 'depleted') and i.status = 'open' and i.purpose in ('deposit', 'topup')
        order by i.purpose = 'deposit' desc, i.created_at asc limit 1`,
  );
  const row = r.rows[0];
  return row ? { sessionId: row.session_id, paymentHash: row.payment_hash } : null;
}
