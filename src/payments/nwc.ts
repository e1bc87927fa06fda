// The Nostr Wallet Connect (NIP-47) payment backend: any NWC wallet (Alby Hub, Coinos, Primal, Cashu.me, ...)
// receives for Timmy. Receiving only: `make_invoice`, `lookup_invoice`, and the `payment_received`
// notification as the push path.
//
// Wire format (NIP-47): the connection URI `nostr+walletconnect://<wallet pubkey>?relay=<url>&secret=<hex>`
// names the wallet service, its relays and the client's secret key (a secret: never logged). The wallet's
// info event (kind 13194, replaceable) lists the methods in its content, the notification types in a
// `notifications` tag and the encryptions in an `encryption` tag (`nip44_v2 nip04`; no tag = NIP-04 only).
// Requests are kind 23194 (`p` = wallet, `encryption` tag), responses kind 23195 (`e` = the request),
// {result_type, error: {code, message} | null, result}; notifications kind 23197 (NIP-44) or 23196 (NIP-04).
// All are ephemeral: a relay keeps none of them, so a notification sent while we are disconnected is lost.
// That is why, as with LNbits' websocket, polling (`lookup_invoice`) runs once after every (re)connect, and
// on an interval while the relay is down or the wallet does not notify.
//
// Why not @getalby/sdk's NWCClient: it bundles its own nostr-tools whose pool needs a global WebSocket (Node
// 22; Timmy runs on 20), writes to the console (61 console calls: they would break the JSON log lines),
// and gives no hook for a relay reconnect (when missed notifications must be looked up). This client is the
// daemon's own relay pool (reconnect with backoff, NIP-42 AUTH, pings) plus NIP-04/NIP-44 from nostr-tools.
import * as nip04 from 'nostr-tools/nip04';
import * as nip44 from 'nostr-tools/nip44';
import { z } from 'zod';
import type { Event } from 'nostr-tools';
import type { Logger } from '../log.ts';
import type { Health, Invoice, InvoiceRequest, PaymentBackend } from '../core/ports.ts';
import { PaymentError } from '../core/ports.ts';
import { HealthTracker } from '../core/health.ts';
import { getPublicKey } from 'nostr-tools/pure'; // pure JS: parsing a URL needs no wasm set up
import { finalizeEvent, verifyEvent } from '../nostr/crypto.ts';
import { RelayPool, type Subscription } from '../nostr/pool.ts';
import { asEvent } from '../nostr/intake.ts';
import { readBolt11 } from './lnbits.ts';
import { Coalesced } from './coalesced.ts';

const HEX64 = /^[0-9a-f]{64}$/;
export const NWC_KINDS = { info: 13194, request: 23194, response: 23195, notificationNip04: 23196, notificationNip44: 23197 } as const;

export type NwcEncryption = 'nip44_v2' | 'nip04';

export interface NwcConnection {
  walletPubkey: string;
  relays: string[];
  secret: Uint8Array;
  clientPubkey: string;
}

/** Why a connection URI cannot be used; the message never contains the secret. */
export class NwcUrlError extends Error {
  override name = 'NwcUrlError';
}

/** Parses `nostr+walletconnect://<pubkey>?relay=...&secret=...`, naming what is wrong (never the secret). */
export function parseNwcUrl(raw: string): NwcConnection {
  const m = /^nostr\+walletconnect:\/\/([^?/]*)\/?(?:\?(.*))?$/i.exec(raw.trim());
  if (!m) throw new NwcUrlError('NWC_URL must look like nostr+walletconnect://<wallet pubkey>?relay=wss://...&secret=<hex>');
  const walletPubkey = m[1]!.toLowerCase();
  if (!HEX64.test(walletPubkey)) throw new NwcUrlError('NWC_URL: the wallet pubkey (after nostr+walletconnect://) must be 64 hex characters');
  const params = new URLSearchParams(m[2] ?? '');
  const relays = params.getAll('relay').flatMap((r) => r.split(' ')).filter(Boolean);
  if (relays.length === 0) throw new NwcUrlError('NWC_URL: no relay= parameter');
  for (const r of relays) {
    let u: URL;
    try {
      u = new URL(r);
    } catch {
      throw new NwcUrlError(`NWC_URL: relay ${JSON.stringify(r.slice(0, 100))} is not a URL`);
    }
    if (u.protocol !== 'wss:' && u.protocol !== 'ws:') throw new NwcUrlError(`NWC_URL: relay ${u.host} must be a ws:// or wss:// URL`);
  }
  const secretHex = (params.get('secret') ?? '').toLowerCase();
  if (!secretHex) throw new NwcUrlError('NWC_URL: no secret= parameter');
  if (!HEX64.test(secretHex)) throw new NwcUrlError('NWC_URL: secret= must be 64 hex characters');
  const secret = Uint8Array.from(Buffer.from(secretHex, 'hex'));
  return { walletPubkey, relays, secret, clientPubkey: getPublicKey(secret) };
}

