// The LNbits payment backend: invoices over the LNbits REST API with the wallet's invoice key (never the
// admin key), settlements pushed over the wallet websocket, and polling as the safety net while the
// websocket is down and once after every (re)connect.
//
// Wire format (LNbits 0.12 and 1.x, from lnbits/core/views/payment_api.py, websocket_api.py and
// core/services/notifications.py):
//   POST /api/v1/payments {out:false, amount, unit:'sat', memo, expiry}  -> 201, 1.x: the Payment model
//     (`bolt11`, `payment_request`, `payment_hash`, ...); 0.12: {payment_hash, payment_request, checking_id}
//   GET  /api/v1/payments/{hash} -> {paid, preimage, details?}; 404 {"detail":"Payment does not exist."}
//   WS   /api/v1/ws/{invoice key} <- {"wallet_balance": sats, "payment": Payment} per settled payment
//   errors: {"detail": "..."} (HTTPException, validation, InvoiceError with HTTP 520)
import { decode as decodeBolt11 } from 'light-bolt11-decoder';
import WebSocket from 'ws';
import { z } from 'zod';
import type { Logger } from '../log.ts';
import type { Health, Invoice, InvoiceRequest, PaymentBackend } from '../core/ports.ts';
import { HealthTracker } from '../core/health.ts';
import { PaymentError } from '../core/ports.ts';
import { Coalesced } from './coalesced.ts';

const HEX64 = /^[0-9a-f]{64}$/i;
const DEFAULT_BOLT11_EXPIRY_S = 3600; // BOLT11: an invoice without an `x` tag expires after an hour

export interface LnbitsOptions {
  /** Base URL of the LNbits instance, e.g. https://lnbits.example.com (a path prefix is kept). */
  url: string;
  /** The wallet's invoice/read key. The admin key is never needed: this backend only receives. */
  apiKey: string;
  log: Logger;
  pollIntervalMs?: number; // ms between polls of open invoices while the websocket is down; default 5000
  requestTimeoutMs?: number; // ms per REST call; default 10_000
  reconnectBaseMs?: number; // ms, first websocket reconnect delay (before jitter); default 250
  reconnectCapMs?: number; // ms, longest websocket reconnect delay; default 5000
  pingIntervalMs?: number; // ms between websocket pings; a missing pong drops the socket; default 30_000
  fetch?: typeof fetch;
  WebSocketImpl?: typeof WebSocket;
}

/** LNbits answered with a non-2xx status; `detail` is LNbits' own message. */
export class LnbitsApiError extends PaymentError {
  override name = 'LnbitsApiError';
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`LNbits answered HTTP ${status}: ${detail}`);
  }
}

// --- response shapes (tolerant: unknown fields are ignored) ---

const CreatedInvoice = z.object({
  payment_hash: z.string().regex(HEX64),
  payment_request: z.string().nullish(), // 0.12; 1.x sends it too (equal to bolt11 for lightning)
  bolt11: z.string().nullish(), // 1.x Payment model
});

const PaymentStatus = z.object({ paid: z.boolean() });

/** One websocket push. 1.x payments carry `status`; older ones `pending`. `amount` is msats, < 0 when outgoing. */
const WsNotification = z.object({
  payment: z.object({
    payment_hash: z.string().regex(HEX64),
    amount: z.number().optional(),
    status: z.string().optional(),
    pending: z.boolean().optional(),
  }),
});

const ErrorBody = z.object({ detail: z.unknown() });

/** The payment hash of an incoming settled payment in a websocket message, else null. */
export function settledHashFromWsMessage(raw: string): string | null {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = WsNotification.safeParse(json);
  if (!parsed.success) return null;
  const p = parsed.data.payment;
  if (p.amount !== undefined && p.amount <= 0) return null; // outgoing payment from this wallet
  const settled = p.status !== undefined ? p.status === 'success' : p.pending !== true;
  return settled ? p.payment_hash.toLowerCase() : null;
}

export class LnbitsPayments implements PaymentBackend {
  readonly name = 'lnbits' as const;
  private listener: (paymentHash: string) => void = () => {};
  /** Invoices not yet known paid: payment hash -> expiresAt (unix s). */
  private readonly open = new Map<string, number>();
  private readonly base: string; // url without a trailing slash
  private readonly fetchFn: typeof fetch;
  private readonly WebSocketImpl: typeof WebSocket;
  private readonly pollIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly reconnectBaseMs: number;
  private readonly reconnectCapMs: number;
  private readonly pingIntervalMs: number;
  private readonly closing = new AbortController();

