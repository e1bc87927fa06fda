// Job and invoice queries. Every state change is a compare-and-set on the current state, in one
// transaction with the invoice it issues and the events it must publish (the outbox).
import { and, desc, eq, inArray, sql, count } from 'drizzle-orm';
import { jobs } from '../../schema/tables.ts';
import { atomically, atomicallyIf, type Db } from './db.ts';
import { prepared } from './prepared.ts';
import type { CreditEntry, Job, NewBookInvoice, NewJob, PublishIntent } from '../core/types.ts';
import { isJobState, UNPAID_JOB_STATES, type JobState } from '../core/job-machine.ts';
import { insertIntents } from './outbox.ts';
import { addCredit } from './credits.ts';
import { insertInvoice, markInvoice } from './invoices.ts';
import { addLedger, balanceMsats, getSession, moveSession, type LedgerEntry } from './sessions.ts';
import { SPENDABLE_SESSION_STATES } from '../core/session-machine.ts';

type JobRow = typeof jobs.$inferSelect;

/** Columns a transition may set besides `state`. */
export type JobPatch = Partial<
  Pick<JobRow, 'evalPaymentHash' | 'workPaymentHash' | 'reason' | 'result' | 'errorMessage' | 'evalCreditMsats' | 'workCreditMsats' | 'sessionId'> & {
    pricingJson: string;
    costLedgerJson: string;
  }
>;

function parseJson<T>(s: string | null): T | null {
  return s == null ? null : (JSON.parse(s) as T);
}

export function toJob(r: JobRow): Job {
  if (!isJobState(r.state)) throw new Error(`job ${r.id} has unknown state ${r.state}`);
  return {
    id: r.id,
    kind: r.kind,
    source: r.source,
    customerPubkey: r.customerPubkey,
    clientAddress: r.clientAddress,
    requestJson: r.requestJson,
    encryption: r.encryption,
    input: r.input,
    params: JSON.parse(r.paramsJson),
    relays: JSON.parse(r.relaysJson),
    bidMsats: r.bidMsats,
    evalCreditMsats: r.evalCreditMsats,
    workCreditMsats: r.workCreditMsats,
    sessionId: r.sessionId,
    requestCreatedAt: r.requestCreatedAt,
    expiresAt: r.expiresAt,
    state: r.state,
    evalPaymentHash: r.evalPaymentHash,
    workPaymentHash: r.workPaymentHash,
    reason: r.reason,
    pricing: parseJson(r.pricingJson),
    result: r.result,
    costLedger: parseJson(r.costLedgerJson),
    errorMessage: r.errorMessage,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    leaseOwner: r.leaseOwner,
    leaseEpoch: r.leaseEpoch,
  };
}

export function getJob(db: Db, id: string): Job | undefined {
  const q = prepared(db, 'getJob', () => db.select().from(jobs).where(eq(jobs.id, sql.placeholder('id'))).prepare());
  const r = q.get({ id });
  return r && toJob(r);
}

/** Ids of unpaid Nostr jobs, newest first: one bounded index range per unpaid state, merged. */
export function unpaidNostrJobIds(db: Db, limit: number): string[] {
  const q = prepared(db, 'unpaidNostrJobIds', () =>
    db
      .select({ id: jobs.id, createdAt: jobs.createdAt })
      .from(jobs)
      .where(and(eq(jobs.state, sql.placeholder('state')), eq(jobs.source, 'nostr')))
      .orderBy(desc(jobs.createdAt))
      .limit(sql.placeholder('limit'))
      .prepare(),
  );
  return UNPAID_JOB_STATES.flatMap((state) => q.all({ state, limit }))
    .sort((a, b) => b.createdAt - a.createdAt)
    .slice(0, limit)
    .map((r) => r.id);
}

export function jobExists(db: Db, id: string): boolean {
  const q = prepared(db, 'jobExists', () => db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, sql.placeholder('id'))).prepare());
  return q.get({ id }) !== undefined;
}

export function listJobs(db: Db, opts: { states?: JobState[]; limit?: number } = {}): Job[] {
  const q = db.select().from(jobs);
  const filtered = opts.states?.length ? q.where(inArray(jobs.state, opts.states)) : q;
  return filtered
    .orderBy(desc(jobs.createdAt))
    .limit(opts.limit ?? 1_000_000)
    .all()
    .map(toJob);
}

/**
 * How many of one customer's (or client address's) jobs are in `states`, counted up to `upTo` per state: a
 * bounded range of the (customer, state) index, whatever the number of open jobs.
 */
export function countJobsOf(db: Db, states: readonly JobState[], by: { customerPubkey: string } | { clientAddress: string }, upTo: number): number {
  const byPubkey = 'customerPubkey' in by;
  const q = prepared(db, `countJobsOf:${byPubkey ? 'pubkey' : 'address'}`, () =>
    db.$client.prepare(`select count(*) n from (select 1 from jobs where ${byPubkey ? 'customer_pubkey' : 'client_address'} = ? and state = ? limit ?)`),
  );
  const who = byPubkey ? by.customerPubkey : by.clientAddress;
  let n = 0;
  for (const state of states) n += (q.get(who, state, upTo) as { n: number }).n;
  return n;
}

