// The operator's view of the store: PostgreSQL twin of ../money.ts (money received and owed, model usage,
// work by state and over time, each subject's timeline). Read-only queries.
//
// Raw results come back through drizzle's node-postgres driver, which ignores the pool's type parsers: int8
// and numeric arrive as strings, so every count and sum is converted here (`int`, `num`).
import { asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { credits, outbox, outboxAcks, sessionLedger } from '../../../schema/tables-pg.ts';
import type { PgQ } from './db.ts';
import type { InvoicePurpose } from '../../core/types.ts';
import { parseInt8, parseNumeric } from '../pg-types.ts';
import { PURPOSES, type RecentError, type SeriesBucket, type SessionSummary } from '../money.ts';

export { PURPOSES };
export type { RecentError, SeriesBucket, SessionSummary };

type Raw = string | number | null | undefined;

/** An int8 from a raw row (string, or a number where a parser ran); null counts as 0, as coalesce would. */
function int(v: Raw): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : parseInt8(v);
}

/** A numeric from a raw row (sums of JSON numbers). */
function num(v: Raw): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : parseNumeric(v);
}

/** SQLite reads a negative LIMIT as none; PostgreSQL refuses it (LIMIT NULL is none). */
const limitOf = (n: number): number | null => (n < 0 ? null : n);

async function rows<T extends Record<string, unknown>>(q: PgQ, query: SQL): Promise<T[]> {
  return (await q.execute<T>(query)).rows as T[];
}

/** Money received (paid invoices, msats) by purpose, paid at or after `sinceMs` (null: all time). */
export async function receivedMsats(q: PgQ, sinceMs: number | null = null): Promise<Record<InvoicePurpose, number>> {
  const rs = await rows<{ purpose: InvoicePurpose; msats: Raw }>(
    q,
    sql`select purpose, sum(amount_msats)::bigint msats from invoice_book where status = 'paid' and paid_at >= ${sinceMs ?? 0}
        group by purpose order by purpose collate "C"`,
  );
  const out = Object.fromEntries(PURPOSES.map((p) => [p, 0])) as Record<InvoicePurpose, number>;
  for (const r of rs) out[r.purpose] = int(r.msats);
  return out;
}

/** What sessions were charged for work (their `debit` entries, msats) at or after `sinceMs`. */
export async function sessionDebitsMsats(q: PgQ, sinceMs: number | null = null): Promise<number> {
  const rs = await rows<{ msats: Raw }>(
    q,
    sql`select coalesce(-sum(amount_msats), 0)::bigint msats from session_ledger where kind = 'debit' and created_at >= ${sinceMs ?? 0}`,
  );
  return int(rs[0]?.msats);
}

/** Tokens the work model used (from the jobs' cost ledgers), for jobs finished at or after `sinceMs`. */
export async function modelUsage(q: PgQ, sinceMs: number | null = null): Promise<{ jobs: number; inputTokens: number; outputTokens: number }> {
  // numeric, not bigint: a cast to bigint would refuse a fractional value that SQLite's json_extract sums.
  const rs = await rows<{ jobs: Raw; inputTokens: Raw; outputTokens: Raw }>(
    q,
    sql`select count(*) "jobs",
               coalesce(sum((cost_ledger_json::jsonb->>'actualInputTokens')::numeric), 0) "inputTokens",
               coalesce(sum((cost_ledger_json::jsonb->>'actualOutputTokens')::numeric), 0) "outputTokens"
          from jobs where cost_ledger_json is not null and updated_at >= ${sinceMs ?? 0}`,
  );
  const r = rs[0];
  return { jobs: int(r?.jobs), inputTokens: num(r?.inputTokens), outputTokens: num(r?.outputTokens) };
}

/** Money held in sessions (the sum of every session ledger with something left): owed as service. */
export async function sessionsHeldMsats(q: PgQ): Promise<{ sessions: number; msats: number }> {
  const rs = await rows<{ sessions: Raw; msats: Raw }>(
    q,
    sql`select count(*) "sessions", coalesce(sum(b), 0)::bigint "msats"
          from (select sum(amount_msats) b from session_ledger group by session_id having sum(amount_msats) > 0) held`,
  );
  return { sessions: int(rs[0]?.sessions), msats: int(rs[0]?.msats) };
}

/** Credit owed: the sum of every positive credits balance, and how many accounts hold one. */
export async function creditsOwedMsats(q: PgQ): Promise<{ accounts: number; msats: number }> {
  const rs = await rows<{ accounts: Raw; msats: Raw }>(
    q,
    sql`select count(*) "accounts", coalesce(sum(b), 0)::bigint "msats"
          from (select sum(delta_msats) b from credits group by account having sum(delta_msats) > 0) owed`,
  );
  return { accounts: int(rs[0]?.accounts), msats: int(rs[0]?.msats) };
}

