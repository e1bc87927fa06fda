// The Store over PostgreSQL: a pool shared by the ops. A root op that writes several rows runs its own
// transaction; inside `tx` every op runs on the transaction's connection (a nested one is a savepoint).
// READ COMMITTED: every move is a compare-and-set (`update … where state = $from`), which a concurrent
// mover waits on and then finds false; cross-row rules (balances, caps) take row or advisory locks.
import { sql } from 'drizzle-orm';
import * as jobs from './jobs.ts';
import * as invoices from './invoices.ts';
import * as credits from './credits.ts';
import * as sessions from './sessions.ts';
import * as outbox from './outbox.ts';
import * as bootstrap from './bootstrap.ts';
import * as zaps from './zaps.ts';
import * as kv from './kv.ts';
import * as stubInvoices from './stub-invoices.ts';
import * as money from './money.ts';
import * as leases from './leases.ts';
import * as limits from './limits.ts';
import { bindOps, OPS, StoreFront, type Store, type StoreOps } from '../store.ts';
import { openPgDb, type PgDb, type PgQ } from './db.ts';

const MODULES = { jobs, invoices, credits, sessions, outbox, bootstrap, zaps, kv, stubInvoices, limits, money, leases } as const;

type Fn = (q: PgQ, ...args: unknown[]) => Promise<unknown>;

/** Compile-time lockstep: every PostgreSQL module provides the ops the interface lists, with the same types. */
type PgOp<F> = F extends (q: PgQ, ...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
type PgOps<M, K extends keyof M> = { readonly [P in K]: PgOp<M[P]> };
type Names<G extends keyof typeof OPS> = (typeof OPS)[G][number];
export const PG_OPS_MATCH: {
  [G in keyof typeof OPS]: PgOps<(typeof MODULES)[G], Names<G> & keyof (typeof MODULES)[G]> extends StoreOps[G] ? true : never;
} = { jobs: true, invoices: true, credits: true, sessions: true, outbox: true, bootstrap: true, zaps: true, kv: true, stubInvoices: true, limits: true, money: true, leases: true };

class Rollback extends Error {}

/** Deadlocks and serialization failures: the transaction did nothing and may be run again. */
const RETRYABLE = new Set(['40001', '40P01']);

export class PgStore extends StoreFront implements Store {
  readonly dialect = 'pg';
  protected readonly root: StoreOps;

  constructor(readonly db: PgDb) {
    super();
    this.root = this.ops(db, (fn) => fn());
  }

  private ops(q: PgQ, afterCommit: (fn: () => void) => void): StoreOps {
    return bindOps(MODULES, (f, args) => (f as Fn)(q, ...args), afterCommit);
  }

  async txIf(fn: (t: StoreOps) => Promise<boolean>): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const post: (() => void)[] = [];
      try {
        await this.db.transaction(async (tx) => {
          if (!(await fn(this.ops(tx, (f) => post.push(f))))) throw new Rollback();
        });
      } catch (err) {
        if (err instanceof Rollback) return false;
        const code = (err as { code?: string }).code;
        if (code && RETRYABLE.has(code) && attempt < 3) continue; // the callback is store work only: safe to run again
        throw err;
      }
      for (const f of post) f();
      return true;
    }
  }

  group<T>(fn: (t: StoreOps) => Promise<T>): Promise<T> {
    return this.tx(fn);
  }

  async health(): Promise<void> {
    await this.db.execute(sql`select id from jobs order by created_at desc limit 1`);
    await this.db.execute(sql`select payment_hash from invoice_book where status = 'open' limit 1`);
  }

  async close(): Promise<void> {
    await this.db.$client.end();
  }
}

/** Opens the PostgreSQL store at `url`, migrated (or, read-only, refusing an out-of-date schema). */
export async function openPgStore(url: string, opts: { migrate?: boolean } = {}): Promise<PgStore> {
  return new PgStore(await openPgDb(url, opts));
}
