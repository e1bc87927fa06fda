// Bootstrap job queries: PostgreSQL twin of ../bootstrap.ts (compare-and-set moves with their publish intents
// and credits, and erasure).
import { and, desc, eq, inArray, isNotNull, lte, sql } from 'drizzle-orm';
import { bootstrapJobs } from '../../../schema/tables-pg.ts';
import { DB_NOW_MS, type PgQ } from './db.ts';
import { insertInvoice, markInvoice } from './invoices.ts';
import { insertIntents } from './outbox.ts';
import { addCredit } from './credits.ts';
import type { BootstrapJob, CreditEntry, NewBookInvoice, PublishIntent } from '../../core/types.ts';
import { isBootstrapState, type BootstrapState } from '../../core/bootstrap-machine.ts';
import type { BootstrapPatch } from '../bootstrap.ts';
import type { Fence, Lease } from '../jobs.ts';

export type BootstrapRow = typeof bootstrapJobs.$inferSelect;
export type { BootstrapJob, BootstrapPatch };

/** Thrown inside a transaction to roll it back when a compare-and-set fails (atomicallyIf). */
class Rollback extends Error {}

function toJob(r: BootstrapRow): BootstrapJob {
  if (!isBootstrapState(r.state)) throw new Error(`bootstrap job ${r.id} has unknown state ${r.state}`);
  const { relaysJson, ...rest } = r;
  return { ...rest, state: r.state, relays: JSON.parse(relaysJson) as string[] };
}

export async function getBootstrap(q: PgQ, id: string): Promise<BootstrapJob | undefined> {
  const rows = await q.select().from(bootstrapJobs).where(eq(bootstrapJobs.id, id)).limit(1);
  return rows[0] && toJob(rows[0]);
}

export async function bootstrapExists(q: PgQ, id: string): Promise<boolean> {
  const rows = await q.select({ id: bootstrapJobs.id }).from(bootstrapJobs).where(eq(bootstrapJobs.id, id)).limit(1);
  return rows.length > 0;
}

export async function createBootstrap(q: PgQ, row: typeof bootstrapJobs.$inferInsert, invoice: NewBookInvoice, intents: PublishIntent[]): Promise<boolean> {
  const now = Date.now();
  return q.transaction(async (tx) => {
    const r = await tx.insert(bootstrapJobs).values(row).onConflictDoNothing().returning({ id: bootstrapJobs.id });
    if (r.length !== 1) return false;
    await insertInvoice(tx, invoice, now);
    await insertIntents(tx, row.id, intents, now);
    return true;
  });
}

/**
 * Moves a job from `from` to `to` with its patch, events and credits, atomically; false if not in `from`
 * (or, with `settle`, if this call did not mark the invoice), and then nothing is written.
 */
export async function moveBootstrap(
  q: PgQ,
  a: {
    id: string;
    from: BootstrapState;
    to: BootstrapState | null;
    patch?: BootstrapPatch;
    intents?: PublishIntent[];
    credits?: CreditEntry[];
    settle?: { paymentHash: string; status: 'paid' | 'expired' | 'withdrawn' };
    lease?: Lease;
    fence?: Fence;
  },
): Promise<boolean> {
  const now = Date.now();
  try {
    return await q.transaction(async (tx) => {
      const set: Record<string, unknown> = { ...a.patch, updatedAt: now };
      if (a.to) set.state = a.to;
      if (a.lease) Object.assign(set, { leaseOwner: a.lease.owner, leaseUntil: sql`${DB_NOW_MS} + ${a.lease.ms}`, leaseEpoch: sql`${bootstrapJobs.leaseEpoch} + 1` });
      else if (a.fence && a.to) Object.assign(set, { leaseOwner: null, leaseUntil: null });
      const fenced = a.fence ? [eq(bootstrapJobs.leaseOwner, a.fence.owner), eq(bootstrapJobs.leaseEpoch, a.fence.epoch)] : [];
      const r = await tx
        .update(bootstrapJobs)
        .set(set)
        .where(and(eq(bootstrapJobs.id, a.id), eq(bootstrapJobs.state, a.from), ...fenced))
        .returning({ id: bootstrapJobs.id });
      if (r.length !== 1) throw new Rollback();
      if (a.settle && !(await markInvoice(tx, a.settle.paymentHash, a.settle.status, now))) throw new Rollback();
      await insertIntents(tx, a.id, a.intents ?? [], now);
      for (const c of a.credits ?? []) await addCredit(tx, c);
      return true;
    });
  } catch (err) {
    if (err instanceof Rollback) return false;
    throw err;
  }
}

export async function listBootstraps(q: PgQ, states: BootstrapState[]): Promise<BootstrapJob[]> {
  const rows = await q.select().from(bootstrapJobs).where(inArray(bootstrapJobs.state, states));
  return rows.map(toJob);
}

/** Node orders, newest first (optionally only those in `states`), for the operator's listing. */
export async function listNodeOrders(q: PgQ, opts: { states?: BootstrapState[]; limit: number }): Promise<BootstrapJob[]> {
  const base = q.select().from(bootstrapJobs);
  const ordered = (opts.states?.length ? base.where(inArray(bootstrapJobs.state, opts.states)) : base).orderBy(desc(bootstrapJobs.createdAt));
  const rows = await (opts.limit < 0 ? ordered : ordered.limit(opts.limit)); // SQLite: a negative limit is none
  return rows.map(toJob);
}

/** Ready jobs still holding credentials since before `beforeMs` (the TTL pass). */
export async function staleCredentials(q: PgQ, beforeMs: number): Promise<BootstrapJob[]> {
  const rows = await q
    .select()
    .from(bootstrapJobs)
    .where(and(isNotNull(bootstrapJobs.secretsEnc), lte(bootstrapJobs.readyAt, beforeMs)))
    .limit(500);
  return rows.map(toJob);
}

/** Unpaid node orders of one customer (or client address), counted up to `upTo` (a bounded index range). */
export async function countUnpaidBootstraps(q: PgQ, by: { customerPubkey: string } | { clientAddress: string }, upTo: number): Promise<number> {
  const cond = 'customerPubkey' in by ? eq(bootstrapJobs.customerPubkey, by.customerPubkey) : eq(bootstrapJobs.clientAddress, by.clientAddress);
  const unpaid = q
    .select({ one: sql`1`.as('one') })
    .from(bootstrapJobs)
    .where(and(cond, sql`${bootstrapJobs.state} = 'awaiting_payment'`));
  const capped = (upTo < 0 ? unpaid : unpaid.limit(upTo)).as('capped'); // SQLite: a negative limit is none
  const rows = await q.select({ n: sql<number>`count(*)`.mapWith(Number) }).from(capped);
  return rows[0]?.n ?? 0;
}

/**
 * Erases the credentials. Returns whether this call erased them. Unlike SQLite (secure_delete plus a WAL
 * checkpoint), PostgreSQL cannot promise the old row version is gone: it stays in the heap until vacuum
 * reuses the space, and in the WAL, its archives and any replica (docs/scale-out.md, risk 1).
 */
export async function eraseCredentials(q: PgQ, id: string, toState: BootstrapState | null): Promise<boolean> {
  const now = Date.now();
  const set: BootstrapPatch & { state?: string } = { secretsEnc: null, claimTokenHash: null, erasedAt: now, updatedAt: now };
  if (toState) set.state = toState;
  const r = await q
    .update(bootstrapJobs)
    .set(set)
    .where(and(eq(bootstrapJobs.id, id), isNotNull(bootstrapJobs.secretsEnc)))
    .returning({ id: bootstrapJobs.id });
  return r.length === 1;
}