export async function countNodeOrdersByState(q: PgQ): Promise<Record<string, number>> {
  const rs = await rows<{ state: string; n: Raw }>(q, sql`select state, count(*) n from bootstrap_jobs group by state order by state collate "C"`);
  return Object.fromEntries(rs.map((r) => [r.state, int(r.n)]));
}

/** The newest failures of text jobs and node orders (those with an error message), newest first. */
export async function recentErrors(q: PgQ, limit = 5): Promise<RecentError[]> {
  const n = limitOf(limit);
  const rs = await rows<{ at: Raw; subject: 'job' | 'node'; id: string; state: string; message: string; encrypted: boolean }>(
    q,
    sql`select * from (
          select updated_at "at", 'job'::text "subject", id, state, error_message "message", encryption != 'none' "encrypted"
            from jobs where error_message is not null order by updated_at desc limit ${n}) j
        union all
        select * from (
          select updated_at "at", 'node'::text "subject", id, state, error_message "message", false "encrypted"
            from bootstrap_jobs where error_message is not null order by updated_at desc limit ${n}) b
        order by "at" desc limit ${n}`,
  );
  return rs.map((r) => ({ at: int(r.at), subject: r.subject, id: r.id, state: r.state, message: r.message, encrypted: r.encrypted === true }));
}

const FINAL_STATES = ['complete', 'failed', 'rejected', 'expired', 'cancelled'];

/** Money received, model usage and finished jobs per `bucketMs`, from `sinceMs` to now (every bucket present). */
export async function moneySeries(q: PgQ, sinceMs: number, bucketMs: number, nowMs: number): Promise<SeriesBucket[]> {
  const start = Math.floor(sinceMs / bucketMs) * bucketMs;
  const buckets: SeriesBucket[] = [];
  for (let t = start; t <= nowMs; t += bucketMs) buckets.push({ t, receivedMsats: 0, inputTokens: 0, outputTokens: 0, outcomes: {} });
  const at = (ms: number) => buckets[Math.floor((ms - start) / bucketMs)];
  // bigint / bigint truncates, as SQLite's integer division does (times are never negative).
  const paid = await rows<{ t: Raw; msats: Raw }>(
    q,
    sql`select (paid_at / ${bucketMs}::bigint) * ${bucketMs}::bigint "t", sum(amount_msats)::bigint "msats"
          from invoice_book where status = 'paid' and paid_at >= ${start} group by 1`,
  );
  for (const r of paid) {
    const b = at(int(r.t));
    if (b) b.receivedMsats += int(r.msats);
  }
  const jobs = await rows<{ t: Raw; state: string; n: Raw; inputTokens: Raw; outputTokens: Raw }>(
    q,
    sql`select (updated_at / ${bucketMs}::bigint) * ${bucketMs}::bigint "t", state,
               count(*) "n",
               coalesce(sum((cost_ledger_json::jsonb->>'actualInputTokens')::numeric), 0) "inputTokens",
               coalesce(sum((cost_ledger_json::jsonb->>'actualOutputTokens')::numeric), 0) "outputTokens"
          from jobs where updated_at >= ${start} and state in ${FINAL_STATES} group by 1, 2`,
  );
  for (const r of jobs) {
    const b = at(int(r.t));
    if (!b) continue;
    b.outcomes[r.state] = (b.outcomes[r.state] ?? 0) + int(r.n);
    b.inputTokens += num(r.inputTokens);
    b.outputTokens += num(r.outputTokens);
  }
  return buckets;
}

/**
 * How long the `processing` feedback took to reach a relay after the payment was committed (ms): the
 * feedback is written in the payment's own transaction, so it is its ack time minus its creation. `ids`:
 * only these outbox rows (just acked; `ackedSince`: first acked then, not by an earlier relay); otherwise the
 * newest `limit`.
 */
export async function processingLatencies(q: PgQ, opts: { ids?: number[]; ackedSince?: number; limit?: number }): Promise<number[]> {
  const processing = sql`acked_at is not null and (intent_json::jsonb->>'type') = 'feedback' and (intent_json::jsonb->>'status') = 'processing'`;
  if (opts.ids) {
    if (opts.ids.length === 0) return [];
    const rs = await rows<{ ms: Raw }>(
      q,
      sql`select acked_at - created_at "ms" from outbox
           where id = any(${sql.param(opts.ids)}::bigint[]) and acked_at >= ${opts.ackedSince ?? 0} and ${processing} order by id`,
    );
    return rs.map((r) => int(r.ms));
  }
  const rs = await rows<{ ms: Raw }>(q, sql`select acked_at - created_at "ms" from outbox where ${processing} order by id desc limit ${limitOf(opts.limit ?? 200)}`);
  return rs.map((r) => int(r.ms));
}

