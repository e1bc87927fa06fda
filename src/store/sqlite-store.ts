// The Store over SQLite: one connection, the synchronous store modules unchanged underneath. An op runs
// its statements when called and hands back a settled promise, so the order of writes is the order of
// calls. A transaction holds a writer gate: root ops called by other tasks while it is open wait for it,
// so nothing else's statement can land inside it (they share the connection).
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
import { closeDb, openDb, openDbReadOnly, type Db } from './db.ts';
import { bindOps, StoreFront, type Store, type StoreOps } from './store.ts';

const MODULES = { jobs, invoices, credits, sessions, outbox, bootstrap, zaps, kv, stubInvoices, limits, money, leases } as const;

type Fn = (db: Db, ...args: unknown[]) => unknown;

/** Runs a synchronous call as an op: its value or its throw as a settled promise. */
function settled<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err);
  }
}

class Rollback extends Error {}

export class SqliteStore extends StoreFront implements Store {
  readonly dialect = 'sqlite';
  private gate: Promise<void> | null = null;
  protected readonly root: StoreOps;
  private readonly inTx: StoreOps; // the ops a transaction's callback gets (one transaction at a time: the gate)
  private post: (() => void)[] = []; // what waits for the open transaction's commit
  private groupQueue: { fn: (t: StoreOps) => Promise<unknown>; resolve: (v: unknown) => void; reject: (err: unknown) => void }[] | null = null;

  constructor(readonly db: Db) {
    super();
    this.root = this.ops((call) => (this.gate ? this.afterGate(call) : settled(call)), (fn) => fn());
    this.inTx = this.ops(settled, (fn) => this.post.push(fn));
  }

  private async afterGate<T>(call: () => T): Promise<T> {
    while (this.gate) await this.gate;
    return call();
  }

  /** Binds every listed store function to this connection, run through `run`. */
  private ops(run: <T>(call: () => T) => Promise<T>, afterCommit: (fn: () => void) => void): StoreOps {
    return bindOps(MODULES, (f, args) => run(() => (f as Fn)(this.db, ...args)), afterCommit);
  }

  /** Holds the writer gate around `body`; ops on `t` run directly, root ops of other tasks wait. */
  private async gated<T>(body: (t: StoreOps, post: (() => void)[]) => Promise<T>): Promise<T> {
    while (this.gate) await this.gate;
    let open!: () => void;
    this.gate = new Promise((r) => (open = r));
    const post: (() => void)[] = (this.post = []);
    const t = this.inTx;
    // A transaction's statements all run within one turn of the event loop (ops settle at once); one still
    // open at the next turn is waiting on I/O or on a root op queued behind its own gate (a deadlock).
    const tripwire = setImmediate(() => {
      const msg = 'a store transaction stayed open past its event-loop turn: it awaits I/O or a root store op (use the transaction\'s ops)';
      console.error(msg);
      if (process.env.VITEST) throw new Error(msg);
    });
    try {
      return await body(t, post);
    } finally {
      clearImmediate(tripwire);
      this.gate = null;
      open();
    }
  }

  async txIf(fn: (t: StoreOps) => Promise<boolean>): Promise<boolean> {
    const client = this.db.$client;
    let post: (() => void)[] = [];
    const committed = await this.gated(async (t, p) => {
      post = p;
      client.exec('BEGIN IMMEDIATE');
      try {
        if (!(await fn(t))) throw new Rollback();
        client.exec('COMMIT');
        return true;
      } catch (err) {
        if (client.inTransaction) client.exec('ROLLBACK');
        if (err instanceof Rollback) return false;
        throw err;
      }
    });
    if (committed) for (const f of post) f();
    return committed;
  }

  /**
   * Group commit: `fn` runs in its own savepoint inside one transaction shared with every other grouped
   * write of this event-loop turn, and resolves once that transaction has committed. A commit costs far
   * more than the statements of one job (WAL pages, checkpoints); a burst of requests pays for one.
   */
  group<T>(fn: (t: StoreOps) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.groupQueue) {
        this.groupQueue = [];
        setImmediate(() => void this.flushGroup());
      }
      this.groupQueue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  private async flushGroup(): Promise<void> {
    const queue = this.groupQueue ?? [];
    this.groupQueue = null;
    const client = this.db.$client;
    const results: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    let post: (() => void)[] = [];
    try {
      await this.gated(async (t, p) => {
        post = p;
        client.exec('BEGIN IMMEDIATE');
        try {
          for (const item of queue) {
            const mark = post.length;
            client.exec('SAVEPOINT grouped');
            try {
              results.push({ ok: true, value: await item.fn(t) });
              client.exec('RELEASE grouped');
            } catch (err) {
              results.push({ ok: false, err });
              post.length = mark; // its after-commit work goes with it
              // Some errors (disk full, I/O) end the whole transaction: run nothing more outside it.
              if (!client.inTransaction) throw err;
              client.exec('ROLLBACK TO grouped');
              client.exec('RELEASE grouped');
            }
          }
          client.exec('COMMIT');
        } catch (err) {
          if (client.inTransaction) client.exec('ROLLBACK');
          throw err;
        }
      });
    } catch (err) {
      for (const item of queue) item.reject(err); // the transaction failed: nothing of the group was written
      return;
    }
    for (const f of post) f();
    queue.forEach((item, i) => {
      const r = results[i]!;
      if (r.ok) item.resolve(r.value);
      else item.reject(r.err);
    });
  }

  async health(): Promise<void> {
    await this.afterGate(() => {
      this.db.$client.prepare('select id from jobs order by created_at desc limit 1').get();
      this.db.$client.prepare("select payment_hash from invoice_book where status = 'open' limit 1").get();
    });
  }

  async close(): Promise<void> {
    while (this.gate) await this.gate;
    closeDb(this.db);
  }
}

/** Opens (creating if needed) the SQLite store at `path`, migrated. */
export function openSqliteStore(path: string): SqliteStore {
  return new SqliteStore(openDb(path));
}

/** Opens an existing SQLite store for reading only (see openDbReadOnly). */
export function openSqliteStoreReadOnly(path: string): SqliteStore {
  return new SqliteStore(openDbReadOnly(path));
}
