// Outbox queries: intents recorded with their transition, signed once, acked per relay.
import { and, asc, eq, gt, isNull, isNotNull, sql, count } from 'drizzle-orm';
import { outbox, outboxAcks } from '../../schema/tables.ts';
import type { Db } from './db.ts';
import { prepared } from './prepared.ts';
import type { OutboxRow, PublishIntent } from '../core/types.ts';

export type { OutboxRow };

export function toRow(r: typeof outbox.$inferSelect): OutboxRow {
  return {
    id: r.id,
    jobId: r.jobId,
    intent: JSON.parse(r.intentJson) as PublishIntent,
    eventId: r.eventId,
    signedJson: r.signedJson,
    createdAt: r.createdAt,
    ackedAt: r.ackedAt,
  };
}

/** Called inside the transition's transaction. */
export function insertIntents(db: Db, jobId: string | null, intents: PublishIntent[], nowMs: number): void {
  if (intents.length === 0) return;
  const q = prepared(db, 'insertIntent', () =>
    db
      .insert(outbox)
      .values({ jobId: sql.placeholder('jobId'), intentJson: sql.placeholder('intentJson'), createdAt: sql.placeholder('createdAt') })
      .prepare(),
  );
  for (const intent of intents) q.run({ jobId, intentJson: JSON.stringify(intent), createdAt: nowMs });
}

export function unsignedIntents(db: Db, afterId = 0, limit = 200): OutboxRow[] {
  const q = prepared(db, 'unsignedIntents', () =>
    db
      .select()
      .from(outbox)
      .where(and(isNull(outbox.signedJson), gt(outbox.id, sql.placeholder('afterId'))))
      .orderBy(asc(outbox.id))
      .limit(sql.placeholder('limit'))
      .prepare(),
  );
  return q.all({ afterId, limit }).map(toRow);
}

/** Stores signed events (a page at once, one transaction); returns the ids stored (another signer may have been first). */
export function storeSigned(db: Db, rows: { id: number; eventId: string; signedJson: string }[]): number[] {
  const q = prepared(db, 'storeSigned', () =>
    db
      .update(outbox)
      .set({ eventId: sql`${sql.placeholder('eventId')}`, signedJson: sql`${sql.placeholder('signedJson')}`, signedAt: sql`${sql.placeholder('at')}` })
      .where(and(eq(outbox.id, sql.placeholder('id')), isNull(outbox.signedJson)))
      .prepare(),
  );
  const at = Date.now();
  return db.$client.transaction(() => rows.filter((r) => q.run({ ...r, at }).changes === 1).map((r) => r.id))();
}

/** Signed events no relay has acked yet, recorded after `sinceMs`, oldest first. */
export function unackedEvents(db: Db, limit = 200, sinceMs = 0): OutboxRow[] {
  const q = prepared(db, 'unackedEvents', () =>
    db
      .select()
      .from(outbox)
      .where(and(isNotNull(outbox.signedJson), isNull(outbox.ackedAt), gt(outbox.createdAt, sql.placeholder('since'))))
      .orderBy(asc(outbox.id))
      .limit(sql.placeholder('limit'))
      .prepare(),
  );
  return q.all({ limit, since: sinceMs }).map(toRow);
}

/**
 * What a worker may send now, oldest first: intents to sign (`unsigned`, after `afterId`), events no relay
 * acked (`unacked`), or events a (re)connecting relay missed (`missed`: read, not leased; see pg/outbox.ts).
 */
export type OutboxClaim =
  | { rows: 'unsigned'; afterId: number; limit: number }
  | { rows: 'unacked'; sinceMs: number; limit: number }
  | { rows: 'missed'; relay: string; sinceMs: number; limit: number };

/**
 * Claims rows for `owner` to send (see pg/outbox.ts, where several workers share the table and each row is
 * leased for `ms`). On SQLite the data directory's lock makes this process the only worker, so every row is
 * its own and a claim is a read: no lease is written.
 */