/** Per relay: events it accepted and refused, and its last refusal. */
export async function relayAcks(q: PgQ): Promise<{ relay: string; accepted: number; refused: number; lastRefusal: string | null; lastAt: number }[]> {
  const rs = await rows<{ relay: string; accepted: Raw; refused: Raw; lastAt: Raw; lastRefusal: string | null }>(
    q,
    sql`select a.relay, sum(a.ok::int)::bigint "accepted", sum(1 - a.ok::int)::bigint "refused", max(a."at") "lastAt",
               (select b.message from outbox_acks b where b.relay = a.relay and not b.ok order by b."at" desc limit 1) "lastRefusal"
          from outbox_acks a group by a.relay order by a.relay collate "C"`,
  );
  return rs.map((r) => ({ relay: r.relay, accepted: int(r.accepted), refused: int(r.refused), lastAt: int(r.lastAt), lastRefusal: r.lastRefusal }));
}

/** Sessions, newest first, with their balances. */
export async function listSessionSummaries(q: PgQ, limit = 200): Promise<SessionSummary[]> {
  const rs = await rows<{ id: string; state: string; pubkey: string | null; origin: string; createdAt: Raw; lastUsedAt: Raw; balanceMsats: Raw }>(
    q,
    sql`select s.id, s.state, s.pubkey, s.origin, s.created_at "createdAt", s.last_used_at "lastUsedAt",
               coalesce((select sum(l.amount_msats) from session_ledger l where l.session_id = s.id), 0)::bigint "balanceMsats"
          from sessions s order by s.created_at desc limit ${limitOf(limit)}`,
  );
  return rs.map((r) => ({
    id: r.id,
    state: r.state,
    pubkey: r.pubkey,
    origin: r.origin,
    createdAt: int(r.createdAt),
    lastUsedAt: int(r.lastUsedAt),
    balanceMsats: int(r.balanceMsats),
  }));
}

/** The outbox rows of one subject with each relay's answer. */
export async function eventsWithAcks(
  q: PgQ,
  subjectId: string,
): Promise<{ id: number; intentJson: string; eventId: string | null; createdAt: number; signedAt: number | null; ackedAt: number | null; acks: { relay: string; ok: boolean; message: string; at: number }[] }[]> {
  const events = await q
    .select({ id: outbox.id, intentJson: outbox.intentJson, eventId: outbox.eventId, createdAt: outbox.createdAt, signedAt: outbox.signedAt, ackedAt: outbox.ackedAt })
    .from(outbox)
    .where(eq(outbox.jobId, subjectId))
    .orderBy(asc(outbox.id));
  if (events.length === 0) return [];
  // One query for every row's acks; ties on `at` in relay order, as SQLite's stable sort of its primary-key scan.
  const acks = await q
    .select({ outboxId: outboxAcks.outboxId, relay: outboxAcks.relay, ok: outboxAcks.ok, message: outboxAcks.message, at: outboxAcks.at })
    .from(outboxAcks)
    .where(inArray(outboxAcks.outboxId, events.map((e) => e.id)))
    .orderBy(asc(outboxAcks.at), sql`${outboxAcks.relay} collate "C"`);
  const byRow = new Map<number, { relay: string; ok: boolean; message: string; at: number }[]>();
  for (const { outboxId, ...a } of acks) {
    let list = byRow.get(outboxId);
    if (!list) byRow.set(outboxId, (list = []));
    list.push(a);
  }
  return events.map((e) => ({ ...e, acks: byRow.get(e.id) ?? [] }));
}

/** Credits entries and session ledger entries of one job. */
export async function ledgersOfJob(
  q: PgQ,
  jobId: string,
): Promise<{ credits: { account: string; deltaMsats: number; reason: string; createdAt: number }[]; session: { sessionId: string; kind: string; amountMsats: number; createdAt: number }[] }> {
  const c = await q
    .select({ account: credits.account, deltaMsats: credits.deltaMsats, reason: credits.reason, createdAt: credits.createdAt })
    .from(credits)
    .where(eq(credits.jobId, jobId))
    .orderBy(asc(credits.id));
  const s = await q
    .select({ sessionId: sessionLedger.sessionId, kind: sessionLedger.kind, amountMsats: sessionLedger.amountMsats, createdAt: sessionLedger.createdAt })
    .from(sessionLedger)
    .where(eq(sessionLedger.jobId, jobId))
    .orderBy(asc(sessionLedger.id));
  return { credits: c, session: s };
}

/**
 * A fingerprint of the store that moves with every write (the console's live feed polls it for change): the
 * WAL insert position, which every commit advances. Unlike SQLite's total_changes() it is not a row count and
 * also moves with other writers of the cluster (other workers, vacuum, checkpoints); on a standby, the replay
 * position. Kept below 2^53 so it is always an exact number.
 */
export async function changeCount(q: PgQ): Promise<number> {
  const rs = await rows<{ n: Raw }>(
    q,
    sql`select (pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_insert_lsn() end, '0/0')
               % 9007199254740991)::bigint "n"`,
  );
  return int(rs[0]?.n);
}
