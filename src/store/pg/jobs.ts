// Jobs over PostgreSQL: ../jobs.ts statement for statement (meanings are there). Every state change is a
// compare-and-set on the current state (`update … where state = $from`), in one transaction with the
// invoice it issues and the events it must publish. Lock order inside: the session row (session jobs),
// the job row, its invoice, credits/ledger/outbox inserts, the open-invoice counter last.
import { and, count, desc, eq, inArray, sql } from 'drizzle-orm';
import { jobs, outbox, outboxAcks } from '../../../schema/tables-pg.ts';
import { DB_NOW_MS, type PgQ } from './db.ts';
import type { Job } from '../../core/types.ts';
import { UNPAID_JOB_STATES, type JobState } from '../../core/job-machine.ts';
import { SPENDABLE_SESSION_STATES } from '../../core/session-machine.ts';
import { toJob as rowToJob, type CreateJobArgs, type JobPatch, type TransitionArgs } from '../jobs.ts';
import { insertIntents } from './outbox.ts';
import { addCredit, int8 } from './credits.ts';
import { applyCounterMoves, insertInvoiceRow, markInvoiceRow, transactionIf, type CounterMoves } from './invoices.ts';
import { addLedger, ledgerSum, lockSession, updateSession } from './sessions.ts';

export type { CreateJobArgs, JobPatch, TransitionArgs };

type JobRow = typeof jobs.$inferSelect;

/** A row as a Job: the SQLite module's mapping (the two tables have the same columns and JS types). */
export const toJob = (r: JobRow): Job => rowToJob(r);

export async function getJob(q: PgQ, id: string): Promise<Job | undefined> {
  const [r] = await q.select().from(jobs).where(eq(jobs.id, id));
  return r && toJob(r);
}

/** Ids of unpaid Nostr jobs, newest first: one bounded index range per unpaid state, merged (as in SQLite). */
export async function unpaidNostrJobIds(q: PgQ, limit: number): Promise<string[]> {
  const runs: { id: string; createdAt: number }[][] = [];
  for (const state of UNPAID_JOB_STATES) {
    runs.push(
      await q
        .select({ id: jobs.id, createdAt: jobs.createdAt })
        .from(jobs)
        .where(and(eq(jobs.state, state), eq(jobs.source, 'nostr')))
        .orderBy(desc(jobs.createdAt))
        .limit(limit),
    );
  }
  return runs
    .flat()
    .sort((a, b) => b.createdAt - a.createdAt)
    .slice(0, limit)
    .map((r) => r.id);
}

export async function jobExists(q: PgQ, id: string): Promise<boolean> {
  const [r] = await q.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, id));
  return r !== undefined;
}

export async function listJobs(q: PgQ, opts: { states?: JobState[]; limit?: number } = {}): Promise<Job[]> {
  const rows = await q
    .select()
    .from(jobs)
    .where(opts.states?.length ? inArray(jobs.state, opts.states) : undefined)
    .orderBy(desc(jobs.createdAt))
    .limit(opts.limit ?? 1_000_000);
  return rows.map(toJob);
}

/**
 * How many of one customer's (or client address's) jobs are in `states`, counted up to `upTo` per state: a
 * bounded range of the (customer, state) index per state, whatever the number of open jobs.
 */
export async function countJobsOf(
  q: PgQ,
  states: readonly JobState[],
  by: { customerPubkey: string } | { clientAddress: string },
  upTo: number,
): Promise<number> {
  if (states.length === 0) return 0;
  const byPubkey = 'customerPubkey' in by;
  const who = byPubkey ? sql`x.customer_pubkey = ${by.customerPubkey}` : sql`x.client_address = ${by.clientAddress}`;
  const r = await q.execute(sql`
    select coalesce(sum(c.n), 0)::bigint as n
      from unnest(${sql.param([...states])}::text[]) as s(state)
     cross join lateral (select count(*) as n from (select 1 from ${jobs} x where ${who} and x.state = s.state limit ${upTo}) b) c`);
  return int8(r.rows[0]?.n ?? 0);
}

