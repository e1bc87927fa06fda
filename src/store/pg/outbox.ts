// The outbox over PostgreSQL: ../outbox.ts with the same results; a page of signatures or acks is one
// statement per step instead of one per row. Intents are recorded with their transition, signed once
// (`… where signed_json is null`: a second signer waits for the first and then updates nothing), acked per relay.
import { and, asc, count, eq, gt, isNull, isNotNull, sql, type SQL } from 'drizzle-orm';
import { outbox, outboxAcks } from '../../../schema/tables-pg.ts';
import { DB_NOW_MS, type PgQ } from './db.ts';
import { int8 } from './credits.ts';
import type { OutboxRow, PublishIntent } from '../../core/types.ts';
import { toRow as rowOf, type OutboxClaim, type RelayAck } from '../outbox.ts';

export type { OutboxClaim, OutboxRow, RelayAck };

const toRow = (r: typeof outbox.$inferSelect): OutboxRow => rowOf(r); // the SQLite module's mapping: same columns

/** Called inside the transition's transaction. One insert: ids follow the intents' order. */
export async function insertIntents(q: PgQ, jobId: string | null, intents: PublishIntent[], nowMs: number): Promise<void> {
  if (intents.length === 0) return;
  await q.insert(outbox).values(intents.map((intent) => ({ jobId, intentJson: JSON.stringify(intent), createdAt: nowMs })));
}

export async function unsignedIntents(q: PgQ, afterId = 0, limit = 200): Promise<OutboxRow[]> {
  const rows = await q
    .select()
    .from(outbox)
    .where(and(isNull(outbox.signedJson), gt(outbox.id, afterId)))
    .orderBy(asc(outbox.id))
    .limit(limit);
  return rows.map(toRow);
}

/** Stores signed events (a page at once, one statement); returns the ids stored (another signer may have been first). */
export async function storeSigned(q: PgQ, rows: { id: number; eventId: string; signedJson: string }[]): Promise<number[]> {
  // A row listed twice is stored by its first listing (as SQLite's one-by-one updates do).
  const first = new Map<number, { id: number; eventId: string; signedJson: string }>();
  for (const r of rows) if (!first.has(r.id)) first.set(r.id, r);
  if (first.size === 0) return [];
  const page = [...first.values()].sort((a, b) => a.id - b.id); // rows locked in id order
  const at = Date.now();
  const res = await q.execute(sql`
    update ${outbox} set event_id = v.event_id, signed_json = v.signed_json, signed_at = ${at}
      from unnest(${sql.param(page.map((r) => r.id))}::bigint[], ${sql.param(page.map((r) => r.eventId))}::text[],
                  ${sql.param(page.map((r) => r.signedJson))}::text[]) as v(id, event_id, signed_json)
     where ${outbox.id} = v.id and ${outbox.signedJson} is null
    returning ${outbox.id} as id`);
  const stored = new Set(res.rows.map((r) => int8(r.id)));
  return rows.filter((r) => first.get(r.id) === r && stored.has(r.id)).map((r) => r.id);
}

/** Signed events no relay has acked yet, recorded after `sinceMs`, oldest first. */
export async function unackedEvents(q: PgQ, limit = 200, sinceMs = 0): Promise<OutboxRow[]> {
  const rows = await q
    .select()
    .from(outbox)
    .where(and(isNotNull(outbox.signedJson), isNull(outbox.ackedAt), gt(outbox.createdAt, sinceMs)))
    .orderBy(asc(outbox.id))
    .limit(limit);
  return rows.map(toRow);
}

/**
 * Claims rows for `owner` to send, oldest first: those nobody holds, whose lease ran out (their worker died or
 * froze) or that `owner` already holds (renewed). Each is leased to `owner` for `ms` on the database's clock;
 * rows another worker is claiming at the same moment are skipped (FOR UPDATE SKIP LOCKED), so each event is
 * sent by one worker at a time, and by another once its worker is gone.
 *
 * `missed` (a relay's catch-up) takes no lease: it reads what that relay has not acked, less the unacked
 * events another live worker holds (it is sending them). An event some relay acked is leased to nobody in
 * particular any more, so every worker that reconnects to the relay sends it (the relay answers `duplicate:`).
 */