/** A wallet's error reply: its NIP-47 code and message, with words for operators and customers. */
export class NwcWalletError extends PaymentError {
  override name = 'NwcWalletError';
  constructor(
    readonly code: string,
    readonly walletMessage: string,
  ) {
    super(`the NWC wallet refused: ${code}: ${walletMessage.slice(0, 200)}${NWC_ERROR_HINTS[code] ? ` (${NWC_ERROR_HINTS[code]})` : ''}`);
  }
}

/** What each NIP-47 error code means for an operator. */
const NWC_ERROR_HINTS: Record<string, string> = {
  RATE_LIMITED: 'the wallet asks us to slow down; retried later',
  QUOTA_EXCEEDED: "the connection's budget is used up; raise it in the wallet",
  RESTRICTED: 'this connection is not allowed to do that; give it make_invoice and lookup_invoice permissions',
  UNAUTHORIZED: 'the wallet does not know this connection; make a new connection string',
  NOT_IMPLEMENTED: 'the wallet does not support this method',
  UNSUPPORTED_ENCRYPTION: 'the wallet does not accept the encryption used',
  INTERNAL: "the wallet's own error",
  NOT_FOUND: 'no such invoice in this wallet',
};

const Reply = z.object({
  result_type: z.string().optional(),
  error: z.object({ code: z.string(), message: z.string().default('') }).nullish(),
  result: z.record(z.string(), z.unknown()).nullish(),
});
const Transaction = z.object({
  invoice: z.string().nullish(),
  payment_hash: z.string().nullish(),
  amount: z.number().nullish(),
  settled_at: z.number().nullish(),
  state: z.string().nullish(), // newer wallets: pending | settled | expired | failed
  preimage: z.string().nullish(),
});
const Notification = z.object({
  notification_type: z.string(),
  notification: z.object({ payment_hash: z.string(), type: z.string().optional(), amount: z.number().optional() }).passthrough(),
});

export interface NwcOptions {
  url: string;
  log: Logger;
  /** ms between polls of open invoices while the relay is down or the wallet sends no notifications; default 5000. */
  pollIntervalMs?: number;
  /** ms to wait for a wallet's reply; default 30_000. */
  replyTimeoutMs?: number;
}

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  method: string;
}

export class NwcPayments implements PaymentBackend {
  readonly name = 'nwc' as const;
  readonly conn: NwcConnection;
  private readonly pool: RelayPool;
  private listener: (paymentHash: string) => void = () => {};
  /** Invoices not yet known paid: payment hash -> expiresAt (unix s). */
  private readonly open = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  private readonly pollIntervalMs: number;
  private readonly replyTimeoutMs: number;
  private readonly subscribedSince = Math.floor(Date.now() / 1000) - 60;
  private info: { methods: Set<string>; notifications: Set<string>; encryption: NwcEncryption } | null = null;
  private infoLoading: Promise<void> | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  /** Set at each (re)connect, cleared by the first lookup pass that completes: until then the timer polls. */
  private catchUp = false;
  private connects = 0;
  private closed = false;
  private readonly poll = new Coalesced(
    () => this.pollOnce(),
    (err) => this.opts.log.warn({ err: (err as Error).message }, 'NWC poll failed'),
    () => this.closed,
  );
  private started = false;