export function claimOutbox(db: Db, owner: string, ms: number, c: OutboxClaim): OutboxRow[] {
  void owner;
  void ms;
  if (c.rows === 'unsigned') return unsignedIntents(db, c.afterId, c.limit);
  if (c.rows === 'unacked') return unackedEvents(db, c.limit, c.sinceMs);
  return notAckedBy(db, c.relay, c.sinceMs, c.limit);
}

/** Whether `owner` still has events waiting for a relay's ack (SQLite: any; see claimOutbox). */
export function holdsUnacked(db: Db, owner: string): boolean {
  void owner;
  return unackedEvents(db, 1).length > 0;
}

/** Gives `owner`'s unacked rows up (a graceful stop), so another worker sends them at once. SQLite: none are leased. */
export function releaseOutbox(db: Db, owner: string): number {
  void owner;
  void db;
  return 0;
}

/** Signed events since `sinceMs` that `relay` has not acked: re-sent when it (re)connects. */
export function notAckedBy(db: Db, relay: string, sinceMs: number, limit = 500): OutboxRow[] {
  return db
    .select()
    .from(outbox)
    .where(
      and(
        isNotNull(outbox.signedJson),
        gt(outbox.createdAt, sinceMs),
        sql`not exists (select 1 from ${outboxAcks} a where a.outbox_id = ${outbox.id} and a.relay = ${relay} and a.ok = 1)`,
      ),
    )
    .orderBy(asc(outbox.id))
    .limit(limit)
    .all()
    .map(toRow);
}

export function noteAttempt(db: Db, id: number): void {
  db.update(outbox).set({ attempts: sql`${outbox.attempts} + 1` }).where(eq(outbox.id, id)).run();
}

export interface RelayAck {
  eventId: string;
  relay: string;
  ok: boolean;
  message: string;
}

/**
 * Records relays' OK answers (a batch in one transaction); an accepted event marks its row acked. Returns
 * the row ids of the accepted ones (answers for events that are not ours are ignored).
 */
export function recordAcks(db: Db, acks: RelayAck[]): number[] {
  const s = prepared(db, 'recordAck', () => ({
    find: db.select({ id: outbox.id }).from(outbox).where(eq(outbox.eventId, sql.placeholder('eventId'))).prepare(),
    ack: db
      .insert(outboxAcks)
      .values({ outboxId: sql.placeholder('id'), relay: sql.placeholder('relay'), ok: sql.placeholder('ok'), message: sql.placeholder('message'), at: sql.placeholder('at') })
      .onConflictDoUpdate({
        target: [outboxAcks.outboxId, outboxAcks.relay],
        set: { ok: sql`excluded.ok`, message: sql`excluded.message`, at: sql`excluded.at` },
      })
      .prepare(),
    acked: db
      .update(outbox)
      .set({ ackedAt: sql`${sql.placeholder('at')}` })
      .where(and(eq(outbox.id, sql.placeholder('id')), isNull(outbox.ackedAt)))
      .prepare(),
  }));
  const at = Date.now();
  // better-sqlite3's own transaction: the prepared statements belong to this connection.
  return db.$client.transaction(() => {
    const accepted: number[] = [];
    for (const a of acks) {
      const row = s.find.get({ eventId: a.eventId });
      if (!row) continue;
      s.ack.run({ id: row.id, relay: a.relay, ok: a.ok ? 1 : 0, message: a.message, at });
      if (a.ok) {
        s.acked.run({ id: row.id, at });
        accepted.push(row.id);
      }
    }
    return accepted;
  })();
}

export function outboxDepth(db: Db): number {
  return db.select({ n: count() }).from(outbox).where(isNull(outbox.ackedAt)).get()?.n ?? 0;
}

export function outboxForJob(db: Db, jobId: string): OutboxRow[] {
  return db.select().from(outbox).where(eq(outbox.jobId, jobId)).orderBy(asc(outbox.id)).all().map(toRow);
}

/** Removes an intent that can no longer be built (e.g. a DM whose credentials were already claimed). */
export function dropIntent(db: Db, id: number): void {
  db.delete(outbox).where(and(eq(outbox.id, id), isNull(outbox.signedJson))).run();
}