  private started = false;
  private closed = false;
  private ws: WebSocket | null = null;
  private wsOpen = false;
  private attempt = 0; // consecutive failed websocket connects, for the backoff
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private readonly poll = new Coalesced(
    () => this.pollOnce(),
    (err) => this.opts.log.warn({ err: this.scrub(errorMessage(err)) }, 'LNbits poll failed'),
    () => this.closed,
  );

  constructor(private readonly opts: LnbitsOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? fetch;
    this.WebSocketImpl = opts.WebSocketImpl ?? WebSocket;
    this.pollIntervalMs = opts.pollIntervalMs ?? 5000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.reconnectBaseMs = opts.reconnectBaseMs ?? 250;
    this.reconnectCapMs = opts.reconnectCapMs ?? 5000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 30_000;
  }

  /** True while the settlement websocket is open. */
  get websocketConnected(): boolean {
    return this.wsOpen;
  }

  /** How many invoices are waiting for payment in the poll set. */
  get watchedCount(): number {
    return this.open.size;
  }

  async createInvoice(req: InvoiceRequest): Promise<Invoice> {
    if (!Number.isSafeInteger(req.amountMsats) || req.amountMsats <= 0 || req.amountMsats % 1000 !== 0) {
      throw new PaymentError(`LNbits invoices are in whole sats; got ${req.amountMsats} msats`);
    }
    if (!Number.isSafeInteger(req.expirySecs) || req.expirySecs <= 0) {
      throw new PaymentError(`invalid invoice expiry ${req.expirySecs} s`);
    }
    const body = { out: false, amount: req.amountMsats / 1000, unit: 'sat', memo: req.memo, expiry: req.expirySecs, ...(req.descriptionHash ? { description_hash: req.descriptionHash } : {}) };
    const json = await this.request('POST', '/api/v1/payments', body);
    const parsed = CreatedInvoice.safeParse(json);
    if (!parsed.success) throw new PaymentError('LNbits returned an unexpected invoice response');
    const paymentHash = parsed.data.payment_hash.toLowerCase();
    const bolt = [parsed.data.bolt11, parsed.data.payment_request].find((s) => s?.toLowerCase().startsWith('ln'));
    if (!bolt) throw new PaymentError('LNbits returned no BOLT11 invoice');

    const decoded = readBolt11(bolt);
    if (decoded.paymentHash !== paymentHash) throw new PaymentError('LNbits invoice payment hash does not match its bolt11');
    if (decoded.amountMsats !== req.amountMsats) {
      throw new PaymentError(`LNbits invoice is for ${decoded.amountMsats} msats, asked for ${req.amountMsats}`);
    }
    const invoice: Invoice = { paymentHash, bolt11: bolt, amountMsats: req.amountMsats, expiresAt: decoded.expiresAt };
    this.open.set(paymentHash, invoice.expiresAt);
    this.opts.log.debug({ paymentHash, amountMsats: invoice.amountMsats, expiresAt: invoice.expiresAt }, 'LNbits invoice created');
    return invoice;
  }

  async isPaid(paymentHash: string): Promise<boolean> {
    if (!HEX64.test(paymentHash)) throw new PaymentError('invalid payment hash');
    let json: unknown;
    try {
      json = await this.request('GET', `/api/v1/payments/${paymentHash.toLowerCase()}`);
    } catch (err) {
      if (err instanceof LnbitsApiError && err.status === 404) return false; // not this wallet's / unknown
      throw err;
    }
    const parsed = PaymentStatus.safeParse(json);
    if (!parsed.success) throw new PaymentError('LNbits returned an unexpected payment status');
    return parsed.data.paid;
  }

  onSettled(listener: (paymentHash: string) => void): void {
    this.listener = listener;
  }

  /** Adds an invoice created earlier (e.g. by a previous process) to the poll set. */
  watch(paymentHash: string, expiresAt: number): void {
    if (!HEX64.test(paymentHash)) throw new PaymentError('invalid payment hash');
    this.open.set(paymentHash.toLowerCase(), expiresAt);
  }

