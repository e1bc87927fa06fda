// The operator's view of the store: money received and owed, model usage, work by state and over time, and
// each subject's timeline. Read-only queries (the daemon's console and `timmy status` on a read-only store).
import type { Db } from './db.ts';
import type { InvoicePurpose } from '../core/types.ts';

export const PURPOSES: readonly InvoicePurpose[] = ['eval', 'work', 'deposit', 'topup', 'order'];

/** Money received (paid invoices, msats) by purpose, paid at or after `sinceMs` (null: all time). */
export function receivedMsats(db: Db, sinceMs: number | null = null): Record<InvoicePurpose, number> {
  const rows = db.$client
    .prepare(`select purpose, sum(amount_msats) msats from invoice_book where status = 'paid' and paid_at >= ? group by purpose`)
    .all(sinceMs ?? 0) as { purpose: InvoicePurpose; msats: number }[];
  const out = Object.fromEntries(PURPOSES.map((p) => [p, 0])) as Record<InvoicePurpose, number>;
  for (const r of rows) out[r.purpose] = r.msats;
  return out;
}

/** What sessions were charged for work (their `debit` entries, msats) at or after `sinceMs`. */
export function sessionDebitsMsats(db: Db, sinceMs: number | null = null): number {
  const r = db.$client.prepare(`select coalesce(-sum(amount_msats), 0) msats from session_ledger where kind = 'debit' and created_at >= ?`).get(sinceMs ?? 0) as { msats: number };
  return r.msats;
}

/** Tokens the work model used (from the jobs' cost ledgers), for jobs finished at or after `sinceMs`. */
export function modelUsage(db: Db, sinceMs: number | null = null): { jobs: number; inputTokens: number; outputTokens: number } {
  const r = db.$client
    .prepare(
      `select count(*) jobs,
              coalesce(sum(json_extract(cost_ledger_json, '$.actualInputTokens')), 0) inputTokens,
              coalesce(sum(json_extract(cost_ledger_json, '$.actualOutputTokens')), 0) outputTokens
         from jobs where cost_ledger_json is not null and updated_at >= ?`,
    )
    .get(sinceMs ?? 0) as { jobs: number; inputTokens: number; outputTokens: number };
  return r;
}

/** Money held in sessions (the sum of every session ledger with something left): owed as service. */
export function sessionsHeldMsats(db: Db): { sessions: number; msats: number } {
  return db.$client
    .prepare(`select count(*) sessions, coalesce(sum(b), 0) msats from (select sum(amount_msats) b from session_ledger group by session_id having b > 0)`)
    .get() as { sessions: number; msats: number };
}

/** Credit owed: the sum of every positive credits balance, and how many accounts hold one. */
export function creditsOwedMsats(db: Db): { accounts: number; msats: number } {
  return db.$client
    .prepare(`select count(*) accounts, coalesce(sum(b), 0) msats from (select sum(delta_msats) b from credits group by account having b > 0)`)
    .get() as { accounts: number; msats: number };
}

