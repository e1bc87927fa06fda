// A bare Nostr relay client for the benchmarks: raw websocket frames, no signature checks on what it
// receives (nostr-tools' Relay verifies every incoming event in pure JS, which would add milliseconds
// to every latency sample on this machine). Arrival times are taken before the frame is parsed.
import WebSocket from 'ws';
import type { Event } from 'nostr-tools';

export type Filter = Record<string, unknown>;

export class RelayConn {
  private readonly subs = new Map<string, (event: Event, at: number) => void>();
  private readonly eose = new Map<string, () => void>();
  private readonly oks = new Map<string, (ok: boolean, msg: string) => void>();
  private nextSub = 0;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const at = performance.now();
      let msg: unknown;
      try {
        msg = JSON.parse(String(data));
      } catch {
        return;
      }
      if (!Array.isArray(msg)) return;
      if (msg[0] === 'EVENT') this.subs.get(msg[1] as string)?.(msg[2] as Event, at);
      else if (msg[0] === 'EOSE') {
        this.eose.get(msg[1] as string)?.();
        this.eose.delete(msg[1] as string);
      } else if (msg[0] === 'OK') {
        const cb = this.oks.get(msg[1] as string);
        this.oks.delete(msg[1] as string);
        cb?.(msg[2] === true, String(msg[3] ?? ''));
      }
    });
  }

  static connect(url: string): Promise<RelayConn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(new RelayConn(ws)));
      ws.once('error', reject);
    });
  }

  /** Subscribes; resolves at EOSE. */
  subscribe(filters: Filter[], onEvent: (event: Event, at: number) => void): Promise<string> {
    const id = `bench-${this.nextSub++}`;
    this.subs.set(id, onEvent);
    return new Promise((resolve) => {
      this.eose.set(id, () => resolve(id));
      this.ws.send(JSON.stringify(['REQ', id, ...filters]));
    });
  }

  /** Sends an event; resolves with the relay's OK. */
  publish(event: Event, timeoutMs = 30_000): Promise<{ ok: boolean; message: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.oks.delete(event.id);
        reject(new Error(`no OK for ${event.id.slice(0, 8)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.oks.set(event.id, (ok, message) => {
        clearTimeout(timer);
        resolve({ ok, message });
      });
      this.ws.send(JSON.stringify(['EVENT', event]));
    });
  }

  close(): void {
    this.ws.close();
  }
}

export function tagOf(ev: Event, name: string): string[] | undefined {
  return ev.tags.find((t) => t[0] === name);
}

/**
 * Follows every kind-7000 feedback Timmy publishes (one subscription for all customers): per job and
 * status, the arrival times and the last payment-required invoice; waiters resolve on arrival.
 */
export class FeedbackWatch {
  readonly byJob = new Map<string, { status: string; at: number; bolt11?: string }[]>();
  private readonly waiters: { jobId: string; status: string; nth: number; resolve: (at: number) => void }[] = [];
  private arrivals = 0;

  constructor(readonly conn: RelayConn) {}

  static async start(url: string, timmy: string): Promise<FeedbackWatch> {
    const conn = await RelayConn.connect(url);
    const w = new FeedbackWatch(conn);
    await conn.subscribe([{ kinds: [7000], authors: [timmy], since: Math.floor(Date.now() / 1000) - 5 }], (ev, at) => w.onEvent(ev, at));
    return w;
  }

  get count(): number {
    return this.arrivals;
  }

  private onEvent(ev: Event, at: number): void {
    const jobId = tagOf(ev, 'e')?.[1];
    const status = tagOf(ev, 'status')?.[1];
    if (!jobId || !status) return;
    this.arrivals++;
    const list = this.byJob.get(jobId) ?? [];
    list.push({ status, at, bolt11: tagOf(ev, 'amount')?.[2] });
    this.byJob.set(jobId, list);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.jobId === jobId && this.nth(jobId, w.status, w.nth)) {
        this.waiters.splice(i, 1);
        w.resolve(this.nth(jobId, w.status, w.nth)!.at);
      }
    }
  }

  /** The n-th (1-based) feedback of that status for the job, if it arrived. */
  nth(jobId: string, status: string, n = 1): { status: string; at: number; bolt11?: string } | undefined {
    return (this.byJob.get(jobId) ?? []).filter((f) => f.status === status)[n - 1];
  }

  countStatus(status: string, jobIds: Iterable<string>, n = 1): number {
    let c = 0;
    for (const id of jobIds) if (this.nth(id, status, n)) c++;
    return c;
  }

  /** Resolves with the arrival time of the n-th feedback of `status` for the job. */
  waitFor(jobId: string, status: string, n = 1, timeoutMs = 30_000): Promise<number> {
    const have = this.nth(jobId, status, n);
    if (have) return Promise.resolve(have.at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${status}" #${n} feedback for ${jobId.slice(0, 8)} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        jobId,
        status,
        nth: n,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      });
    });
  }

  close(): void {
    this.conn.close();
  }
}
