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

/** What the worker needs of the store: intents in order, signed once, acked per relay. */
export interface OutboxStore {
  unsigned(afterId: number, limit?: number): OutboxRow[];
  /** Stores the signed event once; false when another signer got there first. */
  storeSigned(id: number, eventId: string, signedJson: string): boolean;
  unacked(limit?: number): OutboxRow[];
  notAckedBy(relay: string, sinceMs: number): OutboxRow[];
  noteAttempt(id: number): void;
  /** Records a relay's OK; returns the row id, or null for an event that is not ours. */
  recordAck(eventId: string, relay: string, ok: boolean, message: string): number | null;
  /** Removes an intent that can no longer be built. */
  drop(id: number): void;
}

/** Turns intents into events and says where they go (see nostr/events.ts). */
export interface EventFactory {
  /** An unsigned template (signed here with Timmy's key), a finished event (gift wraps), or null to drop the intent. */
  build(row: OutboxRow): EventTemplate | Event | null;
  route(row: OutboxRow): Route;
  /** A customer-named relay accepted the event (NIP-17 delivery confirmation). */
  onExtraAck?(row: OutboxRow, relay: string): void;
}

export interface OutboxDeps {
  store: OutboxStore;
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
  private timer: NodeJS.Timeout | null = null;
  private readonly sent = new Map<number, { at: number; attempts: number }>(); // outbox id -> last send, for backoff
  private readonly resendWindowMs: number;

  constructor(private readonly d: OutboxDeps) {
    this.resendWindowMs = d.resendWindowMs ?? 3_600_000;
  }

  start(tickMs = 1000): void {
    this.timer = setInterval(() => this.drain(), tickMs);
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
      this.drain();
    });
  }

  /** Signs what is unsigned, then (re)sends what no relay has acked, with per-event backoff. */
  drain(): void {
    if (this.stopped) return;
    try {
      this.signPending();
      this.sendUnacked();
    } catch (err) {
      this.d.log.error({ err }, 'outbox drain failed');
    }
  }

  private signPending(): void {
    let after = 0;
    for (;;) {
      const rows = this.d.store.unsigned(after);
      if (rows.length === 0) return;
      for (const row of rows) this.sign(row);
      after = rows[rows.length - 1]!.id;
    }
  }

  private sign(row: OutboxRow): void {
    let built: EventTemplate | Event | null;
    try {
      built = this.d.events.build(row);
    } catch (err) {
      this.d.log.error({ err, outboxId: row.id }, 'cannot build the event of an intent; left for the next pass');
      return;
    }
    if (!built) {
      this.d.store.drop(row.id);
      return;
    }
    const event = 'sig' in built ? (built as Event) : finalizeEvent(built, this.d.secretKey);
    if (this.d.store.storeSigned(row.id, event.id, JSON.stringify(event))) {
      const label = row.intent.type === 'feedback' ? row.intent.status : row.intent.type;
      this.d.fault(`after-sign:${label}`);
      this.sendNow({ ...row, eventId: event.id, signedJson: JSON.stringify(event) });
    }
  }

  /** First send: our relays now (when routed there), the customer's relays with a few attempts. */
  private sendNow(row: OutboxRow): void {
    const route = this.d.events.route(row);
    if (route.pool && this.d.pool.publish(JSON.parse(row.signedJson!) as Event).length > 0) {
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
              this.d.store.recordAck(event.id, url, r.ok, r.message);
              if (r.ok) this.d.events.onExtraAck?.(row, url);
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

  private sendUnacked(): void {
    const now = Date.now();
    for (const row of this.d.store.unacked()) {
      if (!row.signedJson || row.createdAt < now - this.resendWindowMs * 24) continue;
      const last = this.sent.get(row.id);
      if (last && now - last.at < Math.min(MAX_BACKOFF_MS, 1000 * 2 ** last.attempts)) continue;
      const route = this.d.events.route(row);
      if (route.pool) {
        if (this.d.pool.publish(JSON.parse(row.signedJson) as Event).length === 0) continue; // onConnected catches up
      } else if (route.extra.length > 0) {
        void this.toExtraRelays(row, route.extra, 1);
      } else continue;
      this.sent.set(row.id, { at: now, attempts: (last?.attempts ?? 0) + 1 });
      this.d.store.noteAttempt(row.id);
    }
  }

  /** A relay came (back): send it every recent event it has not acked, in order. */
  onConnected(relay: string): void {
    try {
      this.signPending();
      for (const row of this.d.store.notAckedBy(relay, Date.now() - this.resendWindowMs)) {
        if (row.signedJson && this.d.events.route(row).pool) this.d.pool.publish(JSON.parse(row.signedJson) as Event, relay);
      }
    } catch (err) {
      this.d.log.error({ err, relay }, 'outbox catch-up failed');
    }
  }

  /** A relay's OK: `duplicate:` means it already has the event, which is as good as accepted. */
  onOk(relay: string, eventId: string, ok: boolean, message: string): void {
    if (this.stopped) return;
    const accepted = ok || message.startsWith('duplicate:');
    if (!accepted) this.d.log.warn({ relay, eventId, message }, 'relay refused our event');
    const id = this.d.store.recordAck(eventId, relay, accepted, message);
    if (accepted && id !== null) this.sent.delete(id);
  }

  /** Sends what is pending once more and waits up to `ms` for the acks (used at shutdown). */
  async flush(ms: number): Promise<void> {
    this.drain();
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && this.d.store.unacked(1).length > 0 && this.d.pool.connectedCount > 0) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

