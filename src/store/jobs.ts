// Job and invoice queries. Every state change is a compare-and-set on the current state, in one
// transaction with the invoice it issues and the events it must publish (the outbox).
import { and, desc, eq, inArray, lte, sql, count } from 'drizzle-orm';
import { invoices, jobs } from '../../schema/tables.ts';
import { atomically, type Db } from './db.ts';
import { prepared } from './prepared.ts';
import type { InvoiceRecord, Job, NewJob, PublishIntent } from '../core/types.ts';
import { isJobState, type JobState } from '../core/job-machine.ts';
import { insertIntents } from './outbox.ts';
import { addCredit, type CreditEntry } from './credits.ts';
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
  };
}

export function getJob(db: Db, id: string): Job | undefined {
  const q = prepared(db, 'getJob', () => db.select().from(jobs).where(eq(jobs.id, sql.placeholder('id'))).prepare());
  const r = q.get({ id });
  return r && toJob(r);
}

/** Ids of unpaid Nostr jobs, newest first. */
export function unpaidNostrJobIds(db: Db, limit: number): string[] {
  return db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(inArray(jobs.state, ['awaiting_eval_payment', 'awaiting_work_payment']), eq(jobs.source, 'nostr')))
    .orderBy(desc(jobs.createdAt))
    .limit(limit)
    .all()
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

export function countJobs(db: Db, states: readonly JobState[], by: { customerPubkey?: string; clientAddress?: string } = {}): number {
  const key = `countJobs:${states.join(',')}:${by.customerPubkey ? 'pubkey' : by.clientAddress ? 'address' : 'all'}`;
  const q = prepared(db, key, () => {
    const conds = [inArray(jobs.state, [...states])];
    if (by.customerPubkey) conds.push(eq(jobs.customerPubkey, sql.placeholder('who')));
    else if (by.clientAddress) conds.push(eq(jobs.clientAddress, sql.placeholder('who')));
    return db.select({ n: count() }).from(jobs).where(and(...conds)).prepare();
  });
  return q.get({ who: by.customerPubkey ?? by.clientAddress ?? '' })?.n ?? 0;
}

function insertInvoiceRow(db: Db, inv: Omit<InvoiceRecord, 'status' | 'paidAt'>, nowMs: number): void {
  const q = prepared(db, 'insertInvoice', () =>
    db
      .insert(invoices)
      .values({
        paymentHash: sql.placeholder('paymentHash'),
        jobId: sql.placeholder('jobId'),
        purpose: sql.placeholder('purpose'),
        amountMsats: sql.placeholder('amountMsats'),
        bolt11: sql.placeholder('bolt11'),
        expiresAt: sql.placeholder('expiresAt'),
        status: 'open',
        createdAt: sql.placeholder('createdAt'),
      })
      .prepare(),
  );
  q.run({ ...inv, createdAt: nowMs });
}

export interface CreateJobArgs {
  job: NewJob;
  state: JobState;
  patch?: JobPatch;
  invoice?: Omit<InvoiceRecord, 'status' | 'paidAt'>;
  intents: PublishIntent[];
  credits?: CreditEntry[];
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
  });
  if (r.changes !== 1) return false;
  if (a.invoice) insertInvoiceRow(db, a.invoice, now);
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
  invoice?: Omit<InvoiceRecord, 'status' | 'paidAt'>;
  /** The settlement or expiry that caused the move, recorded in the same transaction. */
  settle?: { paymentHash: string; status: 'paid' | 'expired' };
  intents: PublishIntent[];
  credits?: CreditEntry[];
  sessionLedger?: LedgerEntry[];
}

/** Moves a job from `from` to `to` atomically with its side records; false if it was not in `from`. */
export function transitionJob(db: Db, a: TransitionArgs): boolean {
  const now = Date.now();
  return atomically(db, () => {
    const r = db
      .update(jobs)
      .set({ state: a.to, updatedAt: now, ...a.patch })
      .where(and(eq(jobs.id, a.jobId), eq(jobs.state, a.from)))
      .run();
    if (r.changes !== 1) return false;
    if (a.invoice) insertInvoiceRow(db, a.invoice, now);
    if (a.settle) setInvoiceStatus(db, a.settle.paymentHash, a.settle.status);
    for (const c of a.credits ?? []) addCredit(db, c);
    addLedger(db, a.sessionLedger ?? []);
    insertIntents(db, a.jobId, a.intents, now);
    return true;
  });
}

export function getInvoice(db: Db, paymentHash: string): InvoiceRecord | undefined {
  return db.select().from(invoices).where(eq(invoices.paymentHash, paymentHash)).get() as InvoiceRecord | undefined;
}

/** Open (or expired) -> paid, open -> expired. Returns whether the row changed. */
export function setInvoiceStatus(db: Db, paymentHash: string, status: 'paid' | 'expired'): boolean {
  const from: InvoiceRecord['status'][] = status === 'paid' ? ['open', 'expired'] : ['open'];
  const r = db
    .update(invoices)
    .set(status === 'paid' ? { status, paidAt: Date.now() } : { status })
    .where(and(eq(invoices.paymentHash, paymentHash), inArray(invoices.status, from)))
    .run();
  return r.changes === 1;
}

/**
 * A payment for a job that no longer waits for it (expired, cancelled): marks the invoice paid and
 * credits the payer, once (the credit's ref is unique), with the events that tell them.
 */
export function settleLate(db: Db, a: { paymentHash: string; jobId: string; credit: CreditEntry; intents: PublishIntent[] }): boolean {
  const now = Date.now();
  return atomically(db, () => {
    setInvoiceStatus(db, a.paymentHash, 'paid');
    if (!addCredit(db, a.credit)) return false;
    insertIntents(db, a.jobId, a.intents, now);
    return true;
  });
}

/** Open invoices whose expiry has passed, oldest first. */
export function dueInvoices(db: Db, nowS: number, limit = 500): InvoiceRecord[] {
  return db
    .select()
    .from(invoices)
    .where(and(eq(invoices.status, 'open'), lte(invoices.expiresAt, nowS)))
    .orderBy(invoices.expiresAt)
    .limit(limit)
    .all() as InvoiceRecord[];
}

/** Open invoices, for the resume pass after a restart. */
export function openInvoices(db: Db, afterHash = '', limit = 500): InvoiceRecord[] {
  return db
    .select()
    .from(invoices)
    .where(and(eq(invoices.status, 'open'), sql`${invoices.paymentHash} > ${afterHash}`))
    .orderBy(invoices.paymentHash)
    .limit(limit)
    .all() as InvoiceRecord[];
}

export function countJobsByState(db: Db): Record<string, number> {
  const rows = db.select({ state: jobs.state, n: count() }).from(jobs).groupBy(jobs.state).all();
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

export function countInvoicesByStatus(db: Db): Record<string, number> {
  const rows = db.select({ status: invoices.status, n: count() }).from(invoices).groupBy(invoices.status).all();
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
