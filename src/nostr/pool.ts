// The relay pool: one websocket per relay, reconnecting with capped exponential backoff and jitter,
// answering NIP-42 AUTH, (re)subscribing with fresh filters, publishing to write relays and reporting OKs.
import WebSocket from 'ws';
import type { Event, EventTemplate } from 'nostr-tools';
import type { Logger } from '../log.ts';
import { redactRelayUrl } from './relay-policy.ts';
import type { RelayConfig } from '../config.ts';

export type Filter = Record<string, unknown>;

export interface Subscription {
  id: string;
  filters: Filter[]; // empty: no subscription
}

export interface PoolHandlers {
  /** The subscriptions to hold on read relays, computed at each (re)subscribe. */
  subscriptions(): Subscription[];
  /** A raw EVENT payload from one of our subscriptions; not yet validated. */
  onEvent(relay: string, subId: string, event: unknown): void;
  /** An OK answer to something we published. */
  onOk(relay: string, eventId: string, ok: boolean, message: string): void;
  /** A relay (re)connected (and authenticated, when it asked): re-send what it has not acked. */
  onConnected(relay: string): void;
  /** Signs a NIP-42 AUTH event. */
  signAuth(template: EventTemplate): Event;
}

export interface PoolOptions {
  maxMessageBytes: number;
  backoffBaseMs?: number; // ms
  backoffCapMs?: number; // ms
  pingIntervalMs?: number; // ms
}

class RelayConnection {
  ws: WebSocket | null = null;
  connected = false;
  /** What went wrong last (a socket error, a lost ping, a refused subscription), for the operator; null: nothing yet. */
  lastError: string | null = null;
  changedAt = 0; // unix ms of the last connect or disconnect
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private ping: NodeJS.Timeout | null = null;
  private alive = true;
  private closed = false;
  private authEventId: string | null = null;
  /** The relay as it is shown and keyed everywhere (logs, status, acks): its URL without credentials. */
  readonly name: string;

  constructor(
    readonly cfg: RelayConfig,
    private readonly h: PoolHandlers,
    private readonly opts: Required<PoolOptions>,
    private readonly log: Logger,
  ) {
    this.name = redactRelayUrl(cfg.url);
  }

