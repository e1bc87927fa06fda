// A fake NIP-47 wallet service on a real relay: it publishes its info event (kind 13194), answers requests
// (kind 23194) with responses (kind 23195) in the request's encryption, makes real decodable regtest BOLT11
// invoices with real preimages, and sends `payment_received` notifications (kind 23197 NIP-44, or 23196
// NIP-04) when a test pays one. Like a real wallet service it refuses requests from keys it has no
// connection for (UNAUTHORIZED), methods it does not offer (NOT_IMPLEMENTED) and encryptions it does not
// speak (UNSUPPORTED_ENCRYPTION); and it has the quirks of real wallets on demand: NIP-04 only (no
// `encryption` tag), no `payment_hash` in make_invoice's reply, RATE_LIMITED replies, and notifications that
// are simply lost while nobody is listening (they are ephemeral events; the relay keeps none).
import { createHash, randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import bolt11 from 'bolt11';
import * as nip04 from 'nostr-tools/nip04';
import * as nip44 from 'nostr-tools/nip44';
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from 'nostr-tools/pure';

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
const NODE_KEY = randomBytes(32).toString('hex');

export interface FakeWalletOptions {
  relayUrl: string;
  /** A wallet from before NIP-44: no `encryption` tag in its info, NIP-04 only. */
  nip04Only?: boolean;
  /** Leave `payment_hash` out of make_invoice replies (some wallets do). */
  omitPaymentHash?: boolean;
  /** Methods in the info event; default make_invoice lookup_invoice get_info. */
  methods?: string[];
  /** Send no notifications at all (a wallet without them). */
  noNotifications?: boolean;
}

interface FakeInvoice {
  paymentHash: string;
  preimage: string;
  bolt11: string;
  amountMsats: number;
  description: string;
  createdAt: number;
  expiresAt: number;
  settledAt: number | null;
}

export interface RecordedNwcRequest {
  method: string;
  params: Record<string, unknown>;
  encryption: 'nip44_v2' | 'nip04';
  from: string;
}

export class FakeNwcWallet {
  readonly walletSecret = generateSecretKey();
  readonly walletPubkey = getPublicKey(this.walletSecret);
  readonly clientSecret = generateSecretKey();
  readonly clientPubkey = getPublicKey(this.clientSecret);
  readonly requests: RecordedNwcRequest[] = [];
  readonly invoices = new Map<string, FakeInvoice>();
  /** Notifications published (lost ones are not counted). */
  notificationsSent = 0;
  private ws: WebSocket | null = null;
  /** True while the wallet service's relay connection is open. */
  connected = false;
  private closed = false;
  private rateLimited = 0;

  constructor(private readonly o: FakeWalletOptions) {}

  /** The connection string a wallet would show its user. */
  get url(): string {
    return `nostr+walletconnect://${this.walletPubkey}?relay=${encodeURIComponent(this.o.relayUrl)}&secret=${Buffer.from(this.clientSecret).toString('hex')}`;
  }

  async start(): Promise<this> {
    await this.connect();
    return this;
  }

  /** Answers the next `n` requests with RATE_LIMITED. */
  rateLimitNext(n: number): void {
    this.rateLimited = n;
  }

  /** Settles an invoice as if a payer paid it; notifies the client when connected (else the notification is lost). */
  pay(paymentHash: string): boolean {
    const inv = this.invoices.get(paymentHash);
    if (!inv || inv.settledAt !== null) return false;
    inv.settledAt = Math.floor(Date.now() / 1000);
    if (this.o.noNotifications || !this.connected) return true;
    const notification = {
      notification_type: 'payment_received',
      notification: { type: 'incoming', invoice: inv.bolt11, payment_hash: inv.paymentHash, preimage: inv.preimage, amount: inv.amountMsats, settled_at: inv.settledAt, created_at: inv.createdAt, expires_at: inv.expiresAt, fees_paid: 0 },
    };
    const nip04Only = this.o.nip04Only === true;
    const content = this.encrypt(JSON.stringify(notification), nip04Only ? 'nip04' : 'nip44_v2');
    this.publish({ kind: nip04Only ? 23196 : 23197, tags: [['p', this.clientPubkey]], content });
    this.notificationsSent++;
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ws?.terminate();
  }

  // --- the relay connection (reconnects like a real wallet service) ---

  private connect(): Promise<void> {
    return new Promise((resolve) => {
      const ws = new WebSocket(this.o.relayUrl);
      this.ws = ws;
      ws.on('open', () => {
        this.connected = true;
        this.publishInfo();
        ws.send(JSON.stringify(['REQ', 'requests', { kinds: [23194], '#p': [this.walletPubkey], since: Math.floor(Date.now() / 1000) - 10 }]));
        resolve();
      });
      ws.on('message', (data) => this.onMessage(String(data)));
      ws.on('error', () => {});
      ws.on('close', () => {
        this.connected = false;
        if (this.closed) return resolve();
        setTimeout(() => void this.connect().then(resolve), 100);
      });
    });
  }

  private publishInfo(): void {
    const methods = this.o.methods ?? ['make_invoice', 'lookup_invoice', 'get_info'];
    const tags: string[][] = [];
    if (!this.o.nip04Only) tags.push(['encryption', 'nip44_v2 nip04']);
    if (!this.o.noNotifications) tags.push(['notifications', 'payment_received']);
    this.publish({ kind: 13194, tags, content: [...methods, ...(this.o.noNotifications ? [] : ['notifications'])].join(' ') });
  }

  private publish(t: { kind: number; tags: string[][]; content: string }): void {
    const ev = finalizeEvent({ ...t, created_at: Math.floor(Date.now() / 1000) }, this.walletSecret);
    if (this.connected) this.ws?.send(JSON.stringify(['EVENT', ev]));
  }

  private onMessage(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(msg) || msg[0] !== 'EVENT' || msg[1] !== 'requests') return;
    const ev = msg[2] as Event;
    if (!verifyEvent(ev) || ev.kind !== 23194) return;
    this.onRequest(ev);
  }

  // --- requests ---

  private onRequest(ev: Event): void {
    const tagged = ev.tags.find((t) => t[0] === 'encryption')?.[1];
    const encryption: 'nip44_v2' | 'nip04' = tagged === 'nip44_v2' ? 'nip44_v2' : 'nip04';
    const reply = (result_type: string, body: { result?: unknown; error?: { code: string; message: string } }) => {
      const content = this.encrypt(JSON.stringify({ result_type, error: body.error ?? null, result: body.result ?? null }), encryption, ev.pubkey);
      this.publish({ kind: 23195, tags: [['p', ev.pubkey], ['e', ev.id]], content });
    };
    if (ev.pubkey !== this.clientPubkey) return reply('unknown', { error: { code: 'UNAUTHORIZED', message: 'no wallet connected for this pubkey' } });
    if (tagged !== undefined && tagged !== 'nip44_v2' && tagged !== 'nip04') return reply('unknown', { error: { code: 'UNSUPPORTED_ENCRYPTION', message: `unknown encryption ${tagged}` } });
    if (encryption === 'nip44_v2' && this.o.nip04Only) return reply('unknown', { error: { code: 'UNSUPPORTED_ENCRYPTION', message: 'this wallet speaks NIP-04 only' } });
    let req: { method?: unknown; params?: unknown };
    try {
      req = JSON.parse(this.decrypt(ev.content, encryption, ev.pubkey)) as typeof req;
    } catch {
      return reply('unknown', { error: { code: 'OTHER', message: 'could not decrypt or parse the request' } });
    }
    const method = typeof req.method === 'string' ? req.method : '';
    const params = (req.params && typeof req.params === 'object' ? req.params : {}) as Record<string, unknown>;
    this.requests.push({ method, params, encryption, from: ev.pubkey });
    if (this.rateLimited > 0) {
      this.rateLimited--;
      return reply(method, { error: { code: 'RATE_LIMITED', message: 'slow down' } });
    }
    const methods = this.o.methods ?? ['make_invoice', 'lookup_invoice', 'get_info'];
    if (!methods.includes(method)) return reply(method, { error: { code: 'NOT_IMPLEMENTED', message: `${method} is not supported` } });
    if (method === 'make_invoice') return reply(method, this.makeInvoice(params));
    if (method === 'lookup_invoice') return reply(method, this.lookupInvoice(params));
    return reply(method, { result: { alias: 'fake wallet', network: 'regtest', methods, notifications: this.o.noNotifications ? [] : ['payment_received'] } });
  }

  private makeInvoice(p: Record<string, unknown>): { result?: unknown; error?: { code: string; message: string } } {
    const amount = p.amount;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) return { error: { code: 'OTHER', message: 'amount (msats) must be a positive integer' } };
    const expiry = typeof p.expiry === 'number' && p.expiry > 0 ? p.expiry : 86_400;
    const description = typeof p.description === 'string' ? p.description : '';
    const preimage = randomBytes(32);
    const paymentHash = createHash('sha256').update(preimage).digest('hex');
    const createdAt = Math.floor(Date.now() / 1000);
    const unsigned = bolt11.encode({
      network: REGTEST,
      millisatoshis: String(amount),
      timestamp: createdAt,
      tags: [
        { tagName: 'payment_hash', data: paymentHash },
        { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
        typeof p.description_hash === 'string' && /^[0-9a-f]{64}$/.test(p.description_hash) ? { tagName: 'purpose_commit_hash', data: p.description_hash } : { tagName: 'description', data: description },
        { tagName: 'expire_time', data: expiry },
        { tagName: 'min_final_cltv_expiry', data: 18 },
      ],
    });
    const invoice = bolt11.sign(unsigned, NODE_KEY).paymentRequest!;
    const inv: FakeInvoice = { paymentHash, preimage: preimage.toString('hex'), bolt11: invoice, amountMsats: amount, description, createdAt, expiresAt: createdAt + expiry, settledAt: null };
    this.invoices.set(paymentHash, inv);
    const { payment_hash: _, ...withoutHash } = this.transaction(inv);
    return { result: this.o.omitPaymentHash ? withoutHash : this.transaction(inv) };
  }

  private lookupInvoice(p: Record<string, unknown>): { result?: unknown; error?: { code: string; message: string } } {
    const byHash = typeof p.payment_hash === 'string' ? this.invoices.get(p.payment_hash) : undefined;
    const byInvoice = typeof p.invoice === 'string' ? [...this.invoices.values()].find((i) => i.bolt11 === p.invoice) : undefined;
    const inv = byHash ?? byInvoice;
    if (!inv) return { error: { code: 'NOT_FOUND', message: 'invoice not found' } };
    return { result: this.transaction(inv) };
  }

  private transaction(inv: FakeInvoice): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    const state = inv.settledAt !== null ? 'settled' : inv.expiresAt < now ? 'expired' : 'pending';
    return {
      type: 'incoming',
      state,
      invoice: inv.bolt11,
      description: inv.description,
      payment_hash: inv.paymentHash,
      amount: inv.amountMsats,
      fees_paid: 0,
      created_at: inv.createdAt,
      expires_at: inv.expiresAt,
      ...(inv.settledAt !== null ? { settled_at: inv.settledAt, preimage: inv.preimage } : {}),
    };
  }

  private encrypt(text: string, encryption: 'nip44_v2' | 'nip04', to = this.clientPubkey): string {
    return encryption === 'nip44_v2' ? nip44.encrypt(text, nip44.getConversationKey(this.walletSecret, to)) : nip04.encrypt(this.walletSecret, to, text);
  }

  private decrypt(content: string, encryption: 'nip44_v2' | 'nip04', from: string): string {
    return encryption === 'nip44_v2' ? nip44.decrypt(content, nip44.getConversationKey(this.walletSecret, from)) : nip04.decrypt(this.walletSecret, from, content);
  }
}