export interface CreateJobArgs {
  job: NewJob;
  state: JobState;
  patch?: JobPatch;
  invoice?: NewBookInvoice;
  intents: PublishIntent[];
  credits?: CreditEntry[];
  /** A job created in a step (evaluating: paid from credit; executing: on a session) is leased to its creator. */
  lease?: Lease;
}

/** Columns a new job row may carry beyond the request: what a creation patch can set. */
const PATCHABLE = [
  'evalPaymentHash', 'workPaymentHash', 'reason', 'result', 'errorMessage', 'pricingJson', 'costLedgerJson', 'sessionId',
] as const satisfies readonly (keyof JobPatch)[];
// Compile-time guard: a JobPatch key missing from the prepared insert would be dropped silently.
type Uninserted = Exclude<keyof JobPatch, (typeof PATCHABLE)[number] | 'evalCreditMsats' | 'workCreditMsats'>;
export const ALL_PATCH_KEYS_INSERTED: [Uninserted] extends [never] ? true : never = true;

function insertJob(db: Db, a: CreateJobArgs, now: number): boolean {
  const ph = (name: string) => sql.placeholder(name);
  const q = prepared(db, 'insertJob', () =>
    db
      .insert(jobs)
      .values({
        id: ph('id'), kind: ph('kind'), source: ph('source'), state: ph('state'), customerPubkey: ph('customerPubkey'),
        clientAddress: ph('clientAddress'), requestJson: ph('requestJson'), encryption: ph('encryption'), input: ph('input'),
        paramsJson: ph('paramsJson'), relaysJson: ph('relaysJson'), bidMsats: ph('bidMsats'), requestCreatedAt: ph('requestCreatedAt'),
        expiresAt: ph('expiresAt'), createdAt: ph('now'), updatedAt: ph('now'), evalCreditMsats: ph('evalCreditMsats'),
        workCreditMsats: ph('workCreditMsats'), ...Object.fromEntries(PATCHABLE.map((k) => [k, ph(k)])),
        leaseOwner: ph('leaseOwner'), leaseUntil: ph('leaseUntil'), leaseEpoch: ph('leaseEpoch'),
      })
      .onConflictDoNothing()
      .prepare(),
  );
  const j = a.job;
  const patch = a.patch ?? {};
  const r = q.run({
    id: j.id, kind: j.kind, source: j.source, state: a.state, customerPubkey: j.customerPubkey, clientAddress: j.clientAddress,
    requestJson: j.requestJson, encryption: j.encryption, input: j.input, paramsJson: JSON.stringify(j.params),
    relaysJson: JSON.stringify(j.relays), bidMsats: j.bidMsats, requestCreatedAt: j.requestCreatedAt, expiresAt: j.expiresAt, now,
    evalCreditMsats: patch.evalCreditMsats ?? 0, workCreditMsats: patch.workCreditMsats ?? 0,
    ...Object.fromEntries(PATCHABLE.map((k) => [k, patch[k] ?? null])),
    leaseOwner: a.lease?.owner ?? null, leaseUntil: a.lease ? now + a.lease.ms : null, leaseEpoch: a.lease ? 1 : 0,
  });
  if (r.changes !== 1) return false;
  if (a.invoice) insertInvoice(db, a.invoice, now);
  for (const c of a.credits ?? []) addCredit(db, c);
  insertIntents(db, a.job.id, a.intents, now);
  return true;
}

/** Inserts a new job (with its first invoice and events) unless its id exists; true when inserted. */
export function createJob(db: Db, a: CreateJobArgs): boolean {
  return atomically(db, () => insertJob(db, a, Date.now()));
}

/**
 * Inserts a job paid by a session: in one transaction, checks the session can be spent and its balance
 * covers `reserveMsats`, writes the reservation, and touches the session.
 */
export function createSessionJob(
  db: Db,
  a: CreateJobArgs & { sessionId: string; reserveMsats: number },
): 'created' | 'duplicate' | 'insufficient' | 'unavailable' {
  return atomically(db, () => {
    const session = getSession(db, a.sessionId);
    if (!session || !SPENDABLE_SESSION_STATES.includes(session.state)) return 'unavailable';
    if (balanceMsats(db, a.sessionId) < a.reserveMsats) return 'insufficient';
    if (!insertJob(db, { ...a, patch: { ...a.patch, sessionId: a.sessionId } }, Date.now())) return 'duplicate';
    addLedger(db, [{ sessionId: a.sessionId, kind: 'reserve', amountMsats: -a.reserveMsats, jobId: a.job.id, ref: `reserve:${a.job.id}` }]);
    moveSession(db, { sessionId: a.sessionId, from: [session.state], to: null, touch: true });
    return 'created';
  });
}