  constructor(private readonly opts: NwcOptions) {
    this.conn = parseNwcUrl(opts.url);
    this.pollIntervalMs = opts.pollIntervalMs ?? 5000;
    this.replyTimeoutMs = opts.replyTimeoutMs ?? 30_000;
    const relays = this.conn.relays.map((url) => ({ url, read: true, write: true }));
    this.pool = new RelayPool(
      relays,
      {
        subscriptions: () => this.subscriptions(),
        onEvent: (_relay, _sub, ev) => this.onEvent(ev),
        onOk: (relay, id, ok, message) => {
          if (!ok && this.pending.has(id)) this.opts.log.warn({ relay, message: message.slice(0, 200) }, 'NWC relay refused a request');
        },
        onConnected: () => {
          this.infoLoading = null; // a wallet may have changed its info while we were away
          // Notifications sent while we were away are lost: look up what is open, until one whole pass
          // succeeds (the wallet service may come back after us and miss the first lookups).
          this.catchUp = true;
          this.connects++;
          this.triggerPoll();
        },
        signAuth: (t) => finalizeEvent(t, this.conn.secret),
      },
      { maxMessageBytes: 512 * 1024 },
      opts.log,
    );
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.pool.start();
    this.pollTimer = setInterval(() => {
      // Notifications are the push path; without them (relay down, or a wallet that does not send
      // payment_received) the open invoices are looked up on this interval.
      if (this.catchUp || this.pool.connectedCount === 0 || !this.info?.notifications.has('payment_received')) this.triggerPoll();
    }, this.pollIntervalMs);
    this.pollTimer.unref();
  }

  get relayConnected(): boolean {
    return this.pool.connectedCount > 0;
  }

  /** The encryption in use (after the wallet's info event was read), for operators and tests. */
  get encryption(): NwcEncryption | null {
    return this.info?.encryption ?? null;
  }

  async createInvoice(req: InvoiceRequest): Promise<Invoice> {
    if (!Number.isSafeInteger(req.amountMsats) || req.amountMsats <= 0) throw new PaymentError(`invalid invoice amount ${req.amountMsats} msats`);
    const r = Transaction.safeParse(await this.call('make_invoice', { amount: req.amountMsats, expiry: req.expirySecs, ...(req.descriptionHash ? { description_hash: req.descriptionHash } : { description: req.memo }) }));
    if (!r.success || !r.data.invoice) throw new PaymentError('the NWC wallet answered make_invoice without an invoice');
    const bolt = r.data.invoice;
    const decoded = readBolt11(bolt, 'the NWC wallet');
    // Some wallets leave payment_hash out of make_invoice's reply: the bolt11 carries it.
    const claimed = r.data.payment_hash?.toLowerCase();
    if (claimed && claimed !== decoded.paymentHash) throw new PaymentError('the NWC wallet answered a payment hash that does not match its invoice');
    if (decoded.amountMsats !== req.amountMsats) throw new PaymentError(`the NWC wallet made an invoice for ${decoded.amountMsats} msats, asked for ${req.amountMsats}`);
    const invoice: Invoice = { paymentHash: decoded.paymentHash, bolt11: bolt, amountMsats: req.amountMsats, expiresAt: decoded.expiresAt };
    this.open.set(invoice.paymentHash, invoice.expiresAt);
    this.opts.log.debug({ paymentHash: invoice.paymentHash, amountSats: invoice.amountMsats / 1000 }, 'NWC invoice created');
    return invoice;
  }

  async isPaid(paymentHash: string): Promise<boolean> {
    if (!HEX64.test(paymentHash)) throw new PaymentError('invalid payment hash');
    let result: Record<string, unknown>;
    try {
      result = await this.call('lookup_invoice', { payment_hash: paymentHash });
    } catch (err) {
      if (err instanceof NwcWalletError && err.code === 'NOT_FOUND') return false;
      throw err;
    }
    const t = Transaction.safeParse(result);
    if (!t.success) throw new PaymentError('the NWC wallet answered lookup_invoice with an unexpected body');
    return t.data.state ? t.data.state === 'settled' : t.data.settled_at != null && t.data.settled_at > 0;
  }

  onSettled(listener: (paymentHash: string) => void): void {
    this.listener = listener;
  }

  watch(paymentHash: string, expiresAt: number): void {
    if (!HEX64.test(paymentHash)) throw new PaymentError('invalid payment hash');
    this.open.set(paymentHash, expiresAt);
  }

  /** The wallet as last seen: every reply reports; a stale reading reads the wallet's info event again. */
  private readonly tracker = new HealthTracker(async () => {
    this.infoLoading = null;
    await this.loadInfo();
  });