/** Columns a new job row may carry beyond the request: what a creation patch can set. */
const PATCHABLE = [
  'evalPaymentHash', 'workPaymentHash', 'reason', 'result', 'errorMessage', 'pricingJson', 'costLedgerJson', 'sessionId',
] as const satisfies readonly (keyof JobPatch)[];
// Compile-time guard: a JobPatch key missing from the insert would be dropped silently.
type Uninserted = Exclude<keyof JobPatch, (typeof PATCHABLE)[number] | 'evalCreditMsats' | 'workCreditMsats'>;
export const ALL_PATCH_KEYS_INSERTED: [Uninserted] extends [never] ? true : never = true;

/** Inserts the job unless its id exists, then its invoice (counter move into `moves`), credits and events. */
async function insertJob(q: PgQ, a: CreateJobArgs, now: number, moves: CounterMoves): Promise<boolean> {
  const j = a.job;
  const patch = a.patch ?? {};
  const inserted = await q
    .insert(jobs)
    .values({
      id: j.id, kind: j.kind, source: j.source, state: a.state, customerPubkey: j.customerPubkey, clientAddress: j.clientAddress,
      requestJson: j.requestJson, encryption: j.encryption, input: j.input, paramsJson: JSON.stringify(j.params),
      relaysJson: JSON.stringify(j.relays), bidMsats: j.bidMsats, requestCreatedAt: j.requestCreatedAt, expiresAt: j.expiresAt,
      createdAt: now, updatedAt: now, evalCreditMsats: patch.evalCreditMsats ?? 0, workCreditMsats: patch.workCreditMsats ?? 0,
      ...(Object.fromEntries(PATCHABLE.map((k) => [k, patch[k] ?? null])) as Pick<JobRow, (typeof PATCHABLE)[number]>),
      ...(a.lease ? { leaseOwner: a.lease.owner, leaseUntil: sql`${DB_NOW_MS} + ${a.lease.ms}`, leaseEpoch: 1 } : {}),
    })
    .onConflictDoNothing()
    .returning({ id: jobs.id });
  if (inserted.length !== 1) return false;
  if (a.invoice) await insertInvoiceRow(q, a.invoice, now, moves);
  for (const c of a.credits ?? []) await addCredit(q, c);
  await insertIntents(q, a.job.id, a.intents, now);
  return true;
}

/** Inserts a new job (with its first invoice and events) unless its id exists; true when inserted. */
export async function createJob(q: PgQ, a: CreateJobArgs): Promise<boolean> {
  return q.transaction(async (tx) => {
    const moves: CounterMoves = new Map();
    const created = await insertJob(tx, a, Date.now(), moves);
    await applyCounterMoves(tx, moves);
    return created;
  });
}

/**
 * Inserts a job paid by a session: in one transaction, checks the session can be spent and its balance
 * covers `reserveMsats`, writes the reservation, and touches the session. The session row is locked
 * (`for update`) before its balance is read: concurrent reservations on any worker queue behind it and each
 * sees the ones before, so the balance never goes below zero.
 */
export async function createSessionJob(
  q: PgQ,
  a: CreateJobArgs & { sessionId: string; reserveMsats: number },
): Promise<'created' | 'duplicate' | 'insufficient' | 'unavailable'> {
  return q.transaction(async (tx) => {
    const session = await lockSession(tx, a.sessionId);
    if (!session || !SPENDABLE_SESSION_STATES.includes(session.state)) return 'unavailable';
    if ((await ledgerSum(tx, a.sessionId)) < a.reserveMsats) return 'insufficient'; // read after the lock: every earlier reservation counted
    const now = Date.now();
    const moves: CounterMoves = new Map();
    if (!(await insertJob(tx, { ...a, patch: { ...a.patch, sessionId: a.sessionId } }, now, moves))) return 'duplicate';
    await addLedger(tx, [{ sessionId: a.sessionId, kind: 'reserve', amountMsats: -a.reserveMsats, jobId: a.job.id, ref: `reserve:${a.job.id}` }]);
    // SQLite's `moveSession(…, {from: [state], to: null, touch: true})`: the row is locked, so it matches.
    await updateSession(tx, { sessionId: a.sessionId, from: [session.state], to: null, touch: true }, Date.now());
    await applyCounterMoves(tx, moves);
    return 'created';
  });
}

