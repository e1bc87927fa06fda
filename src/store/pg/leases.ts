// Work leases over PostgreSQL: ../leases.ts, on the database's clock; a takeover skips rows another worker is
// taking at the same moment (FOR UPDATE SKIP LOCKED), so each expired step goes to one worker.
import { sql } from 'drizzle-orm';
import { DB_NOW_MS, type PgQ } from './db.ts';
import { WORKING, type Claimed, type LeaseTable } from '../leases.ts';

export type { Claimed, LeaseTable };

export async function renewLeases(q: PgQ, table: LeaseTable, owner: string, held: { id: string; epoch: number }[], ms: number): Promise<string[]> {
  if (held.length === 0) return [];
  const w = WORKING[table];
  const r = await q.execute<{ id: string }>(sql`
    update ${sql.raw(w.table)} set lease_until = ${DB_NOW_MS} + ${ms}
     where lease_owner = ${owner} and state in ${sql.raw(w.states)}
       and (id, lease_epoch) in (select * from unnest(${sql.param(held.map((h) => h.id))}::text[], ${sql.param(held.map((h) => h.epoch))}::int[]))
    returning id`);
  return r.rows.map((x) => x.id);
}

export async function claimLeases(q: PgQ, table: LeaseTable, owner: string, ms: number, opts: { limit: number; includeOwn?: boolean; all?: boolean }): Promise<Claimed[]> {
  const w = WORKING[table];
  const r = await q.execute<{ id: string; epoch: number; previous_owner: string | null }>(sql`
    update ${sql.raw(w.table)} t set lease_owner = ${owner}, lease_until = ${DB_NOW_MS} + ${ms}, lease_epoch = t.lease_epoch + 1
      from (select id, lease_owner from ${sql.raw(w.table)}
             where state in ${sql.raw(w.states)}
               and (${opts.all ?? false} or lease_until is null or lease_until < ${DB_NOW_MS} or (${opts.includeOwn ?? false} and lease_owner = ${owner}))
             order by lease_until nulls first limit ${opts.limit}
             for update skip locked) c
     where t.id = c.id
    returning t.id, t.lease_epoch as epoch, c.lease_owner as previous_owner`);
  return r.rows.map((x) => ({ id: x.id, epoch: Number(x.epoch), previousOwner: x.previous_owner }));
}

/** ../leases.ts releaseLeases: `owner`'s leases run out now; owner and epoch stay. */
export async function releaseLeases(q: PgQ, table: LeaseTable, owner: string): Promise<number> {
  const w = WORKING[table];
  const r = await q.execute(sql`update ${sql.raw(w.table)} set lease_until = 0 where lease_owner = ${owner} and state in ${sql.raw(w.states)}`);
  return r.rowCount ?? 0;
}

/**
 * Claims a Nostr request for `owner` to answer, for `ms`: true when it had no claim, its claim ran out (that
 * worker died before recording the job) or `owner` holds it already. Every worker hears each request; the one
 * that claims it invoices it, the others look again once the claim could have run out.
 */
export async function claimRequest(q: PgQ, id: string, owner: string, ms: number): Promise<boolean> {
  const r = await q.execute(sql`
    insert into request_claims as c (id, owner, until) values (${id}, ${owner}, ${DB_NOW_MS} + ${ms})
    on conflict (id) do update set owner = excluded.owner, until = excluded.until
     where c.until < ${DB_NOW_MS} or c.owner = excluded.owner
    returning c.id`);
  return r.rows.length === 1;
}

/** Drops request claims that ran out before `beforeMs`. */
export async function pruneRequestClaims(q: PgQ, beforeMs: number): Promise<number> {
  const r = await q.execute(sql`delete from request_claims where until < ${beforeMs}`);
  return r.rowCount ?? 0;
}

/** ../leases.ts releaseRequest. */
export async function releaseRequest(q: PgQ, id: string, owner: string): Promise<void> {
  await q.execute(sql`delete from request_claims where id = ${id} and owner = ${owner}`);
}