export interface TransitionArgs {
  jobId: string;
  from: JobState;
  to: JobState;
  patch?: JobPatch;
  invoice?: NewBookInvoice;
  /** The settlement or expiry that caused the move: the move happens only if this call marks the invoice. */
  settle?: { paymentHash: string; status: 'paid' | 'expired' | 'withdrawn' };
  intents: PublishIntent[];
  credits?: CreditEntry[];
  sessionLedger?: LedgerEntry[];
  /** Moving into a step (evaluating, executing): `owner` runs it, leased for `ms` from now (the store's clock). */
  lease?: Lease;
  /** Moving out of a step: only its lease holder at that epoch may (else false, nothing written); the lease ends. */
  fence?: Fence;
}

/** A work lease taken with a move: who, for how long (ms). */
export interface Lease {
  owner: string;
  ms: number;
}

/** The lease a move out of a step must still hold. */
export interface Fence {
  owner: string;
  epoch: number;
}

/** Moves a job from `from` to `to` atomically with its side records; false if it was not in `from`. */
export function transitionJob(db: Db, a: TransitionArgs): boolean {
  const now = Date.now();
  return atomicallyIf(db, () => {
    if (!updateState(db, a, now)) return false;
    if (a.settle && !markInvoice(db, a.settle.paymentHash, a.settle.status, now)) return false;
    if (a.invoice) insertInvoice(db, a.invoice, now);
    for (const c of a.credits ?? []) addCredit(db, c);
    addLedger(db, a.sessionLedger ?? []);
    insertIntents(db, a.jobId, a.intents, now);
    return true;
  });
}

/** The compare-and-set itself, prepared once per set of patched columns (a handful of shapes). */
function updateState(db: Db, a: TransitionArgs, now: number): boolean {
  const keys = Object.keys(a.patch ?? {}).sort() as (keyof JobPatch)[];
  const ph = sql.placeholder;
  // A lease taken replaces the holder; a fenced move out of a step ends the lease.
  const leaseSet = a.lease
    ? { leaseOwner: sql`${ph('leaseOwner')}`, leaseUntil: sql`${ph('now')} + ${ph('leaseMs')}`, leaseEpoch: sql`${jobs.leaseEpoch} + 1` }
    : a.fence
      ? { leaseOwner: sql`null`, leaseUntil: sql`null` }
      : {};
  const shape = `${keys.join(',')}|${a.lease ? 'lease' : ''}|${a.fence ? 'fence' : ''}`;
  const q = prepared(db, `transitionJob:${shape}`, () =>
    db
      .update(jobs)
      .set({ state: sql`${ph('to')}`, updatedAt: sql`${ph('now')}`, ...Object.fromEntries(keys.map((k) => [k, sql`${ph(k)}`])), ...leaseSet })
      .where(
        and(
          eq(jobs.id, ph('id')),
          eq(jobs.state, ph('from')),
          ...(a.fence ? [eq(jobs.leaseOwner, ph('fenceOwner')), eq(jobs.leaseEpoch, ph('fenceEpoch'))] : []),
        ),
      )
      .prepare(),
  );
  return (
    q.run({
      ...a.patch, to: a.to, now, id: a.jobId, from: a.from,
      ...(a.lease ? { leaseOwner: a.lease.owner, leaseMs: a.lease.ms } : {}),
      ...(a.fence ? { fenceOwner: a.fence.owner, fenceEpoch: a.fence.epoch } : {}),
    }).changes === 1
  );
}

export function countJobsByState(db: Db): Record<string, number> {
  const rows = db.select({ state: jobs.state, n: count() }).from(jobs).groupBy(jobs.state).all();
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

/**
 * Deletes requests that were never served — refused at intake (failed before any payment), expired,
 * cancelled — created before `beforeMs`, with their outbox rows and acks; at most `limit` per call. Invoices
 * and credits are not touched: the money ledgers outlive the requests. Returns how many went.
 */
export function purgeUnserved(db: Db, beforeMs: number, limit = 500): number {
  const ids = db.$client
    .prepare(
      `select id from jobs where state in ('expired', 'cancelled') and created_at < ?
       union all
       select id from jobs where state = 'failed' and created_at < ? and eval_payment_hash is null and eval_credit_msats = 0 and session_id is null
       limit ?`,
    )
    .all(beforeMs, beforeMs, limit)
    .map((r) => (r as { id: string }).id);
  if (ids.length === 0) return 0;
  atomically(db, () => {
    const del = {
      acks: db.$client.prepare('delete from outbox_acks where outbox_id in (select id from outbox where job_id = ?)'),
      outbox: db.$client.prepare('delete from outbox where job_id = ?'),
      job: db.$client.prepare('delete from jobs where id = ?'),
    };
    for (const id of ids) {
      del.acks.run(id);
      del.outbox.run(id);
      del.job.run(id);
    }
  });
  return ids.length;
}
