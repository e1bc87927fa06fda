// Intake: every event a relay hands us passes shape, size, signature and age checks here, is deduped,
// parsed into a NewJob and handed to the core. Undecodable or forged events are dropped (debug log);
// decodable requests that cannot be served are answered with an `error`.
import type { Event } from 'nostr-tools';
import { getPow } from 'nostr-tools/nip13';
import type { Logger } from '../log.ts';
import type { JobService } from '../core/jobs.ts';
import type { BootstrapService } from '../core/bootstrap.ts';
import { Refusal } from '../core/refusal.ts';
import { verifyEvent } from './crypto.ts';
import { parseJobTags, toNewJob, TEXT_JOB_KIND } from './nip90.ts';
import { decryptRequestTags } from './encryption.ts';
import type { Filter, Subscription } from './pool.ts';
import { filterRelayUrls, type RelayPolicy } from './relay-policy.ts';

export const REQUESTS_SUB = 'timmy-requests';
export const DELETIONS_SUB = 'timmy-deletions';
const DELETION_KIND = 5;

export interface IntakeSettings {
  relayPolicy: RelayPolicy;
  bootstrapKind: number;
  pubkey: string; // Timmy's, hex
  secretKey: Uint8Array;
  acceptUntargeted: boolean;
  maxRequestAgeSecs: number;
  maxFutureSecs: number;
  maxEventBytes: number;
  maxInputChars: number;
}

export interface IntakeCounters {
  received: number;
  duplicate: number;
  malformed: number;
  badSignature: number;
  tooLarge: number;
  stale: number;
  untargeted: number;
  accepted: number;
  refused: number;
  /** Requests another worker claimed (it answers them; looked at again if it died first). */
  elsewhere: number;
}

/** Requests claimed elsewhere that are kept to look at again: beyond this, the oldest claims are trusted. */
const MAX_WAITING = 10_000;

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

/** A structurally valid event (not yet verified), or null. */
export function asEvent(x: unknown): Event | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const e = x as Record<string, unknown>;
  if (typeof e.id !== 'string' || !HEX64.test(e.id)) return null;
  if (typeof e.pubkey !== 'string' || !HEX64.test(e.pubkey)) return null;
  if (typeof e.sig !== 'string' || !HEX128.test(e.sig)) return null;
  if (!Number.isSafeInteger(e.kind) || (e.kind as number) < 0 || (e.kind as number) > 65535) return null;
  if (!Number.isSafeInteger(e.created_at) || (e.created_at as number) < 0) return null;
  if (typeof e.content !== 'string') return null;
  if (!Array.isArray(e.tags) || !e.tags.every((t) => Array.isArray(t) && t.every((v) => typeof v === 'string'))) return null;
  return x as Event;
}

/** Recently seen verified ids, so the same request from N relays is verified once. */
class RecentIds {
  private readonly set = new Set<string>();
  constructor(private readonly max: number) {}
  has(id: string): boolean {
    return this.set.has(id);
  }
  add(id: string): void {
    this.set.add(id);
    if (this.set.size > this.max) this.set.delete(this.set.values().next().value!);
  }
}

/** The slice of the core intake feeds: text jobs, node orders, NIP-09 cancellations. */
export interface IntakeCore {
  jobs: Pick<JobService, 'submit' | 'refuse' | 'cancel' | 'known'>;
  orders: Pick<BootstrapService, 'submit'>;
}

/** What the intake keeps in the store: the subscription cursor, and which jobs a deletion may cancel. */
export interface IntakeStore {
  /** unix s of the newest request seen, persisted. */
  cursor(): Promise<number | null>;
  saveCursor(v: number): Promise<void>;
  /** Ids of unpaid Nostr jobs, newest first, capped: the requests a NIP-09 deletion may cancel. */
  unpaidIds(): Promise<string[]>;
  /**
   * Claims a request for this worker to answer (several workers hear each one; one invoices it): false when
   * another worker's claim runs. A claim lasts `claimMs`.
   */
  claim(id: string): Promise<boolean>;
  /** Gives a claim up: nothing was recorded for the request (stopping, or an error), another worker answers it. */
  unclaim(id: string): Promise<void>;
  claimMs: number;
}

export class Intake {
  readonly counters: IntakeCounters = {
    received: 0, duplicate: 0, malformed: 0, badSignature: 0, tooLarge: 0, stale: 0, untargeted: 0, accepted: 0, refused: 0, elsewhere: 0,
  };
  private readonly recent = new RecentIds(10_000);
  private cursor = 0; // unix s: newest request created_at seen, never ahead of the clock
  private unpaid: string[] = []; // the latest read of the unpaid jobs
  private deletionIds: string[] = []; // the ones the deletion subscription was last sent with
  private readonly inFlight = new Set<Promise<unknown>>(); // requests and deletions being handled
  private readonly waiting = new Map<string, NodeJS.Timeout>(); // requests claimed elsewhere: looked at again
  private stopped = false;