  start(): void {
    this.closed = false;
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.cfg.url /* the real URL: only the socket sees it */, { maxPayload: this.opts.maxMessageBytes, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on('open', () => {
      this.connected = true;
      this.changedAt = Date.now();
      this.alive = true;
      this.log.info({ relay: this.name }, 'relay connected');
      this.subscribe();
      this.h.onConnected(this.name);
      this.ping = setInterval(() => this.keepalive(), this.opts.pingIntervalMs);
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.attempt = 0; // a relay that talks to us is healthy: reset the backoff
      this.onMessage(data.toString());
    });
    ws.on('error', (err) => {
      this.lastError = err.message;
      this.log.debug({ relay: this.name, err: err.message }, 'relay socket error');
    });
    ws.on('close', () => this.onClose(ws));
  }

  private keepalive(): void {
    if (!this.ws) return;
    if (!this.alive) {
      this.lastError = 'did not answer ping';
      this.log.warn({ relay: this.name }, 'relay did not answer ping; reconnecting');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  private onClose(ws: WebSocket): void {
    if (this.ws !== ws) return;
    if (this.connected) {
      this.log.warn({ relay: this.name }, 'relay disconnected');
      this.changedAt = Date.now();
    }
    this.connected = false;
    this.ws = null;
    this.open.clear();
    if (this.ping) clearInterval(this.ping);
    this.ping = null;
    if (this.closed) return;
    const exp = Math.min(this.opts.backoffCapMs, this.opts.backoffBaseMs * 2 ** this.attempt);
    const delay = Math.round(exp / 2 + Math.random() * (exp / 2)); // "equal jitter"
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private readonly open = new Set<string>(); // subscription ids currently held on this relay
  /** One-shot queries in flight: sub id -> collector. */
  readonly queries = new Map<string, { onEvent: (e: unknown) => void; onEose: () => void }>();

  private subscribe(only?: string): void {
    if (!this.cfg.read) return;
    for (const sub of this.h.subscriptions()) {
      if (only && sub.id !== only) continue;
      if (sub.filters.length === 0) {
        if (this.open.delete(sub.id)) this.send(['CLOSE', sub.id]);
        continue;
      }
      this.log.debug({ relay: this.name, sub: sub.id, filters: sub.filters }, 'subscribing');
      if (this.send(['REQ', sub.id, ...sub.filters])) this.open.add(sub.id);
    }
  }

  send(msg: unknown[]): boolean {
    if (!this.ws || !this.connected) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private onMessage(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.log.debug({ relay: this.name }, 'relay sent non-JSON; dropped');
      return;
    }
    if (!Array.isArray(msg) || typeof msg[0] !== 'string') return;
    switch (msg[0]) {
      case 'EVENT':
        if (typeof msg[1] === 'string' && this.open.has(msg[1])) this.h.onEvent(this.name, msg[1], msg[2]);
        else if (typeof msg[1] === 'string') this.queries.get(msg[1])?.onEvent(msg[2]);
        return;
      case 'OK':
        if (typeof msg[1] === 'string') {
          const ok = msg[2] === true;
          const message = typeof msg[3] === 'string' ? msg[3] : '';
          if (msg[1] === this.authEventId) {
            this.log.info({ relay: this.name, ok, message }, 'relay AUTH answered');
            if (ok) {
              // Re-subscribe and re-send: the relay may have refused both before we authenticated.
              this.subscribe();
              this.h.onConnected(this.name);
            }
            return;
          }
          this.h.onOk(this.name, msg[1], ok, message);
        }
        return;
      case 'AUTH':
        if (typeof msg[1] === 'string') this.authenticate(msg[1]);
        return;
      case 'EOSE':
        if (typeof msg[1] === 'string' && this.queries.has(msg[1])) this.queries.get(msg[1])!.onEose();
        else this.log.debug({ relay: this.name }, 'end of stored events');
        return;
      case 'CLOSED':
        this.lastError = `closed our subscription: ${String(msg[2] ?? '')}`;
        this.log.warn({ relay: this.name, reason: msg[2] }, 'relay closed our subscription');
        return;
      case 'NOTICE':
        this.log.debug({ relay: this.name, notice: String(msg[1]).slice(0, 200) }, 'relay notice');
        return;
      default:
        return;
    }
  }

  private authenticate(challenge: string): void {
    const ev = this.h.signAuth({
      kind: 22242,
      created_at: Math.floor(Date.now() / 1000),
      tags: [
        ['relay', this.cfg.url], // NIP-42: the URL we dialled
        ['challenge', challenge],
      ],
      content: '',
    });
    this.authEventId = ev.id;
    this.send(['AUTH', ev]);
  }

  resubscribe(only?: string): void {
    if (this.connected) this.subscribe(only);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.ping) clearInterval(this.ping);
    this.ws?.close();
    this.ws?.terminate();
    this.connected = false;
  }
}

/** The relays Timmy reads requests from and publishes to. Never throws on a relay being down. */
export class RelayPool {
  private readonly conns: RelayConnection[];

  constructor(relays: RelayConfig[], handlers: PoolHandlers, opts: PoolOptions, log: Logger) {
    const full: Required<PoolOptions> = { backoffBaseMs: 250, backoffCapMs: 4000, pingIntervalMs: 30_000, ...opts };
    this.conns = relays.map((r) => new RelayConnection(r, handlers, full, log));
  }

  start(): void {
    for (const c of this.conns) c.start();
  }

  /** Sends to every connected write relay (or only `relay`); returns the relays it went to. */
  publish(event: Event, relay?: string): string[] {
    const sent: string[] = [];
    for (const c of this.conns) {
      if (!c.cfg.write || (relay && c.name !== relay)) continue;
      if (c.send(['EVENT', event])) sent.push(c.name);
    }
    return sent;
  }

  /**
   * Asks every connected read relay for stored events (REQ until EOSE, or `timeoutMs`) and returns the raw
   * payloads, unverified: the caller checks them.
   */
  async query(filter: Filter, timeoutMs = 3000): Promise<unknown[]> {
    const id = `q-${Math.random().toString(36).slice(2, 10)}`;
    const got: unknown[] = [];
    await Promise.all(
      this.conns
        .filter((c) => c.cfg.read && c.connected)
        .map(
          (c) =>
            new Promise<void>((resolve) => {
              const done = () => {
                clearTimeout(timer);
                c.queries.delete(id);
                c.send(['CLOSE', id]);
                resolve();
              };
              const timer = setTimeout(done, timeoutMs);
              c.queries.set(id, { onEvent: (e) => got.push(e), onEose: done });
              if (!c.send(['REQ', id, filter])) done();
            }),
        ),
    );
    return got;
  }

  /** Re-sends one subscription (or all) with freshly computed filters. */
  resubscribe(only?: string): void {
    for (const c of this.conns) c.resubscribe(only);
  }

  status(): { url: string; read: boolean; write: boolean; connected: boolean }[] {
    return this.conns.map((c) => ({ url: c.name, read: c.cfg.read, write: c.cfg.write, connected: c.connected }));
  }

  /** status() with what the operator needs besides: the last error and when the connection last changed. */
  details(): { url: string; read: boolean; write: boolean; connected: boolean; lastError: string | null; changedAt: number }[] {
    return this.conns.map((c) => ({ url: c.name, read: c.cfg.read, write: c.cfg.write, connected: c.connected, lastError: c.lastError, changedAt: c.changedAt }));
  }

  get connectedCount(): number {
    return this.conns.filter((c) => c.connected).length;
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}