  /** Opens the settlement websocket and starts the fallback polling. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.connect();
    this.pollTimer = setInterval(() => {
      if (!this.wsOpen) this.triggerPoll();
    }, this.pollIntervalMs);
    this.pollTimer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    for (const t of [this.reconnectTimer, this.pingTimer]) if (t) clearTimeout(t);
    if (this.pollTimer) clearInterval(this.pollTimer);
    const ws = this.ws;
    this.ws = null;
    this.wsOpen = false;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000); // ms to wait for a clean close before dropping the socket
        ws.once('close', () => {
          clearTimeout(force);
          resolve();
        });
        if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        else ws.close(1000);
      });
    }
    await this.poll.current?.catch(() => {});
  }

  // --- REST ---

  /** LNbits as last seen: every REST call reports, a stale reading asks for the wallet (GET /api/v1/wallet). */
  private readonly tracker = new HealthTracker(() => this.request('GET', '/api/v1/wallet'));

  health(): Health {
    const h = this.tracker.read(this.wsOpen ? 10_000 : 3_000); // ms: checked more often while the push path is down
    if (!h.ok) return h;
    return { ok: true, detail: this.wsOpen ? 'answering; settlements pushed over the websocket' : 'answering; websocket down, polling' };
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    try {
      const json = await this.requestOnce(method, path, body);
      this.tracker.ok('answering');
      return json;
    } catch (err) {
      // An unreachable LNbits or a refused key is a health problem; a 404 for one unknown payment is not.
      if (!(err instanceof LnbitsApiError) || err.status === 401 || err.status === 403 || err.status >= 500) this.tracker.failed((err as Error).message);
      throw err;
    }
  }