export function countNodeOrdersByState(db: Db): Record<string, number> {
  const rows = db.$client.prepare('select state, count(*) n from bootstrap_jobs group by state').all() as { state: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

export interface RecentError {
  at: number; // unix ms
  subject: 'job' | 'node';
  id: string;
  state: string;
  message: string;
  encrypted: boolean; // a private job: only the message's prefix may be shown
}

/** The newest failures of text jobs and node orders (those with an error message), newest first. */
export function recentErrors(db: Db, limit = 5): RecentError[] {
  const rows = db.$client
    .prepare(
      `select * from (
         select updated_at at, 'job' subject, id, state, error_message message, encryption != 'none' encrypted
           from jobs where error_message is not null order by updated_at desc limit ?)
       union all
       select * from (
         select updated_at at, 'node' subject, id, state, error_message message, 0 encrypted
           from bootstrap_jobs where error_message is not null order by updated_at desc limit ?)
       order by at desc limit ?`,
    )
    .all(limit, limit, limit) as (Omit<RecentError, 'encrypted'> & { encrypted: number })[];
  return rows.map((r) => ({ ...r, encrypted: r.encrypted === 1 }));
}

export interface SeriesBucket {
  t: number; // unix ms, start of the bucket
  receivedMsats: number;
  inputTokens: number;
  outputTokens: number;
  outcomes: Record<string, number>; // finished jobs by final state
}

const FINAL_STATES = ['complete', 'failed', 'rejected', 'expired', 'cancelled'];

/** Money received, model usage and finished jobs per `bucketMs`, from `sinceMs` to now (every bucket present). */
export function moneySeries(db: Db, sinceMs: number, bucketMs: number, nowMs: number): SeriesBucket[] {
  const start = Math.floor(sinceMs / bucketMs) * bucketMs;
  const buckets: SeriesBucket[] = [];
  for (let t = start; t <= nowMs; t += bucketMs) buckets.push({ t, receivedMsats: 0, inputTokens: 0, outputTokens: 0, outcomes: {} });
  const at = (ms: number) => buckets[Math.floor((ms - start) / bucketMs)];
  const paid = db.$client
    .prepare(`select (paid_at / ?) * ? t, sum(amount_msats) msats from invoice_book where status = 'paid' and paid_at >= ? group by 1`)
    .all(bucketMs, bucketMs, start) as { t: number; msats: number }[];
  for (const r of paid) {
    const b = at(r.t);
    if (b) b.receivedMsats += r.msats;
  }
  const jobs = db.$client
    .prepare(
      `select (updated_at / ?) * ? t, state,
              count(*) n,
              coalesce(sum(json_extract(cost_ledger_json, '$.actualInputTokens')), 0) inputTokens,
              coalesce(sum(json_extract(cost_ledger_json, '$.actualOutputTokens')), 0) outputTokens
         from jobs where updated_at >= ? and state in (${FINAL_STATES.map(() => '?').join(',')}) group by 1, 2`,
    )
    .all(bucketMs, bucketMs, start, ...FINAL_STATES) as { t: number; state: string; n: number; inputTokens: number; outputTokens: number }[];
  for (const r of jobs) {
    const b = at(r.t);
    if (!b) continue;
    b.outcomes[r.state] = (b.outcomes[r.state] ?? 0) + r.n;
    b.inputTokens += r.inputTokens;
    b.outputTokens += r.outputTokens;
  }
  return buckets;
}

/**
 * How long the `processing` feedback took to reach a relay after the payment was committed (ms): the
 * feedback is written in the payment's own transaction, so it is its ack time minus its creation. `ids`:
 * only these outbox rows (just acked; `ackedSince`: first acked then, not by an earlier relay); otherwise the
 * newest `limit`.
 */
export function processingLatencies(db: Db, opts: { ids?: number[]; ackedSince?: number; limit?: number }): number[] {
  const processing = `acked_at is not null and json_extract(intent_json, '$.type') = 'feedback' and json_extract(intent_json, '$.status') = 'processing'`;
  if (opts.ids) {
    if (opts.ids.length === 0) return [];
    const rows = db.$client
      .prepare(`select acked_at - created_at ms from outbox where id in (select value from json_each(?)) and acked_at >= ? and ${processing}`)
      .all(JSON.stringify(opts.ids), opts.ackedSince ?? 0) as { ms: number }[];
    return rows.map((r) => r.ms);
  }
  const rows = db.$client.prepare(`select acked_at - created_at ms from outbox where ${processing} order by id desc limit ?`).all(opts.limit ?? 200) as { ms: number }[];
  return rows.map((r) => r.ms);
}

/** Per relay: events it accepted and refused, and its last refusal. */
export function relayAcks(db: Db): { relay: string; accepted: number; refused: number; lastRefusal: string | null; lastAt: number }[] {
  return db.$client
    .prepare(
      `select relay, sum(ok) accepted, sum(1 - ok) refused, max(at) lastAt,
              (select message from outbox_acks b where b.relay = a.relay and b.ok = 0 order by b.at desc limit 1) lastRefusal
         from outbox_acks a group by relay order by relay`,
    )
    .all() as { relay: string; accepted: number; refused: number; lastRefusal: string | null; lastAt: number }[];
}

export interface SessionSummary {
  id: string;
  state: string;
  pubkey: string | null;
  origin: string;
  balanceMsats: number;
  createdAt: number;
  lastUsedAt: number;
}

/** Sessions, newest first, with their balances. */
export function listSessionSummaries(db: Db, limit = 200): SessionSummary[] {
  return db.$client
    .prepare(
      `select s.id, s.state, s.pubkey, s.origin, s.created_at createdAt, s.last_used_at lastUsedAt,
              coalesce((select sum(amount_msats) from session_ledger l where l.session_id = s.id), 0) balanceMsats
         from sessions s order by s.created_at desc limit ?`,
    )
    .all(limit) as SessionSummary[];
}

/** The outbox rows of one subject with each relay's answer. */
export function eventsWithAcks(db: Db, subjectId: string): { id: number; intentJson: string; eventId: string | null; createdAt: number; signedAt: number | null; ackedAt: number | null; acks: { relay: string; ok: boolean; message: string; at: number }[] }[] {
  const rows = db.$client
    .prepare('select id, intent_json intentJson, event_id eventId, created_at createdAt, signed_at signedAt, acked_at ackedAt from outbox where job_id = ? order by id')
    .all(subjectId) as { id: number; intentJson: string; eventId: string | null; createdAt: number; signedAt: number | null; ackedAt: number | null }[];
  const acks = db.$client.prepare('select relay, ok, message, at from outbox_acks where outbox_id = ? order by at');
  return rows.map((r) => ({ ...r, acks: (acks.all(r.id) as { relay: string; ok: number; message: string; at: number }[]).map((a) => ({ ...a, ok: a.ok === 1 })) }));
}

/** Credits entries and session ledger entries of one job. */
export function ledgersOfJob(db: Db, jobId: string): { credits: { account: string; deltaMsats: number; reason: string; createdAt: number }[]; session: { sessionId: string; kind: string; amountMsats: number; createdAt: number }[] } {
  return {
    credits: db.$client.prepare('select account, delta_msats deltaMsats, reason, created_at createdAt from credits where job_id = ? order by id').all(jobId) as {
      account: string;
      deltaMsats: number;
      reason: string;
      createdAt: number;
    }[],
    session: db.$client.prepare('select session_id sessionId, kind, amount_msats amountMsats, created_at createdAt from session_ledger where job_id = ? order by id').all(jobId) as {
      sessionId: string;
      kind: string;
      amountMsats: number;
      createdAt: number;
    }[],
  };
}

/** A fingerprint of the store that moves with every write on this connection (the console's live feed polls it). */
export function changeCount(db: Db): number {
  return (db.$client.prepare('select total_changes() n').get() as { n: number }).n;
}
