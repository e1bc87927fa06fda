// Following a job on relays as a customer: publish the request, subscribe for Timmy's replies, and when a
// relay drops, reconnect with backoff (saying so), subscribe again and re-send the request.
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';

useWebSocketImplementation(WebSocket);

/** One subscription: its filters and what to do with each new event (each event id is handed over once). */
export interface Follow {
  filters: Filter[];
  onevent: (ev: Event) => void;
}

const BACKOFF_MS = [250, 500, 1000, 2000, 4000]; // ms, between connection attempts to one relay

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Keeps one connection per relay for as long as it is open. `onNoRelay` runs once when every relay failed
 * its first attempt (could not connect, or refused the request).
 */
export class RelayFollower {
  private closed = false;
  private readonly seen = new Set<string>();
  private readonly live = new Set<Relay>();
  private readonly firstOutcome = new Map<string, boolean>(); // relay -> took the request (or connected, without one)
  private wakeups = new Set<() => void>();

  constructor(
    private readonly urls: string[],
    private readonly out: (line: string) => void,
    private readonly o: { what: string; onNoRelay: () => void },
  ) {}

  start(request: Event | null, follows: Follow[]): void {
    for (const url of this.urls) void this.link(url, request, follows);
  }

  close(): void {
    this.closed = true;
    for (const wake of this.wakeups) wake();
    for (const r of this.live) r.close();
    this.live.clear();
  }

  private settleFirst(url: string, ok: boolean): void {
    if (this.firstOutcome.has(url)) return;
    this.firstOutcome.set(url, ok);
    if (!ok && this.firstOutcome.size === this.urls.length && [...this.firstOutcome.values()].every((v) => !v)) this.o.onNoRelay();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakeups.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakeups.add(wake);
    });
  }

  private async link(url: string, request: Event | null, follows: Follow[]): Promise<void> {
    let attempt = 0;
    let everConnected = false;
    while (!this.closed) {
      let relay: Relay;
      try {
        relay = await Relay.connect(url, { enablePing: true });
      } catch (err) {
        if (!everConnected && attempt === 0) {
          this.out(`could not connect to ${url}: ${reason(err)}; still trying`);
          this.settleFirst(url, false);
        }
        await this.pause(BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)]!);
        continue;
      }
      if (this.closed) {
        relay.close();
        return;
      }
      if (everConnected) this.out(`reconnected to ${url}`);
      attempt = 0;
      this.live.add(relay);
      const lost = new Promise<void>((resolve) => (relay.onclose = () => resolve()));
      for (const f of follows) {
        relay.subscribe(f.filters, {
          onevent: (ev) => {
            if (this.closed || this.seen.has(ev.id)) return;
            this.seen.add(ev.id);
            f.onevent(ev);
          },
        });
      }
      if (request) {
        const first = !everConnected;
        relay.publish(request).then(
          () => this.settleFirst(url, true),
          (err: unknown) => {
            // Each relay's answer, named: a rejection ("blocked: ...") says which relay and why.
            if (first) this.out(`relay ${url} did not take the ${this.o.what}: ${reason(err)}`);
            this.settleFirst(url, false);
          },
        );
      } else {
        this.settleFirst(url, true);
      }
      everConnected = true;
      await lost;
      this.live.delete(relay);
      if (this.closed) return;
      this.out(`lost the connection to ${url}; reconnecting`);
      await this.pause(BACKOFF_MS[0]!);
    }
  }
}
