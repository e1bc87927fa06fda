// Bootstrap job queries: compare-and-set moves with their publish intents and credits, and erasure.
import { and, desc, eq, inArray, isNotNull, lte, sql } from 'drizzle-orm';
import { bootstrapJobs } from '../../schema/tables.ts';
import { atomically, atomicallyIf, type Db } from './db.ts';
import { insertInvoice, markInvoice } from './invoices.ts';
import { insertIntents } from './outbox.ts';
import { addCredit } from './credits.ts';
import { prepared } from './prepared.ts';
import type { BootstrapJob, CreditEntry, NewBookInvoice, PublishIntent } from '../core/types.ts';
import { isBootstrapState, type BootstrapState } from '../core/bootstrap-machine.ts';
import type { Fence, Lease } from './jobs.ts';

export type BootstrapRow = typeof bootstrapJobs.$inferSelect;
export type { BootstrapJob };
export type BootstrapPatch = Partial<Omit<typeof bootstrapJobs.$inferInsert, 'id' | 'state' | 'createdAt'>>;

function toJob(r: BootstrapRow): BootstrapJob {
  if (!isBootstrapState(r.state)) throw new Error(`bootstrap job ${r.id} has unknown state ${r.state}`);
  const { relaysJson, ...rest } = r;
  return { ...rest, state: r.state, relays: JSON.parse(relaysJson) as string[] };
}

export function getBootstrap(db: Db, id: string): BootstrapJob | undefined {
  const r = db.select().from(bootstrapJobs).where(eq(bootstrapJobs.id, id)).get();
  return r && toJob(r);
}

export function bootstrapExists(db: Db, id: string): boolean {
  return db.select({ id: bootstrapJobs.id }).from(bootstrapJobs).where(eq(bootstrapJobs.id, id)).get() !== undefined;
}

export function createBootstrap(db: Db, row: typeof bootstrapJobs.$inferInsert, invoice: NewBookInvoice, intents: PublishIntent[]): boolean {
  const now = Date.now();
  return atomically(db, () => {
    const r = db.insert(bootstrapJobs).values(row).onConflictDoNothing().run();
    if (r.changes !== 1) return false;
    insertInvoice(db, invoice, now);
    insertIntents(db, row.id, intents, now);
    return true;
  });
}

/**
 * Moves a job from `from` to `to` with its patch, events and credits, atomically; false if not in `from`
 * (or, with `settle`, if this call did not mark the invoice).
 */
export function moveBootstrap(
  db: Db,
  a: {
    id: string;
    from: BootstrapState;
    to: BootstrapState | null;
    patch?: BootstrapPatch;
    intents?: PublishIntent[];
    credits?: CreditEntry[];
    settle?: { paymentHash: string; status: 'paid' | 'expired' | 'withdrawn' };
    /** Moving into provisioning: `owner` runs it, leased for `ms`. */
    lease?: Lease;
    /** A move made by the provisioning step: only its lease holder at that epoch may; leaving it ends the lease. */
    fence?: Fence;
  },
): boolean {
  const now = Date.now();
  return atomicallyIf(db, () => {
    const set: Record<string, unknown> = { ...a.patch, updatedAt: now };
    if (a.to) set.state = a.to;
    if (a.lease) Object.assign(set, { leaseOwner: a.lease.owner, leaseUntil: now + a.lease.ms, leaseEpoch: sql`${bootstrapJobs.leaseEpoch} + 1` });
    else if (a.fence && a.to) Object.assign(set, { leaseOwner: null, leaseUntil: null });
    const fenced = a.fence ? [eq(bootstrapJobs.leaseOwner, a.fence.owner), eq(bootstrapJobs.leaseEpoch, a.fence.epoch)] : [];
    const r = db.update(bootstrapJobs).set(set).where(and(eq(bootstrapJobs.id, a.id), eq(bootstrapJobs.state, a.from), ...fenced)).run();
    if (r.changes !== 1) return false;
    if (a.settle && !markInvoice(db, a.settle.paymentHash, a.settle.status, now)) return false;
    insertIntents(db, a.id, a.intents ?? [], now);
    for (const c of a.credits ?? []) addCredit(db, c);
    return true;
  });
}

export function listBootstraps(db: Db, states: BootstrapState[]): BootstrapJob[] {
  return db.select().from(bootstrapJobs).where(inArray(bootstrapJobs.state, states)).all().map(toJob);
}

/** Node orders, newest first (optionally only those in `states`), for the operator's listing. */
export function listNodeOrders(db: Db, opts: { states?: BootstrapState[]; limit: number }): BootstrapJob[] {
  const q = db.select().from(bootstrapJobs);
  const filtered = opts.states?.length ? q.where(inArray(bootstrapJobs.state, opts.states)) : q;
  return filtered.orderBy(desc(bootstrapJobs.createdAt)).limit(opts.limit).all().map(toJob);
}

/** Ready jobs still holding credentials since before `beforeMs` (the TTL pass). */
export function staleCredentials(db: Db, beforeMs: number): BootstrapJob[] {
  return db
    .select()
    .from(bootstrapJobs)
    .where(and(isNotNull(bootstrapJobs.secretsEnc), lte(bootstrapJobs.readyAt, beforeMs)))
    .limit(500)
    .all()
    .map(toJob);
}

/** Unpaid node orders of one customer (or client address), counted up to `upTo` (a bounded index range). */
export function countUnpaidBootstraps(db: Db, by: { customerPubkey: string } | { clientAddress: string }, upTo: number): number {
  const byPubkey = 'customerPubkey' in by;
  const q = prepared(db, `countUnpaidBootstraps:${byPubkey ? 'pubkey' : 'address'}`, () =>
    db.$client.prepare(`select count(*) n from (select 1 from bootstrap_jobs where ${byPubkey ? 'customer_pubkey' : 'client_address'} = ? and state = 'awaiting_payment' limit ?)`),
  );
  return (q.get(byPubkey ? by.customerPubkey : by.clientAddress, upTo) as { n: number }).n;
}

/**
 * Erases the credentials (secure_delete zeroes the freed pages) and checkpoints the WAL so no copy is left
 * in either file. Returns whether this call erased them.
 */
export function eraseCredentials(db: Db, id: string, toState: BootstrapState | null): boolean {
  const now = Date.now();
  const erased = atomically(db, () => {
    const set: BootstrapPatch & { state?: string } = { secretsEnc: null, claimTokenHash: null, erasedAt: now, updatedAt: now };
    if (toState) set.state = toState;
    const r = db.update(bootstrapJobs).set(set).where(and(eq(bootstrapJobs.id, id), isNotNull(bootstrapJobs.secretsEnc))).run();
    return r.changes === 1;
  });
  if (erased) db.$client.pragma('wal_checkpoint(TRUNCATE)');
  return erased;
}
