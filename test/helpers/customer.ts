// A test customer: its own key, real nostr-tools relay connections, and a record of everything Timmy
// publishes about its jobs, per relay.
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import { decode } from 'light-bolt11-decoder';
import { TIME_SCALE, waitFor } from './wait.ts';

useWebSocketImplementation(WebSocket);

export interface Seen {
  relay: string;
  event: Event;
}

export function status(ev: Event): string | undefined {
  return ev.tags.find((t) => t[0] === 'status')?.[1];
}

export function tag(ev: Event, name: string): string[] | undefined {
  return ev.tags.find((t) => t[0] === name);
}

export function paymentHash(bolt11: string): string {
  const s = decode(bolt11).sections.find((x) => x.name === 'payment_hash');
  return String((s as { value: string }).value);
}

export function amountMsatsOf(bolt11: string): number {
  const s = decode(bolt11).sections.find((x) => x.name === 'amount');
  return Number((s as { value: string }).value);
}

export class Customer {
  readonly sk = generateSecretKey();
  readonly pubkey = getPublicKey(this.sk);
  readonly seen: Seen[] = [];
  private relays: Relay[] = [];

  constructor(
    private readonly urls: string[],
    private readonly timmy: string,
  ) {}

  /** Connects to each relay and follows everything Timmy sends to this customer. */
  async connect(): Promise<this> {
    for (const url of this.urls) {
      const r = await Relay.connect(url);
      // nostr-tools gives up on an OK after 4.4 s; a relay busy with a flood (or a loaded machine) can take longer.
      r.publishTimeout = 15_000 * TIME_SCALE;
      r.subscribe([{ kinds: [7000, 6050], '#p': [this.pubkey], authors: [this.timmy] }], {
        onevent: (event) => this.seen.push({ relay: url, event }),
      });
      this.relays.push(r);
    }
    return this;
  }

  sign(tags: string[][], opts: { kind?: number; content?: string; createdAt?: number } = {}): Event {
    return finalizeEvent(
      { kind: opts.kind ?? 5050, created_at: opts.createdAt ?? Math.floor(Date.now() / 1000), tags, content: opts.content ?? '' },
      this.sk,
    );
  }

  /** Publishes a signed event to every relay (or only `onlyRelays`). */
  async publish(event: Event, onlyRelays?: string[]): Promise<void> {
    for (const r of this.relays) {
      if (onlyRelays && !onlyRelays.includes(r.url.replace(/\/$/, ''))) continue;
      await r.publish(event);
    }
  }

  /** Posts a text job request p-tagged to Timmy. */
  async request(prompt: string, extraTags: string[][] = []): Promise<Event> {
    const ev = this.sign([['i', prompt, 'text'], ['p', this.timmy], ...extraTags]);
    await this.publish(ev);
    return ev;
  }

  /** Distinct events (by id) about a job, across relays, in arrival order. */
  eventsFor(jobId: string): Event[] {
    const byId = new Map<string, Event>();
    for (const s of this.seen) if (tag(s.event, 'e')?.[1] === jobId) byId.set(s.event.id, s.event);
    return [...byId.values()];
  }

  feedback(jobId: string, st?: string): Event[] {
    return this.eventsFor(jobId).filter((e) => e.kind === 7000 && (st === undefined || status(e) === st));
  }

  results(jobId: string): Event[] {
    return this.eventsFor(jobId).filter((e) => e.kind === 6050);
  }

  async waitForFeedback(jobId: string, st: string, count = 1, timeoutMs = 15_000): Promise<Event[]> {
    return waitFor(() => {
      const f = this.feedback(jobId, st);
      return f.length >= count && f;
    }, `${count} "${st}" feedback for ${jobId.slice(0, 8)}`, timeoutMs);
  }

  async waitForResult(jobId: string, timeoutMs = 15_000): Promise<Event> {
    return waitFor(() => this.results(jobId)[0], `result for ${jobId.slice(0, 8)}`, timeoutMs);
  }

  close(): void {
    for (const r of this.relays) r.close();
  }
}

/** Pays a stub invoice through the daemon's dev route. */
export async function payStub(api: string, bolt11: string): Promise<{ paid: boolean; preimage: string }> {
  const res = await fetch(`${api}/api/dev/stub/pay/${paymentHash(bolt11)}`, { method: 'POST' });
  if (res.status !== 200) throw new Error(`dev pay: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { paid: boolean; preimage: string };
}

/** The bolt11 of a payment-required feedback event. */
export function invoiceOf(ev: Event): { msats: number; bolt11: string } {
  const a = tag(ev, 'amount');
  if (!a?.[2]) throw new Error('feedback has no invoice');
  return { msats: Number(a[1]), bolt11: a[2] };
}

/** Everything a relay has stored for a filter (REQ until EOSE). */
export async function queryRelay(url: string, filter: Filter): Promise<Event[]> {
  const r = await Relay.connect(url);
  try {
    return await new Promise<Event[]>((resolve) => {
      const got: Event[] = [];
      const sub = r.subscribe([filter], {
        onevent: (e) => got.push(e),
        oneose: () => {
          sub.close();
          resolve(got);
        },
      });
    });
  } finally {
    r.close();
  }
}