export async function claimOutbox(q: PgQ, owner: string, ms: number, c: OutboxClaim): Promise<OutboxRow[]> {
  if (c.rows === 'missed') return missedBy(q, c.relay, c.sinceMs, c.limit, owner);
  const which =
    c.rows === 'unsigned'
      ? sql`o.signed_json is null and o.id > ${c.afterId}`
      : sql`o.signed_json is not null and o.acked_at is null and o.created_at > ${c.sinceMs}`;
  const columns = sql`id, job_id, intent_json, event_id, signed_json, created_at, acked_at`;
  const claim = (renew: SQL) => sql`
    update ${outbox} t set lease_owner = ${owner}, lease_until = ${DB_NOW_MS} + ${ms}
      from (select o.id from ${outbox} o
             where ${which} and (o.lease_until is null or o.lease_until < ${DB_NOW_MS} or (o.lease_owner = ${owner} and ${renew}))
             order by o.id limit ${c.limit}
             for update skip locked) c
     where t.id = c.id
    returning t.id, t.job_id, t.intent_json, t.event_id, t.signed_json, t.created_at, t.acked_at`;
  // Unacked events wait for their acks over many drains: the holder's own ones are renewed only once a third
  // of their lease has passed (else every drain rewrote each of them) and read as they are meanwhile — nobody
  // else can take a row before its lease runs out. Intents to sign are signed at once: always (re)claimed.
  const fresh = sql`${DB_NOW_MS} + ${Math.floor((ms * 2) / 3)}`;
  const r =
    c.rows === 'unsigned'
      ? await q.execute(claim(sql`true`))
      : await q.execute(sql`
          with claimed as (${claim(sql`o.lease_until < ${fresh}`)}),
          held as (select ${columns} from ${outbox} o where ${which} and o.lease_owner = ${owner} and o.lease_until >= ${fresh} order by o.id limit ${c.limit})
          select ${columns} from claimed union all select ${columns} from held`);
  return r.rows
    .map((x) =>
      rowOf({
        id: int8(x.id),
        jobId: x.job_id as string | null,
        intentJson: String(x.intent_json),
        eventId: x.event_id as string | null,
        signedJson: x.signed_json as string | null,
        createdAt: int8(x.created_at),
        ackedAt: x.acked_at === null ? null : int8(x.acked_at),
      } as typeof outbox.$inferSelect),
    )
    .sort((a, b) => a.id - b.id);
}

/** Whether `owner` still holds events waiting for a relay's ack. */
export async function holdsUnacked(q: PgQ, owner: string): Promise<boolean> {
  const r = await q.execute(sql`select 1 from ${outbox} where acked_at is null and lease_owner = ${owner} and lease_until >= ${DB_NOW_MS} limit 1`);
  return r.rows.length > 0;
}

/** Gives `owner`'s unacked rows up (a graceful stop), so another worker sends them at once; returns how many. */
export async function releaseOutbox(q: PgQ, owner: string): Promise<number> {
  const r = await q.execute(sql`update ${outbox} set lease_owner = null, lease_until = null where lease_owner = ${owner} and acked_at is null`);
  return r.rowCount ?? 0;
}

/** Signed events since `sinceMs` that `relay` has not acked: re-sent when it (re)connects. */
export function notAckedBy(q: PgQ, relay: string, sinceMs: number, limit = 500): Promise<OutboxRow[]> {
  return missedBy(q, relay, sinceMs, limit);
}