/** Moves a job from `from` to `to` atomically with its side records; false if it was not in `from`. */
export async function transitionJob(q: PgQ, a: TransitionArgs): Promise<boolean> {
  const now = Date.now();
  return transactionIf(q, async (tx) => {
    if (!(await updateState(tx, a, now))) return false;
    const moves: CounterMoves = new Map();
    if (a.settle && !(await markInvoiceRow(tx, a.settle.paymentHash, a.settle.status, now, moves))) return false;
    if (a.invoice) await insertInvoiceRow(tx, a.invoice, now, moves);
    for (const c of a.credits ?? []) await addCredit(tx, c);
    await addLedger(tx, a.sessionLedger ?? []);
    await insertIntents(tx, a.jobId, a.intents, now);
    await applyCounterMoves(tx, moves);
    return true;
  });
}

/** The compare-and-set itself. */
async function updateState(q: PgQ, a: TransitionArgs, now: number): Promise<boolean> {
  // A lease taken replaces the holder (until: the database's clock); a fenced move out of a step ends it.
  const lease = a.lease
    ? { leaseOwner: a.lease.owner, leaseUntil: sql`${DB_NOW_MS} + ${a.lease.ms}`, leaseEpoch: sql`${jobs.leaseEpoch} + 1` }
    : a.fence
      ? { leaseOwner: null, leaseUntil: null }
      : {};
  const fenced = a.fence ? [eq(jobs.leaseOwner, a.fence.owner), eq(jobs.leaseEpoch, a.fence.epoch)] : [];
  const r = await q
    .update(jobs)
    .set({ ...a.patch, state: a.to, updatedAt: now, ...lease })
    .where(and(eq(jobs.id, a.jobId), eq(jobs.state, a.from), ...fenced))
    .returning({ id: jobs.id });
  return r.length === 1;
}

export async function countJobsByState(q: PgQ): Promise<Record<string, number>> {
  const rows = await q.select({ state: jobs.state, n: count() }).from(jobs).groupBy(jobs.state);
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

/**
 * Deletes requests that were never served — refused at intake (failed before any payment), expired,
 * cancelled — created before `beforeMs`, with their outbox rows and acks; at most `limit` per call. Invoices
 * and credits are not touched: the money ledgers outlive the requests. Returns how many went.
 */
export async function purgeUnserved(q: PgQ, beforeMs: number, limit = 500): Promise<number> {
  const found = await q.execute(sql`
    select id from jobs where state in ('expired', 'cancelled') and created_at < ${beforeMs}
    union all
    select id from jobs where state = 'failed' and created_at < ${beforeMs} and eval_payment_hash is null and eval_credit_msats = 0 and session_id is null
    limit ${limit}`);
  const ids = found.rows.map((r) => String(r.id));
  if (ids.length === 0) return 0;
  await q.transaction(async (tx) => {
    const idList = sql.param(ids);
    // The job rows first (lock order: subject rows, then what hangs off them).
    await tx.execute(sql`delete from ${jobs} where ${jobs.id} = any(${idList}::text[])`);
    await tx.execute(sql`delete from ${outboxAcks} where ${outboxAcks.outboxId} in (select ${outbox.id} from ${outbox} where ${outbox.jobId} = any(${idList}::text[]))`);
    await tx.execute(sql`delete from ${outbox} where ${outbox.jobId} = any(${idList}::text[])`);
  });
  return ids.length;
}