  private async requestOnce(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}${path}`, {
        method,
        headers: {
          'X-Api-Key': this.opts.apiKey,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.any([AbortSignal.timeout(this.requestTimeoutMs), this.closing.signal]),
      });
    } catch (err) {
      throw new PaymentError(`LNbits unreachable: ${this.scrub(errorMessage(err))}`);
    }
    const text = await res.text().catch(() => '');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) throw new LnbitsApiError(res.status, this.scrub(detailOf(json, text, res.statusText)));
    if (json === undefined) throw new PaymentError(`LNbits answered HTTP ${res.status} without JSON`);
    return json;
  }

  // --- websocket ---

  private wsUrl(): string {
    const u = new URL(this.base);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.pathname = `${u.pathname.replace(/\/+$/, '')}/api/v1/ws/${encodeURIComponent(this.opts.apiKey)}`;
    u.search = '';
    return u.toString();
  }

  private connect(): void {
    if (this.closed) return;
    // The URL carries the key: it is never logged.
    let ws: WebSocket;
    try {
      ws = new this.WebSocketImpl(this.wsUrl(), { handshakeTimeout: this.requestTimeoutMs });
    } catch (err) {
      this.opts.log.warn({ err: this.scrub(errorMessage(err)) }, 'LNbits websocket could not be created');
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let alive = true;
    ws.on('open', () => {
      if (this.ws !== ws) return;
      this.wsOpen = true;
      this.attempt = 0;
      this.opts.log.info('LNbits websocket connected');
      // Settlements pushed while we were away are lost: catch up once by polling.
      this.triggerPoll();
      const ping = (): void => {
        if (!alive) {
          this.opts.log.warn('LNbits websocket missed a pong; reconnecting');
          ws.terminate();
          return;
        }
        alive = false;
        ws.ping();
        this.pingTimer = setTimeout(ping, this.pingIntervalMs);
        this.pingTimer.unref();
      };
      this.pingTimer = setTimeout(ping, this.pingIntervalMs);
      this.pingTimer.unref();
    });
    ws.on('pong', () => {
      alive = true;
    });
    ws.on('message', (data) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
      const hash = settledHashFromWsMessage(text);
      if (hash) this.report(hash, 'websocket');
    });
    ws.on('error', (err) => {
      // Warn on the first failure of an outage; the retries every few seconds after it are debug noise.
      const level = this.attempt === 0 ? 'warn' : 'debug';
      this.opts.log[level]({ err: this.scrub(err.message) }, 'LNbits websocket error');
    });
    ws.on('close', () => {
      if (this.ws !== ws) return;
      if (this.pingTimer) clearTimeout(this.pingTimer);
      const wasOpen = this.wsOpen;
      this.ws = null;
      this.wsOpen = false;
      if (this.closed) return;
      if (wasOpen) {
        this.opts.log.warn('LNbits websocket closed; polling until it is back');
        this.triggerPoll(); // do not wait a whole interval for the first poll
      }
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    const exp = Math.min(this.reconnectCapMs, this.reconnectBaseMs * 2 ** this.attempt);
    const delay = Math.round(exp / 2 + Math.random() * (exp / 2)); // ms, "equal jitter"
    this.attempt++;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
  }

  // --- polling ---

  /** Starts a poll, or asks for one more right after the running one (never two at once). */
  private triggerPoll(): void {
    this.poll.trigger();
  }

  private async pollOnce(): Promise<void> {
    const nowS = Math.floor(Date.now() / 1000);
    const batch = [...this.open.entries()];
    let failures = 0;
    let lastError = '';
    const CONCURRENCY = 4; // parallel status requests to LNbits
    for (let i = 0; i < batch.length && !this.closed; i += CONCURRENCY) {
      await Promise.all(
        batch.slice(i, i + CONCURRENCY).map(async ([hash, expiresAt]) => {
          try {
            if (await this.isPaid(hash)) this.report(hash, 'poll');
            // Checked at least once after expiry, then dropped: it can no longer be paid.
            else if (expiresAt < nowS && this.open.get(hash) === expiresAt) this.open.delete(hash);
          } catch (err) {
            failures++;
            lastError = errorMessage(err);
          }
        }),
      );
    }
    if (failures > 0 && !this.closed) {
      this.opts.log.warn({ failures, err: this.scrub(lastError) }, 'LNbits invoice status checks failed');
    }
  }

  private report(paymentHash: string, via: 'websocket' | 'poll'): void {
    if (this.closed) return;
    this.open.delete(paymentHash); // known paid: never polled (or reported by polling) again
    this.opts.log.info({ paymentHash, via }, 'LNbits invoice settled');
    try {
      this.listener(paymentHash);
    } catch (err) {
      this.opts.log.error({ err: errorMessage(err), paymentHash }, 'settlement listener threw');
    }
  }

  /** Belt and braces: no message that reaches a log or an error may contain the key. */
  private scrub(text: string): string {
    return this.opts.apiKey ? text.split(this.opts.apiKey).join('[secret]') : text;
  }
}

/** Amount, payment hash and absolute expiry of a BOLT11 invoice; PaymentError when it does not decode. */
export function readBolt11(bolt: string, source = 'LNbits'): { amountMsats: number; paymentHash: string; expiresAt: number } {
  let sections: ReturnType<typeof decodeBolt11>['sections'];
  try {
    sections = decodeBolt11(bolt).sections;
  } catch (err) {
    throw new PaymentError(`${source} returned an undecodable invoice: ${errorMessage(err)}`);
  }
  const value = (name: string): unknown => {
    const s = sections.find((x) => x.name === name);
    return s && 'value' in s ? s.value : undefined;
  };
  const amount = value('amount'); // msats as a decimal string
  const hash = value('payment_hash');
  const timestamp = value('timestamp'); // unix s
  const expiry = value('expiry'); // s after timestamp
  if (typeof amount !== 'string' || !/^\d+$/.test(amount)) throw new PaymentError(`${source} invoice has no amount`);
  if (typeof hash !== 'string' || !HEX64.test(hash)) throw new PaymentError(`${source} invoice has no payment hash`);
  if (typeof timestamp !== 'number') throw new PaymentError(`${source} invoice has no timestamp`);
  const amountMsats = Number(amount);
  if (!Number.isSafeInteger(amountMsats)) throw new PaymentError(`${source} invoice amount is out of range`);
  const expirySecs = typeof expiry === 'number' ? expiry : DEFAULT_BOLT11_EXPIRY_S;
  return { amountMsats, paymentHash: hash.toLowerCase(), expiresAt: timestamp + expirySecs };
}

function detailOf(json: unknown, text: string, statusText: string): string {
  const parsed = ErrorBody.safeParse(json);
  if (parsed.success) {
    const d = parsed.data.detail;
    return typeof d === 'string' ? d : JSON.stringify(d);
  }
  return text ? text.slice(0, 200) : statusText || 'no detail';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