/** notAckedBy; with `owner`, less the unacked events another live worker holds (claimOutbox `missed`). */
async function missedBy(q: PgQ, relay: string, sinceMs: number, limit: number, owner?: string): Promise<OutboxRow[]> {
  const rows = await q
    .select()
    .from(outbox)
    .where(
      and(
        isNotNull(outbox.signedJson),
        gt(outbox.createdAt, sinceMs),
        sql`not exists (select 1 from ${outboxAcks} a where a.outbox_id = ${outbox.id} and a.relay = ${relay} and a.ok)`,
        owner === undefined
          ? undefined
          : sql`(${outbox.ackedAt} is not null or ${outbox.leaseUntil} is null or ${outbox.leaseUntil} < ${DB_NOW_MS} or ${outbox.leaseOwner} = ${owner})`,
      ),
    )
    .orderBy(asc(outbox.id))
    .limit(limit);
  return rows.map(toRow);
}

export async function noteAttempt(q: PgQ, id: number): Promise<void> {
  await q.update(outbox).set({ attempts: sql`${outbox.attempts} + 1` }).where(eq(outbox.id, id));
}

/**
 * Records relays' OK answers (a batch in one transaction); an accepted event marks its row acked. Returns
 * the row ids of the accepted ones, one per accepting answer, in the answers' order (answers for events that
 * are not ours are ignored). Same outcome as ../outbox.ts applying them one by one: for one (event, relay)
 * answered twice in a batch the last answer stays.
 */
export async function recordAcks(q: PgQ, acks: RelayAck[]): Promise<number[]> {
  if (acks.length === 0) return [];
  const at = Date.now();
  return q.transaction(async (tx) => {
    const eventIds = [...new Set(acks.map((a) => a.eventId))];
    // SQLite's `get` takes the first row of the event-id index: the lowest id.
    const found = await tx.execute(sql`
      select distinct on (${outbox.eventId}) ${outbox.eventId} as event_id, ${outbox.id} as id
        from ${outbox} where ${outbox.eventId} = any(${sql.param(eventIds)}::text[])
       order by ${outbox.eventId}, ${outbox.id}`);
    const idOf = new Map(found.rows.map((r) => [String(r.event_id), int8(r.id)]));
    const last = new Map<string, { outboxId: number; relay: string; ok: boolean; message: string; at: number }>();
    const accepted: number[] = [];
    for (const a of acks) {
      const id = idOf.get(a.eventId);
      if (id === undefined) continue;
      const key = JSON.stringify([id, a.relay]);
      last.delete(key); // re-inserted: the map keeps the last answer
      last.set(key, { outboxId: id, relay: a.relay, ok: a.ok, message: a.message, at });
      if (a.ok) accepted.push(id);
    }
    if (last.size === 0) return accepted;
    const values = [...last.values()].sort((x, y) => x.outboxId - y.outboxId || (x.relay < y.relay ? -1 : x.relay > y.relay ? 1 : 0)); // lock order
    await tx
      .insert(outboxAcks)
      .values(values)
      .onConflictDoUpdate({
        target: [outboxAcks.outboxId, outboxAcks.relay],
        set: { ok: sql`excluded.ok`, message: sql`excluded.message`, at: sql`excluded.at` },
      });
    if (accepted.length > 0) {
      const ids = [...new Set(accepted)].sort((x, y) => x - y);
      await tx.execute(sql`update ${outbox} set acked_at = ${at} where ${outbox.id} = any(${sql.param(ids)}::bigint[]) and ${outbox.ackedAt} is null`);
    }
    return accepted;
  });
}

export async function outboxDepth(q: PgQ): Promise<number> {
  const [r] = await q.select({ n: count() }).from(outbox).where(isNull(outbox.ackedAt));
  return r?.n ?? 0;
}

export async function outboxForJob(q: PgQ, jobId: string): Promise<OutboxRow[]> {
  const rows = await q.select().from(outbox).where(eq(outbox.jobId, jobId)).orderBy(asc(outbox.id));
  return rows.map(toRow);
}

/** Removes an intent that can no longer be built (e.g. a DM whose credentials were already claimed). */
export async function dropIntent(q: PgQ, id: number): Promise<void> {
  await q.delete(outbox).where(and(eq(outbox.id, id), isNull(outbox.signedJson)));
}
