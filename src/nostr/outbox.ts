// The Nostr side of the outbox: signs each recorded intent once, stores the signed event, and sends it
// until a relay acks it. A restart re-sends the stored event (same id), never a new one.
import type { Event, EventTemplate } from 'nostr-tools';
import type { Logger } from '../log.ts';
import type { OutboxRow } from '../core/types.ts';
import { finalizeEvent } from './crypto.ts';
import type { PublishOutcome } from './ephemeral.ts';
import type { RelayPool } from './pool.ts';

/** Where a signed event goes: our write relays (`pool`), and relays the customer named (`extra`). */
export interface Route {
  pool: boolean;
  extra: string[];
}

/**
 * What the worker needs of the store: intents in order, signed once, acked per relay. Rows are claimed: with
 * several workers on one database each row is leased to the worker that claimed it (renewed by claiming it
 * again), so one worker at a time signs and sends it, and another takes it once that worker is gone.
 */
export interface OutboxStore {
  /** Intents to sign after `afterId`, oldest first, claimed for this worker. */
  claimUnsigned(afterId: number, limit?: number): Promise<OutboxRow[]>;
  /** Stores signed events once, in one transaction; returns the ids stored (another signer may have been first). */
  storeSigned(rows: { id: number; eventId: string; signedJson: string }[]): Promise<number[]>;
  /** Signed events recorded after `sinceMs` that no relay acked, oldest first, claimed for this worker. */
  claimUnacked(sinceMs: number, limit?: number): Promise<OutboxRow[]>;
  /** Signed events recorded after `sinceMs` that `relay` has not acked, claimed for this worker. */
  claimMissed(relay: string, sinceMs: number): Promise<OutboxRow[]>;
  /** Whether this worker still holds events waiting for an ack. */
  holdsUnacked(): Promise<boolean>;
  /** Gives this worker's unacked rows up (a graceful stop). */
  release(): Promise<number>;
  noteAttempt(id: number): Promise<void>;
  /** Records relays' OKs in one transaction; returns the row ids of the accepted ones (not ours: ignored). */
  recordAcks(acks: { eventId: string; relay: string; ok: boolean; message: string }[]): Promise<number[]>;
  /** Removes an intent that can no longer be built. */
  drop(id: number): Promise<void>;
}

/** Turns intents into events and says where they go (see nostr/events.ts). */
export interface EventFactory {
  /**
   * The intent's event — an unsigned template (signed here with Timmy's key) or a finished one (gift wraps) —
   * and where it goes now; null to drop the intent.
   */
  build(row: OutboxRow): Promise<{ event: EventTemplate | Event; route: Route } | null>;
  /** Where an event goes when it is sent again (the subject may have moved since). */
  route(row: OutboxRow): Promise<Route>;
  /** A customer-named relay accepted the event (NIP-17 delivery confirmation). */
  onExtraAck?(row: OutboxRow, relay: string): Promise<void>;
}

export interface OutboxDeps {
  store: OutboxStore;
  /**
   * Other workers share the outbox (PostgreSQL): while no relay of ours is connected this one claims nothing,
   * so the rows stay free for a worker that can send them. Alone (SQLite) it signs what is pending anyway.
   */
  shared?: boolean;
  /** Our write relays (the pool, or a stand-in without sockets for the ingest benchmark). */
  pool: Pick<RelayPool, 'publish' | 'connectedCount'>;
  secretKey: Uint8Array;
  log: Logger;
  fault: (point: string) => void;
  events: EventFactory;
  resendWindowMs?: number; // ms: how far back a reconnecting relay is caught up
  /** Sends one event to a relay the customer named (already policy-checked); see ephemeral.ts. */
  publishOnce: (url: string, event: Event) => Promise<PublishOutcome>;
}

const MAX_BACKOFF_MS = 30_000;

