// The leases of one worker on one kind of step (a job's evaluation or work; a node order's provisioning).
// A step is run by the worker that holds its lease: taken with the move into the step, renewed here every
// third of its length while the step runs, and taken over by another worker's sweep once it ran out (its
// worker died or froze). Every move out of a step names the lease (a fence), so a worker that lost it can
// no longer commit: the customer sees one result and pays once.
import type { Logger } from '../log.ts';
import type { Claimed, LeaseTable } from '../store/leases.ts';
import type { Store } from '../store/store.ts';
import type { Worker } from './job-moves.ts';

export interface LeaseKeeperDeps {
  store: Store;
  table: LeaseTable;
  worker: Worker;
  log: Logger;
  /** A step this worker took over (or found unowned): run it. */
  onClaimed(claimed: Claimed): void;
}

export class LeaseKeeper {
  private readonly held = new Map<string, number>(); // id -> epoch of the leases being renewed
  private timers: NodeJS.Timeout[] = [];
  private sweeping = false;

  constructor(private readonly d: LeaseKeeperDeps) {}

  /** Renews this lease while the step runs. */
  hold(id: string, epoch: number): void {
    this.held.set(id, epoch);
  }

  /** The step ended (or moved on): stop renewing this lease. */
  release(id: string, epoch: number): void {
    if (this.held.get(id) === epoch) this.held.delete(id);
  }

  /** Takes the steps owed after a restart (own or unowned, or all with SQLite), then keeps renewing and sweeping. */
  async start(): Promise<void> {
    // SQLite: one process per store (the data directory's lock), so at start every step is this one's to take.
    await this.sweep({ includeOwn: true, all: this.d.store.dialect === 'sqlite' });
    const ms = this.d.worker.leaseMs;
    this.timers = [
      setInterval(() => void this.renew(), Math.max(200, Math.floor(ms / 3))),
      setInterval(() => void this.sweep({}), Math.max(100, Math.min(1000, Math.floor(ms / 4)))),
    ];
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** After a graceful stop's grace: steps still running here are given up, so another worker takes them at once. */
  async giveUp(): Promise<void> {
    this.held.clear();
    try {
      const n = await this.d.store.leases.releaseLeases(this.d.table, this.d.worker.id);
      if (n > 0) this.d.log.info({ steps: n, worker: this.d.worker.id }, 'stopping: unfinished steps given up to the other workers');
    } catch (err) {
      this.d.log.warn({ err }, 'giving leases up failed; they run out instead');
    }
  }

  private async renew(): Promise<void> {
    const held = [...this.held].map(([id, epoch]) => ({ id, epoch }));
    if (held.length === 0) return;
    try {
      const kept = new Set(await this.d.store.leases.renewLeases(this.d.table, this.d.worker.id, held, this.d.worker.leaseMs));
      for (const h of held) {
        if (kept.has(h.id) || this.held.get(h.id) !== h.epoch) continue;
        this.held.delete(h.id);
        // Its commit will be refused (fenced); whoever took it over runs the step.
        this.d.log.warn({ [this.d.table === 'jobs' ? 'jobId' : 'bootstrapId']: h.id, worker: this.d.worker.id }, 'lease lost: another worker took this step over');
      }
    } catch (err) {
      this.d.log.warn({ err }, 'lease renewal failed; trying again');
    }
  }

  /** Takes over steps whose lease ran out, a page at a time. */
  private async sweep(opts: { includeOwn?: boolean; all?: boolean }): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (;;) {
        const limit = opts.all ? 1_000_000 : 100; // all: one page (every step is taken at once)
        const claimed = await this.d.store.leases.claimLeases(this.d.table, this.d.worker.id, this.d.worker.leaseMs, { limit, ...opts });
        for (const c of claimed) {
          if (c.previousOwner && c.previousOwner !== this.d.worker.id) {
            this.d.log.warn({ [this.d.table === 'jobs' ? 'jobId' : 'bootstrapId']: c.id, from: c.previousOwner, to: this.d.worker.id }, 'lease taken over');
          }
          this.d.onClaimed(c);
        }
        if (claimed.length < limit || opts.all) return;
      }
    } catch (err) {
      this.d.log.warn({ err }, 'lease sweep failed; trying again');
    } finally {
      this.sweeping = false;
    }
  }
}