  health(): Health {
    if (!this.relayConnected) return { ok: false, detail: `no connection to the wallet's relay (${this.pool.status().map((s) => s.url).join(', ')})` };
    const h = this.tracker.read(10_000);
    if (!h.ok) return h;
    const push = this.info?.notifications.has('payment_received') ? 'settlements pushed as notifications' : 'no notifications from this wallet, polling';
    return { ok: true, detail: `answering over ${this.info?.encryption ?? 'NWC'}; ${push}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new PaymentError('the NWC backend is shutting down'));
      this.pending.delete(id);
    }
    this.pool.close();
    await this.poll.current?.catch(() => {});
  }

  // --- requests and replies ---

  private subscriptions(): Subscription[] {
    const { walletPubkey, clientPubkey } = this.conn;
    return [
      {
        id: 'nwc',
        filters: [
          {
            kinds: [NWC_KINDS.response, NWC_KINDS.notificationNip04, NWC_KINDS.notificationNip44],
            authors: [walletPubkey],
            '#p': [clientPubkey],
            since: this.subscribedSince,
          },
        ],
      },
    ];
  }

  /** Reads the wallet's info event: its methods, notification types and the encryption to use. */
  private loadInfo(): Promise<void> {
    this.infoLoading ??= (async () => {
      const events = (await this.pool.query({ kinds: [NWC_KINDS.info], authors: [this.conn.walletPubkey], limit: 5 }, 5000))
        .map(asEvent)
        .filter((e): e is Event => e !== null && e.pubkey === this.conn.walletPubkey && verifyEvent(e))
        .sort((a, b) => b.created_at - a.created_at);
      const ev = events[0];
      if (!ev) throw new PaymentError("the NWC wallet's info event (kind 13194) was not found on its relay");
      const tag = (name: string) => new Set((ev.tags.find((t) => t[0] === name)?.[1] ?? '').split(/\s+/).filter(Boolean));
      const methods = new Set(ev.content.split(/\s+/).filter(Boolean));
      const encryptions = tag('encryption');
      // No encryption tag: a wallet from before NIP-44 support, NIP-04 only.
      const encryption: NwcEncryption | null =
        encryptions.size === 0 ? 'nip04' : encryptions.has('nip44_v2') ? 'nip44_v2' : encryptions.has('nip04') ? 'nip04' : null;
      if (!encryption) throw new PaymentError(`the NWC wallet offers no encryption Timmy speaks (${[...encryptions].join(' ')})`);
      for (const m of ['make_invoice', 'lookup_invoice']) {
        if (!methods.has(m)) throw new PaymentError(`the NWC connection does not allow ${m}; give it receive permissions (make_invoice, lookup_invoice)`);
      }
      const changed = this.info?.encryption !== encryption;
      this.info = { methods, notifications: tag('notifications'), encryption };
      if (changed) this.opts.log.info({ encryption, notifications: [...this.info.notifications] }, 'NWC wallet info read');
    })().catch((err: unknown) => {
      this.infoLoading = null;
      throw err;
    });
    return this.infoLoading;
  }

  /** One NIP-47 request; resolves with the result, rejects with NwcWalletError (the wallet's error) or PaymentError. */
  private async call(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.closed) throw new PaymentError('the NWC backend is shut down');
    try {
      await this.loadInfo();
      const result = await this.send(method, params);
      this.tracker.ok('answering');
      return result;
    } catch (err) {
      // A wallet that answers with an error for one invoice is healthy; silence, refusals of the
      // connection itself and a missing relay are not.
      const code = err instanceof NwcWalletError ? err.code : null;
      if (code === null || ['UNAUTHORIZED', 'RESTRICTED', 'QUOTA_EXCEEDED', 'INTERNAL', 'UNSUPPORTED_ENCRYPTION'].includes(code)) this.tracker.failed((err as Error).message);
      throw err;
    }
  }

  private send(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const encryption = this.info!.encryption;
    const plaintext = JSON.stringify({ method, params });
    const content = encryption === 'nip44_v2' ? nip44.encrypt(plaintext, this.conversationKey()) : nip04.encrypt(this.conn.secret, this.conn.walletPubkey, plaintext);
    const tags = [['p', this.conn.walletPubkey], ['expiration', String(Math.floor(Date.now() / 1000) + Math.ceil(this.replyTimeoutMs / 1000))]];
    if (encryption === 'nip44_v2') tags.push(['encryption', 'nip44_v2']);
    const request = finalizeEvent({ kind: NWC_KINDS.request, created_at: Math.floor(Date.now() / 1000), tags, content }, this.conn.secret);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(request.id);
        reject(new PaymentError(`the NWC wallet did not answer ${method} within ${this.replyTimeoutMs / 1000} s`));
      }, this.replyTimeoutMs);
      this.pending.set(request.id, { resolve, reject, timer, method });
      if (this.pool.publish(request).length === 0) {
        clearTimeout(timer);
        this.pending.delete(request.id);
        reject(new PaymentError("the NWC wallet's relay is not connected"));
      }
    });
  }

  private conversationKeyCache: Uint8Array | null = null;
  private conversationKey(): Uint8Array {
    this.conversationKeyCache ??= nip44.getConversationKey(this.conn.secret, this.conn.walletPubkey);
    return this.conversationKeyCache;
  }

  /** Content of a wallet event in whichever scheme it was written (NIP-44 payloads are base64 without `?iv=`). */
  private decrypt(content: string): string {
    if (content.includes('?iv=')) return nip04.decrypt(this.conn.secret, this.conn.walletPubkey, content);
    return nip44.decrypt(content, this.conversationKey());
  }

  private onEvent(raw: unknown): void {
    // Whatever a relay sends: checked for shape before anything reads it, then for its signature.
    const ev = asEvent(raw);
    if (!ev || ev.pubkey !== this.conn.walletPubkey || !verifyEvent(ev)) return;
    let text: string;
    try {
      text = this.decrypt(ev.content);
    } catch {
      this.opts.log.warn({ kind: ev.kind }, 'NWC event that does not decrypt; dropped');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return;
    }
    if (ev.kind === NWC_KINDS.response) {
      const id = ev.tags.find((t) => t[0] === 'e')?.[1];
      const p = id ? this.pending.get(id) : undefined;
      if (!p || !id) return;
      this.pending.delete(id);
      clearTimeout(p.timer);
      const reply = Reply.safeParse(json);
      if (!reply.success) return p.reject(new PaymentError(`the NWC wallet answered ${p.method} with an unexpected body`));
      if (reply.data.error) return p.reject(new NwcWalletError(reply.data.error.code, reply.data.error.message));
      if (!reply.data.result) return p.reject(new PaymentError(`the NWC wallet answered ${p.method} without a result`));
      return p.resolve(reply.data.result);
    }
    const n = Notification.safeParse(json);
    if (!n.success || n.data.notification_type !== 'payment_received') return;
    const hash = n.data.notification.payment_hash.toLowerCase();
    if (HEX64.test(hash)) this.report(hash, 'notification');
  }

  // --- polling (the safety net) ---

  private triggerPoll(): void {
    this.poll.trigger();
  }

  private async pollOnce(): Promise<void> {
    const nowS = Math.floor(Date.now() / 1000);
    const connectsBefore = this.connects;
    for (const [hash, expiresAt] of [...this.open.entries()]) {
      if (this.closed || this.pool.connectedCount === 0) return;
      try {
        if (await this.isPaid(hash)) this.report(hash, 'lookup');
        else if (expiresAt < nowS && this.open.get(hash) === expiresAt) this.open.delete(hash); // looked up once after expiry
      } catch (err) {
        if (err instanceof NwcWalletError && err.code === 'RATE_LIMITED') {
          this.opts.log.warn('NWC wallet rate-limited our lookups; the rest wait for the next poll');
          return;
        }
        throw err;
      }
    }
    // Every open invoice was looked up (a failure above returns or throws first): caught up, unless a
    // reconnect happened meanwhile and asked for a pass of its own.
    if (this.connects === connectsBefore && this.pool.connectedCount > 0) this.catchUp = false;
  }

  private report(paymentHash: string, via: 'notification' | 'lookup'): void {
    if (this.closed) return;
    this.open.delete(paymentHash);
    this.opts.log.info({ paymentHash, via }, 'NWC invoice settled');
    try {
      this.listener(paymentHash);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message, paymentHash }, 'settlement listener threw');
    }
  }
}
