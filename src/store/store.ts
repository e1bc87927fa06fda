// The store as the core and the transports see it: one async interface, two engines behind it (SQLite,
// embedded, one process; PostgreSQL, several workers). Every op is a promise; an op called on the root
// store is its own transaction, an op called on the `t` a transaction hands its callback runs inside it.
// A transaction's callback does store work only: no network call, no timer, no wait on anything else.
//
// The op names are the SQLite modules' function names without their first (`db`) parameter; both engines
// implement exactly this list, so a function added to a module is invisible until it is listed here.
import type * as jobs from './jobs.ts';
import type * as invoices from './invoices.ts';
import type * as credits from './credits.ts';
import type * as sessions from './sessions.ts';
import type * as outbox from './outbox.ts';
import type * as bootstrap from './bootstrap.ts';
import type * as zaps from './zaps.ts';
import type * as kv from './kv.ts';
import type * as stubInvoices from './stub-invoices.ts';
import type * as money from './money.ts';
import type * as leases from './leases.ts';
import type * as limits from './limits.ts';

/** A store function `(db, ...args) => R` as an op `(...args) => Promise<R>`. */
type Op<F> = F extends (db: never, ...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
type Ops<M, K extends keyof M> = { readonly [P in K]: Op<M[P]> };

export const OPS = {
  jobs: ['getJob', 'jobExists', 'unpaidNostrJobIds', 'listJobs', 'countJobsOf', 'createJob', 'createSessionJob', 'transitionJob', 'countJobsByState', 'purgeUnserved'],
  invoices: ['openInvoiceCount', 'insertInvoice', 'recordInvoice', 'getInvoice', 'markInvoice', 'expireInvoice', 'recountOpenInvoices', 'dueInvoices', 'liveInvoices', 'oldestOpen', 'invoicesOf', 'countInvoices', 'settleLate'],
  credits: ['addCredit', 'creditBalanceMsats', 'creditEntries', 'creditBalances'],
  sessions: ['getSession', 'balanceMsats', 'addLedger', 'ledger', 'createSession', 'moveSession', 'purgeUnpaidSession', 'idleSessions', 'countSessionsOf', 'openReservations', 'reservedFor', 'debitedFor'],
  outbox: ['insertIntents', 'unsignedIntents', 'storeSigned', 'unackedEvents', 'notAckedBy', 'noteAttempt', 'recordAcks', 'outboxDepth', 'outboxForJob', 'dropIntent', 'claimOutbox', 'holdsUnacked', 'releaseOutbox'],
  bootstrap: ['getBootstrap', 'bootstrapExists', 'createBootstrap', 'moveBootstrap', 'listBootstraps', 'listNodeOrders', 'staleCredentials', 'countUnpaidBootstraps', 'eraseCredentials'],
  zaps: ['insertZap', 'getZap', 'settleZap', 'jobOfEvent', 'openSessionInvoiceOf'],
  kv: ['getKv', 'setKv', 'addToNumber', 'setMaxNumber', 'getOrCreate'],
  stubInvoices: ['insertStubInvoice', 'getStubInvoice', 'markStubInvoicePaid', 'paidSince'],
  leases: ['renewLeases', 'claimLeases', 'releaseLeases', 'claimRequest', 'pruneRequestClaims', 'releaseRequest'],
  limits: ['take', 'prune', 'holdCaps'],
  money: [
    'receivedMsats', 'sessionDebitsMsats', 'modelUsage', 'sessionsHeldMsats', 'creditsOwedMsats', 'countNodeOrdersByState', 'recentErrors',
    'moneySeries', 'processingLatencies', 'relayAcks', 'listSessionSummaries', 'eventsWithAcks', 'ledgersOfJob', 'changeCount',
  ],
} as const;

type Names<G extends keyof typeof OPS> = (typeof OPS)[G][number];

export interface StoreOps {
  readonly jobs: Ops<typeof jobs, Names<'jobs'>>;
  readonly invoices: Ops<typeof invoices, Names<'invoices'>>;
  readonly credits: Ops<typeof credits, Names<'credits'>>;
  readonly sessions: Ops<typeof sessions, Names<'sessions'>>;
  readonly outbox: Ops<typeof outbox, Names<'outbox'>>;
  readonly bootstrap: Ops<typeof bootstrap, Names<'bootstrap'>>;
  readonly zaps: Ops<typeof zaps, Names<'zaps'>>;
  readonly kv: Ops<typeof kv, Names<'kv'>>;
  readonly stubInvoices: Ops<typeof stubInvoices, Names<'stubInvoices'>>;
  readonly limits: Ops<typeof limits, Names<'limits'>>;
  readonly money: Ops<typeof money, Names<'money'>>;
  readonly leases: Ops<typeof leases, Names<'leases'>>;
  /**
   * Runs `fn` once the enclosing transaction has committed (at once on the root store): what must not
   * start before the state it acts on is visible to everyone (a job step, a wake-up).
   */
  afterCommit(fn: () => void): void;
}

export interface Store extends StoreOps {
  readonly dialect: 'sqlite' | 'pg';
  /** One transaction; `t`'s ops run inside it. Rolls back whole when `fn` throws. */
  tx<T>(fn: (t: StoreOps) => Promise<T>): Promise<T>;
  /** As `tx`, committing only when `fn` resolves true (a failed compare-and-set rolls back). */
  txIf(fn: (t: StoreOps) => Promise<boolean>): Promise<boolean>;
  /**
   * As `tx`; the engine may share one commit between the grouped writes of the moment (SQLite: every
   * grouped write of one event-loop turn, each in its own savepoint). A throw undoes only this one.
   */
  group<T>(fn: (t: StoreOps) => Promise<T>): Promise<T>;
  /** Cheap reads that fail when the store cannot serve requests (the health route). */
  health(): Promise<void>;
  close(): Promise<void>;
}

type StoreFn = (handle: never, ...args: unknown[]) => unknown;

/**
 * Binds every op of `OPS` to an engine's modules: `call(f, args)` runs store function `f` with its arguments
 * (each engine supplies its handle and its way of running). A listed op a module lacks fails at once.
 */
export function bindOps(
  modules: { readonly [G in keyof typeof OPS]: object },
  call: (f: StoreFn, args: unknown[]) => Promise<unknown>,
  afterCommit: (fn: () => void) => void,
): StoreOps {
  const out: Record<string, unknown> = { afterCommit };
  for (const [group, names] of Object.entries(OPS)) {
    const mod = modules[group as keyof typeof OPS] as Record<string, StoreFn>;
    const bound: Record<string, unknown> = {};
    for (const name of names) {
      const f = mod[name];
      if (typeof f !== 'function') throw new Error(`store op ${group}.${name} is not implemented`);
      bound[name] = (...args: unknown[]) => call(f, args);
    }
    out[group] = Object.freeze(bound);
  }
  return out as unknown as StoreOps;
}

/** The root ops of a store as properties (`store.jobs.getJob(…)`): what both engines expose the same way. */
export abstract class StoreFront implements StoreOps {
  protected abstract readonly root: StoreOps;
  get jobs() { return this.root.jobs; }
  get invoices() { return this.root.invoices; }
  get credits() { return this.root.credits; }
  get sessions() { return this.root.sessions; }
  get outbox() { return this.root.outbox; }
  get bootstrap() { return this.root.bootstrap; }
  get zaps() { return this.root.zaps; }
  get kv() { return this.root.kv; }
  get stubInvoices() { return this.root.stubInvoices; }
  get limits() { return this.root.limits; }
  get money() { return this.root.money; }
  get leases() { return this.root.leases; }
  afterCommit(fn: () => void): void {
    fn(); // the root store has no open transaction: at once
  }

  abstract txIf(fn: (t: StoreOps) => Promise<boolean>): Promise<boolean>;

  /** One transaction; `t`'s ops run inside it. Rolls back whole when `fn` throws. */
  async tx<T>(fn: (t: StoreOps) => Promise<T>): Promise<T> {
    let value!: T;
    await this.txIf(async (t) => {
      value = await fn(t);
      return true;
    });
    return value;
  }
}
