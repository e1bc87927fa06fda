// Work leases (SQLite): who runs a job's step (evaluating, executing) or an order's provisioning, until when.
// A lease is taken with the move into the step (transitionJob / moveBootstrap `lease`), renewed by its holder,
// taken over here once it ran out, and named by every move out of the step (`fence`).
import type { Db } from './db.ts';
import { atomically } from './db.ts';

export type LeaseTable = 'jobs' | 'bootstrap';

/** A step taken over: its new epoch, and who held it before (null: nobody, e.g. a store from before leases). */
export interface Claimed {
  id: string;
  epoch: number;
  previousOwner: string | null;
}

export const WORKING: Record<LeaseTable, { table: string; states: string }> = {
  jobs: { table: 'jobs', states: "('evaluating', 'executing')" },
  bootstrap: { table: 'bootstrap_jobs', states: "('provisioning')" },
};

/** Extends `owner`'s leases on `held` (id at epoch) by `ms` from now; returns the ids it still holds. */
export function renewLeases(db: Db, table: LeaseTable, owner: string, held: { id: string; epoch: number }[], ms: number): string[] {
  if (held.length === 0) return [];
  const w = WORKING[table];
  const q = db.$client.prepare(`update ${w.table} set lease_until = ? where id = ? and lease_owner = ? and lease_epoch = ? and state in ${w.states}`);
  const until = Date.now() + ms;
  return atomically(db, () => held.filter((h) => q.run(until, h.id, owner, h.epoch).changes === 1).map((h) => h.id));
}

/**
 * Takes up to `limit` steps whose lease ran out or that have none; `includeOwn` also takes those held under
 * this owner's name (a restart with the same WORKER_ID), `all` every step (SQLite at start: the data
 * directory's lock proves the previous process is gone).
 */
export function claimLeases(db: Db, table: LeaseTable, owner: string, ms: number, opts: { limit: number; includeOwn?: boolean; all?: boolean }): Claimed[] {
  const w = WORKING[table];
  const now = Date.now();
  return atomically(db, () => {
    const due = db.$client
      .prepare(
        `select id, lease_owner as owner from ${w.table} where state in ${w.states}
           and (? or lease_until is null or lease_until < ? or (? and lease_owner = ?))
         order by lease_until limit ?`,
      )
      .all(opts.all ? 1 : 0, now, opts.includeOwn ? 1 : 0, owner, opts.limit) as { id: string; owner: string | null }[];
    const take = db.$client.prepare(`update ${w.table} set lease_owner = ?, lease_until = ?, lease_epoch = lease_epoch + 1 where id = ? returning lease_epoch as epoch`);
    return due.map((r) => ({ id: r.id, epoch: (take.get(owner, now + ms, r.id) as { epoch: number }).epoch, previousOwner: r.owner }));
  });
}

/**
 * Lets `owner`'s leases run out now (a graceful stop that left steps running): another worker's sweep takes
 * them over at once. Owner and epoch stay, so a step that still commits before the takeover is not refused.
 */
export function releaseLeases(db: Db, table: LeaseTable, owner: string): number {
  const w = WORKING[table];
  return db.$client.prepare(`update ${w.table} set lease_until = 0 where lease_owner = ? and state in ${w.states}`).run(owner).changes;
}

/**
 * Claims a Nostr request for `owner` to answer (pg/leases.ts: every worker hears it, one invoices it). On
 * SQLite the data directory's lock makes this process the only worker: every request is its own, nothing is
 * written.
 */
export function claimRequest(db: Db, id: string, owner: string, ms: number): boolean {
  void db, id, owner, ms;
  return true;
}

/** Drops request claims that ran out before `beforeMs` (SQLite: none are written). */
export function pruneRequestClaims(db: Db, beforeMs: number): number {
  void db, beforeMs;
  return 0;
}

/** Gives a request claim up (nothing was recorded for it: a stop, an error), so another worker answers at once. */
export function releaseRequest(db: Db, id: string, owner: string): void {
  void db, id, owner;
}