export class OutboxWorker {
  private scheduled = false;
  private stopped = false;
  private draining: Promise<void> | null = null; // one drain at a time
  private drainAgain = false; // asked for while one ran: one more after it
  private timer: NodeJS.Timeout | null = null;
  private readonly sent = new Map<number, { at: number; attempts: number }>(); // outbox id -> last send, for backoff
  private readonly resendWindowMs: number;

  constructor(private readonly d: OutboxDeps) {
    this.resendWindowMs = d.resendWindowMs ?? 3_600_000;
  }

  start(tickMs = 1000): void {
    this.timer = setInterval(() => void this.drain(), tickMs);
    this.kick();
  }

  /** Stops for good: nothing is signed or sent after this. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** New intents were committed: sign and send them soon (coalesced). */
  kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  /** Signs what is unsigned, then (re)sends what no relay has acked, with per-event backoff. */
  drain(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.draining) {
      this.drainAgain = true;
      return this.draining;
    }
    this.draining = (async () => {
      do {
        this.drainAgain = false;
        try {
          // A shared outbox and no relay of ours connected: claim nothing, leave the rows to a connected worker.
          if (!this.d.shared || this.d.pool.connectedCount > 0) {
            await this.signPending();
            await this.sendUnacked();
          }
        } catch (err) {
          this.d.log.error({ err }, 'outbox drain failed');
        }
      } while (this.drainAgain && !this.stopped);
    })().finally(() => (this.draining = null));
    return this.draining;
  }

  /** Signs every unsigned intent, stores a page of signed events in one transaction, then sends them. */
  private async signPending(): Promise<void> {
    let after = 0;
    for (;;) {
      const rows = await this.d.store.claimUnsigned(after);
      if (rows.length === 0) return;
      const signed: { row: OutboxRow; event: Event; route: Route; json: string }[] = [];
      for (const row of rows) {
        const built = await this.sign(row);
        if (built) signed.push({ row, ...built, json: JSON.stringify(built.event) });
      }
      const stored = new Set(await this.d.store.storeSigned(signed.map((s) => ({ id: s.row.id, eventId: s.event.id, signedJson: s.json }))));
      for (const s of signed) {
        if (!stored.has(s.row.id)) continue;
        this.d.fault(`after-sign:${s.row.intent.type === 'feedback' ? s.row.intent.status : s.row.intent.type}`);
        this.sendNow({ ...s.row, eventId: s.event.id, signedJson: s.json }, s.event, s.route);
      }
      after = rows[rows.length - 1]!.id;
    }
  }

  /** The intent's event, signed with Timmy's key (gift wraps come signed), and its route; null when it cannot or need not be built. */
  private async sign(row: OutboxRow): Promise<{ event: Event; route: Route } | null> {
    let built: Awaited<ReturnType<EventFactory['build']>>;
    try {
      built = await this.d.events.build(row);
    } catch (err) {
      this.d.log.error({ err, outboxId: row.id }, 'cannot build the event of an intent; left for the next pass');
      return null;
    }
    if (!built) {
      await this.d.store.drop(row.id);
      return null;
    }
    const event = 'sig' in built.event ? (built.event as Event) : finalizeEvent(built.event, this.d.secretKey);
    return { event, route: built.route };
  }

  /** First send: our relays now (when routed there), the customer's relays with a few attempts. */
  private sendNow(row: OutboxRow, event: Event, route: Route): void {
    if (route.pool && this.d.pool.publish(event).length > 0) {
      this.sent.set(row.id, { at: Date.now(), attempts: 1 });
    }
    if (route.extra.length > 0) void this.toExtraRelays(row, route.extra);
  }

  private readonly extraInFlight = new Set<number>();

  /** Delivers to relays the customer named, a few attempts each, recording their acks. */
  private async toExtraRelays(row: OutboxRow, urls: string[], attempts = 3): Promise<void> {
    if (this.extraInFlight.has(row.id)) return;
    this.extraInFlight.add(row.id);
    const event = JSON.parse(row.signedJson!) as Event;
    try {
      await Promise.all(
        urls.map(async (url) => {
          for (let attempt = 1; attempt <= attempts; attempt++) {
            const r = await this.d.publishOnce(url, event);
            if (r.ok || attempt === attempts) {
              await this.d.store.recordAcks([{ eventId: event.id, relay: url, ok: r.ok, message: r.message }]);
              if (r.ok) await this.d.events.onExtraAck?.(row, url);
              else this.d.log.info({ relay: url, eventId: event.id, message: r.message }, 'customer relay did not take our event');
              return;
            }
            await new Promise((res) => setTimeout(res, 1000 * 4 ** (attempt - 1)).unref());
          }
        }),
      );
    } catch (err) {
      this.d.log.warn({ err, outboxId: row.id }, 'customer relay delivery failed');
    } finally {
      this.extraInFlight.delete(row.id);
    }
  }

  private async sendUnacked(): Promise<void> {
    const now = Date.now();
    for (const row of await this.d.store.claimUnacked(now - this.resendWindowMs * 24)) {
      if (!row.signedJson) continue;
      const last = this.sent.get(row.id);
      if (last && now - last.at < Math.min(MAX_BACKOFF_MS, 1000 * 2 ** last.attempts)) continue;
      const route = await this.d.events.route(row);
      if (route.pool) {
        if (this.d.pool.publish(JSON.parse(row.signedJson) as Event).length === 0) continue; // onConnected catches up
      } else if (route.extra.length > 0) {
        void this.toExtraRelays(row, route.extra, 1);
      } else continue;
      this.sent.set(row.id, { at: now, attempts: (last?.attempts ?? 0) + 1 });
      await this.d.store.noteAttempt(row.id);
    }
  }

  /** A relay came (back): send it every recent event it has not acked, in order. */
  onConnected(relay: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return (async () => {
      await this.drain(); // signs what is pending (and sends it to every connected relay)
      for (const row of await this.d.store.claimMissed(relay, Date.now() - this.resendWindowMs)) {
        if (row.signedJson && (await this.d.events.route(row)).pool) this.d.pool.publish(JSON.parse(row.signedJson) as Event, relay);
      }
    })().catch((err) => this.d.log.error({ err, relay }, 'outbox catch-up failed'));
  }

  private pendingAcks: { eventId: string; relay: string; ok: boolean; message: string }[] = [];

  /** A relay's OK: `duplicate:` means it already has the event, which is as good as accepted. Recorded in batches. */
  onOk(relay: string, eventId: string, ok: boolean, message: string): void {
    if (this.stopped) return;
    const accepted = ok || message.startsWith('duplicate:');
    if (!accepted) this.d.log.warn({ relay, eventId, message }, 'relay refused our event');
    this.pendingAcks.push({ eventId, relay, ok: accepted, message });
    if (this.pendingAcks.length === 1) setImmediate(() => this.recordPendingAcks());
  }

  /** One transaction for the OKs that arrived in one turn (an ack lost to a crash only means one more send). */
  private recordPendingAcks(): void {
    const batch = this.pendingAcks;
    this.pendingAcks = [];
    if (this.stopped || batch.length === 0) return;
    this.d.store.recordAcks(batch).then(
      (ids) => ids.forEach((id) => this.sent.delete(id)),
      (err) => this.d.log.error({ err }, 'recording relay acks failed'),
    );
  }

  /**
   * Shutdown: sends what is pending once more, waits up to `ms` for the acks of what this worker holds, then
   * stops and gives up what is still unacked (another worker sends it at once).
   */
  async finish(ms: number): Promise<void> {
    await this.drain();
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && this.d.pool.connectedCount > 0 && (await this.d.store.holdsUnacked())) {
      await new Promise((r) => setTimeout(r, 50));
    }
    this.stop();
    await this.whenIdle();
    const released = await this.d.store.release();
    if (released > 0) this.d.log.info({ events: released }, 'unacked events given up to the other workers');
  }

  /** Waits for a drain that is running (nothing new is claimed after stop). */
  private async whenIdle(): Promise<void> {
    while (this.draining) await this.draining;
  }
}

