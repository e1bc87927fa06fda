// The Nostr side of the outbox: signs each recorded intent once, stores the signed event, and sends it
// until a relay acks it. A restart re-sends the stored event (same id), never a new one.
import type { Event } from 'nostr-tools';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { getJob } from '../store/jobs.ts';
import * as outbox from '../store/outbox.ts';
import { finalizeEvent } from './crypto.ts';
import { buildFeedback, buildResult } from './nip90.ts';
import { encryptFor } from './encryption.ts';
import { customerHasPaid } from '../core/jobs.ts';
import type { PublishOutcome } from './ephemeral.ts';
import type { RelayPool } from './pool.ts';

export interface OutboxDeps {
  db: Db;
  pool: RelayPool;
  secretKey: Uint8Array;
  log: Logger;
  fault: (point: string) => void;
  resendWindowMs?: number; // ms: how far back a reconnecting relay is caught up
  /** Sends one event to a relay the customer named (already policy-checked); see ephemeral.ts. */
  publishOnce: (url: string, event: Event) => Promise<PublishOutcome>;
}

const CUSTOMER_RELAY_ATTEMPTS = 3;

export class OutboxWorker {
  private scheduled = false;
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

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** New intents were committed: sign and send them soon (coalesced). */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  /** Signs what is unsigned, then (re)sends what no relay has acked, with per-event backoff. */
  drain(): void {
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
      const rows = outbox.unsignedIntents(this.d.db, after);
      if (rows.length === 0) return;
      for (const row of rows) this.sign(row);
      after = rows[rows.length - 1]!.id;
    }
  }

  private sign(row: outbox.OutboxRow): void {
    const job = row.jobId ? getJob(this.d.db, row.jobId) : undefined;
    if (!job) {
      this.d.log.error({ outboxId: row.id }, 'outbox intent without its job; skipped');
      return;
    }
    const encrypt = (plain: string) => encryptFor(job, plain, this.d.secretKey);
    const template = row.intent.type === 'result' ? buildResult(job, encrypt, row.intent.balanceMsats) : buildFeedback(job, row.intent, encrypt);
    const event = finalizeEvent(template, this.d.secretKey);
    if (outbox.storeSigned(this.d.db, row.id, event.id, JSON.stringify(event))) {
      this.d.fault(`after-sign:${row.intent.type === 'result' ? 'result' : row.intent.status}`);
      if (job.relays.length > 0 && customerHasPaid(job)) void this.toCustomerRelays(job.relays, event);
    }
  }

  /** Also delivers to the relays the request named (NIP-90 `relays`), a few attempts each. */
  private async toCustomerRelays(urls: string[], event: Event): Promise<void> {
    await Promise.all(
      urls.map(async (url) => {
        for (let attempt = 1; attempt <= CUSTOMER_RELAY_ATTEMPTS; attempt++) {
          const r = await this.d.publishOnce(url, event);
          if (r.ok || attempt === CUSTOMER_RELAY_ATTEMPTS) {
            try {
              outbox.recordAck(this.d.db, event.id, url, r.ok, r.message);
            } catch (err) {
              this.d.log.debug({ err: (err as Error).message }, 'could not record a customer relay ack');
            }
            if (!r.ok) this.d.log.info({ relay: url, eventId: event.id, message: r.message }, 'customer relay did not take our event');
            return;
          }
          await new Promise((res) => setTimeout(res, 1000 * 4 ** (attempt - 1)).unref());
        }
      }),
    );
  }

  private sendUnacked(): void {
    const now = Date.now();
    for (const row of outbox.unackedEvents(this.d.db)) {
      if (!row.signedJson) continue;
      const last = this.sent.get(row.id);
      if (last && now - last.at < Math.min(30_000, 1000 * 2 ** last.attempts)) continue;
      const relays = this.d.pool.publish(JSON.parse(row.signedJson) as Event);
      if (relays.length === 0) continue; // nothing connected: onConnected will catch up
      this.sent.set(row.id, { at: now, attempts: (last?.attempts ?? 0) + 1 });
      outbox.noteAttempt(this.d.db, row.id);
    }
  }

  /** A relay came (back): send it every recent event it has not acked, in order. */
  onConnected(relay: string): void {
    try {
      this.signPending();
      for (const row of outbox.notAckedBy(this.d.db, relay, Date.now() - this.resendWindowMs)) {
        if (row.signedJson) this.d.pool.publish(JSON.parse(row.signedJson) as Event, relay);
      }
    } catch (err) {
      this.d.log.error({ err, relay }, 'outbox catch-up failed');
    }
  }

  /** A relay's OK: `duplicate:` means it already has the event, which is as good as accepted. */
  onOk(relay: string, eventId: string, ok: boolean, message: string): void {
    const accepted = ok || message.startsWith('duplicate:');
    if (!accepted) this.d.log.warn({ relay, eventId, message }, 'relay refused our event');
    const id = outbox.recordAck(this.d.db, eventId, relay, accepted, message);
    if (accepted && id !== null) this.sent.delete(id);
  }

  /** Sends what is pending once more and waits up to `ms` for the acks (used at shutdown). */
  async flush(ms: number): Promise<void> {
    this.drain();
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && outbox.unackedEvents(this.d.db, 1).length > 0 && this.d.pool.connectedCount > 0) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