  constructor(
    private readonly s: IntakeSettings,
    private readonly core: IntakeCore,
    private readonly log: Logger,
    private readonly store: IntakeStore,
  ) {}

  /** Reads the persisted cursor and the unpaid jobs: before the first subscription. */
  async load(): Promise<void> {
    this.cursor = Math.max(this.cursor, (await this.store.cursor()) ?? 0);
    this.unpaid = await this.store.unpaidIds();
  }

  /**
   * Requests p-tagged to Timmy since the persisted cursor (with overlap), and NIP-09 deletions of the
   * unpaid jobs (refreshed by `deletionsChanged`).
   */
  subscriptions(): Subscription[] {
    const now = Math.floor(Date.now() / 1000);
    const overlapSecs = 300; // relays may store events late; dedupe makes the overlap harmless
    const since = Math.max(now - this.s.maxRequestAgeSecs, (this.cursor || now) - overlapSecs);
    const kinds = [TEXT_JOB_KIND, this.s.bootstrapKind];
    const requests: Filter[] = [{ kinds, '#p': [this.s.pubkey], since }];
    if (this.s.acceptUntargeted) requests.push({ kinds, since });
    this.deletionIds = this.unpaid;
    const deletions: Filter[] = this.deletionIds.length
      ? [{ kinds: [DELETION_KIND], '#e': this.deletionIds, since: now - this.s.maxRequestAgeSecs }]
      : [];
    return [
      { id: REQUESTS_SUB, filters: requests },
      { id: DELETIONS_SUB, filters: deletions },
    ];
  }

  /** True when the set of unpaid jobs changed since the deletion subscription was last sent. */
  async deletionsChanged(): Promise<boolean> {
    const ids = (this.unpaid = await this.store.unpaidIds());
    return ids.length !== this.deletionIds.length || ids.some((id, i) => id !== this.deletionIds[i]);
  }

