// NIP-57 zaps: the zap request behind each zap invoice, what it targets, and what its payment did.
import { eq } from 'drizzle-orm';
import { jobs, outbox, zaps } from '../../schema/tables.ts';
import type { Db } from './db.ts';

export type ZapOutcome = 'paid_eval' | 'paid_work' | 'paid_deposit' | 'paid_topup' | 'credited' | 'tip';

export interface ZapRow {
  id: string;
  paymentHash: string;
  senderPubkey: string;
  targetEventId: string | null;
  targetJobId: string | null;
  targetSessionId: string | null;
  targetPaymentHash: string | null;
  amountMsats: number;
  requestJson: string;
  relays: string[];
  outcome: ZapOutcome | null;
  createdAt: number;
  paidAt: number | null;
}

export type NewZap = Omit<ZapRow, 'outcome' | 'paidAt'>;

/** Records a zap request with its invoice's hash. Call in the transaction that records the invoice. */
export function insertZap(db: Db, z: NewZap): void {
  db.insert(zaps)
    .values({ ...z, relaysJson: JSON.stringify(z.relays) })
    .run();
}

function rowOf(r: typeof zaps.$inferSelect | undefined): ZapRow | undefined {
  if (!r) return undefined;
  const { relaysJson, ...rest } = r;
  return { ...rest, relays: JSON.parse(relaysJson) as string[] };
}

export function getZap(db: Db, id: string): ZapRow | undefined {
  return rowOf(db.select().from(zaps).where(eq(zaps.id, id)).get());
}

/** Sets what a zap's payment did, once; false when it was set already. */
export function settleZap(db: Db, id: string, outcome: ZapOutcome, paidAtMs: number): boolean {
  const r = db.$client.prepare('update zaps set outcome = ?, paid_at = ? where id = ? and outcome is null').run(outcome, paidAtMs, id);
  return r.changes === 1;
}

/** The job an event id stands for: the job request itself, or one of the events Timmy published about it. */
export function jobOfEvent(db: Db, eventId: string): string | null {
  if (db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, eventId)).get()) return eventId;
  return db.select({ jobId: outbox.jobId }).from(outbox).where(eq(outbox.eventId, eventId)).get()?.jobId ?? null;
}

/**
 * The open deposit or top-up invoice of a session bound to `pubkey` (deposits first, then the oldest): what
 * a profile zap from that pubkey pays. Null when there is none.
 */
export function openSessionInvoiceOf(db: Db, pubkey: string): { sessionId: string; paymentHash: string } | null {
  const row = db.$client
    .prepare(
      `select s.id session_id, i.payment_hash from sessions s join invoice_book i on i.subject_kind = 'session' and i.subject_id = s.id
       where s.pubkey = ? and s.state in ('awaiting_deposit', 'active', 'depleted') and i.status = 'open' and i.purpose in ('deposit', 'topup')
       order by i.purpose = 'deposit' desc, i.created_at asc limit 1`,
    )
    .get(pubkey) as { session_id: string; payment_hash: string } | undefined;
  return row ? { sessionId: row.session_id, paymentHash: row.payment_hash } : null;
}