  /** Resolves once every event handed in so far has been handled. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** No request claimed elsewhere is looked at again after this. */
  stop(): void {
    this.stopped = true;
    for (const t of this.waiting.values()) clearTimeout(t);
    this.waiting.clear();
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Entry point for every EVENT from a relay subscription. Never throws. */
  handle(relay: string, _subId: string, raw: unknown): void {
    this.counters.received++;
    try {
      this.process(relay, raw);
    } catch (err) {
      this.log.error({ err, relay }, 'intake failed on an event');
    }
  }

  private process(relay: string, raw: unknown): void {
    const event = asEvent(raw);
    if (!event) {
      this.counters.malformed++;
      this.log.debug({ relay }, 'malformed event dropped');
      return;
    }
    if (this.recent.has(event.id)) {
      this.counters.duplicate++;
      return;
    }
    if (event.content.length + JSON.stringify(event.tags).length > this.s.maxEventBytes) {
      this.counters.tooLarge++;
      this.log.debug({ relay, id: event.id }, 'oversize event dropped');
      return;
    }
    if (!verifyEvent(event)) {
      this.counters.badSignature++;
      this.log.debug({ relay, id: event.id }, 'event with a bad id or signature dropped');
      return;
    }
    this.recent.add(event.id);
    if (event.kind === DELETION_KIND) {
      this.onDeletion(event);
      return;
    }
    if (event.kind !== TEXT_JOB_KIND && event.kind !== this.s.bootstrapKind) return;

    const now = Math.floor(Date.now() / 1000);
    const expiration = Number(event.tags.find((t) => t[0] === 'expiration')?.[1]);
    if (
      event.created_at < now - this.s.maxRequestAgeSecs ||
      event.created_at > now + this.s.maxFutureSecs ||
      (Number.isFinite(expiration) && expiration <= now)
    ) {
      this.counters.stale++;
      this.log.debug({ relay, id: event.id }, 'request too old, future-dated or expired; ignored');
      return;
    }
    const targets = event.tags.filter((t) => t[0] === 'p').map((t) => t[1]);
    if (targets.length > 0 ? !targets.includes(this.s.pubkey) : !this.s.acceptUntargeted) {
      this.counters.untargeted++;
      return;
    }
    this.advanceCursor(Math.min(event.created_at, now));
    this.track(this.answer(event).catch((err) => this.log.error({ err, id: event.id }, 'request submission failed')));
  }

  /**
   * Answers a request this worker claims. One another worker claimed is that worker's to invoice; it is looked
   * at again once the claim could have run out, and answered here if that worker died before recording it.
   */
  private async answer(event: Event): Promise<void> {
    if (this.stopped) return; // a relay hands it to the other workers (or to this one after its restart)
    if (!(await this.store.claim(event.id))) {
      this.counters.elsewhere++;
      this.lookAgainLater(event);
      return;
    }
    let recorded = false;
    try {
      recorded = await (event.kind === this.s.bootstrapKind ? this.submitBootstrap(event) : this.submit(event));
    } finally {
      if (!recorded) await this.store.unclaim(event.id).catch((err) => this.log.warn({ err, id: event.id }, 'request claim not given up; it runs out'));
    }
  }

  private lookAgainLater(event: Event): void {
    if (this.stopped || this.waiting.has(event.id) || this.waiting.size >= MAX_WAITING) return;
    const timer = setTimeout(() => {
      this.waiting.delete(event.id);
      const again = async () => {
        if (!(await this.core.jobs.known(event.id))) await this.answer(event); // an order: its submit dedupes
      };
      this.track(again().catch((err) => this.log.error({ err, id: event.id }, 'request submission failed')));
    }, this.store.claimMs + 1000);
    timer.unref();
    this.waiting.set(event.id, timer);
  }

  /** NIP-09: a deletion by the request's own author cancels it while unpaid. */
  private onDeletion(event: Event): void {
    for (const t of event.tags) {
      if (t[0] !== 'e' || !t[1] || !HEX64.test(t[1])) continue;
      const jobId = t[1];
      this.track(
        this.core.jobs
          .cancel(jobId, event.pubkey)
          .then((cancelled) => cancelled && this.log.info({ jobId }, 'request deleted by its author; cancelled'))
          .catch((err) => this.log.error({ err, jobId }, 'cancelling a deleted request failed')),
      );
    }
  }

  private advanceCursor(createdAt: number): void {
    if (createdAt <= this.cursor) return;
    this.cursor = createdAt;
    this.store.saveCursor(createdAt).catch((err) => this.log.warn({ err }, 'subscription cursor not saved'));
  }

  /** A node order (kind BOOTSTRAP_KIND): params size, region, ssh_key. Refusals are answered once. True: recorded. */
  private async submitBootstrap(event: Event): Promise<boolean> {
    const param = (name: string) => event.tags.find((t) => t[0] === 'param' && t[1] === name)?.[2];
    const job = toNewJob(event, { input: '', params: {}, bidMsats: null }, 'none');
    job.relays = filterRelayUrls(job.relays, this.s.relayPolicy).accepted;
    if (await this.core.jobs.known(event.id)) return true; // refused before
    try {
      const r = await this.core.orders.submit({
        id: event.id,
        source: 'nostr',
        customerPubkey: event.pubkey,
        clientAddress: null,
        requestJson: JSON.stringify(event),
        relays: job.relays,
        size: param('size'),
        region: param('region'),
        sshKey: param('ssh_key'),
      });
      if (r.status === 'created') this.counters.accepted++;
      else this.counters.duplicate++;
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.counters.refused++;
      await this.core.jobs.refuse(job, err);
    }
    return true;
  }

  /** A text job request; true when it was recorded (created, refused, or known before), false when deferred. */
  private async submit(event: Event): Promise<boolean> {
    let tags = event.tags;
    let encryption: 'none' | 'nip04' | 'nip44' = 'none';
    let refusal: string | null = null;
    if (event.tags.some((t) => t[0] === 'encrypted')) {
      const d = decryptRequestTags(event.content, event.pubkey, this.s.secretKey);
      if (d.ok) {
        tags = d.tags;
        encryption = d.scheme;
      } else refusal = d.reason;
    }
    const parsed = refusal === null ? parseJobTags(event, tags, { maxInputChars: this.s.maxInputChars }) : null;
    if (parsed && !parsed.ok) refusal = parsed.reason;
    const job = toNewJob(event, parsed?.ok ? parsed : { input: '', params: {}, bidMsats: null }, encryption);
    const relays = filterRelayUrls(job.relays, this.s.relayPolicy);
    if (relays.refused.length) this.log.debug({ id: event.id, refused: relays.refused }, 'relay URLs from the request refused');
    job.relays = relays.accepted;
    if (refusal !== null || !parsed?.ok) {
      this.counters.refused++;
      await this.core.jobs.refuse(job, new Refusal('invalid', refusal ?? 'invalid request'));
      return true;
    }
    const outcome = await this.core.jobs.submit(job, { powBits: getPow(event.id) });
    if (outcome.status === 'created') this.counters.accepted++;
    else if (outcome.status === 'refused') this.counters.refused++;
    else if (outcome.status === 'duplicate') {
      this.counters.duplicate++;
      this.log.debug({ id: event.id }, 'request already known; not invoiced again');
    }
    return outcome.status !== 'deferred';
  }
}
