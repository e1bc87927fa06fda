// A local fake of an LNbits wallet on 127.0.0.1 (HTTP + websocket), faithful to LNbits' wire format
// (lnbits/core/views/payment_api.py, websocket_api.py, decorators.py, exceptions.py,
// core/services/notifications.py, core/models/payments.py):
// - the key travels in `X-Api-Key` (or `?api-key=`); none: 401 "No Api Key provided.", unknown:
//   404 "Wallet not found." (1.x) / 401 "Invalid key or wallet." (0.12 'legacy' flavour);
// - POST /api/v1/payments answers 201 with the Payment model (1.x) or {payment_hash, payment_request,
//   checking_id, lnurl_response} (legacy); `out` defaults to true, so out:true (or no `out`) with the
//   invoice key is refused with 403 "Invoice (or Admin) key required." (legacy: 401);
// - a missing amount reaches `not amount > 0` in create_invoice and is a Python TypeError: LNbits answers
//   500 with the exception text; amount 0 is an InvoiceError: 520 {"detail": ..., "status": "failed"};
// - GET /api/v1/payments/{hash} works with or without a key, `details` only with this wallet's key;
// - WS /api/v1/ws/{item_id} accepts any item id; a settled payment is pushed as
//   {"wallet_balance": sats, "payment": Payment} to the invoice-key and admin-key channels and as
//   {"pending": false, "status": "success"} to the payment-hash channel.
// Invoices are real regtest BOLT11 (signed by a random node key) with real preimages.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import bolt11 from 'bolt11';
import { WebSocketServer, type WebSocket } from 'ws';

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
const DEFAULT_EXPIRY_S = 3600; // settings.lightning_invoice_expiry
const SITE_TITLE = 'LNbits'; // settings.lnbits_site_title, the memo when none is given
const MAX_MEMO_CHARS = 640;
const MAX_BODY_BYTES = 64 * 1024;

export type FakeLnbitsFlavour = 'v1' | 'legacy';

export interface FakeLnbitsOptions {
  invoiceKey?: string;
  adminKey?: string;
  /** 'v1' (default): LNbits 1.x answers; 'legacy': LNbits 0.12 answers. */
  flavour?: FakeLnbitsFlavour;
}

export interface FakePayment {
  checkingId: string;
  paymentHash: string;
  preimage: string; // hex; sha256(preimage) = paymentHash
  bolt11: string;
  amountMsats: number;
  memo: string;
  createdAt: Date;
  expiresAt: number; // unix s
  paidAt: Date | null;
}

export interface RecordedLnbitsRequest {
  method: string;
  path: string;
  key: 'invoice' | 'admin' | 'other' | 'none';
  status: number;
}

export interface FakeLnbits {
  url: string;
  invoiceKey: string;
  adminKey: string;
  walletId: string;
  /** Every HTTP request in arrival order (websocket upgrades excluded). */
  requests: RecordedLnbitsRequest[];
  readonly stats: {
    invoicesCreated: number;
    requests: number;
    statusChecks: number; // GET /api/v1/payments/{hash}
    wsConnections: number; // accepted websocket connections in total
    wsRefused: number;
  };
  /** Websocket connections currently open. */
  readonly wsClients: number;
  invoice(paymentHash: string): FakePayment | undefined;
  /** Settles an invoice as if the node received the HTLC; pushes the websocket notification; returns the preimage. */
  pay(paymentHash: string): string;
  /** The next `times` API requests answer `status` {"detail": detail} whatever they are. */
  failNext(status: number, detail: string, times?: number): void;
  /** While on, every API request answers 500 {"detail": "Internal Server Error"}. */
  setFailing(on: boolean): void;
  /** While on, websocket upgrades are refused with 503 (as a proxy in front of a down LNbits would). */
  refuseWebsockets(on: boolean): void;
  /** Closes every open websocket abruptly (TCP reset, no close frame). */
  dropWebsockets(): void;
  /** Sends a raw text frame to every open websocket (to exercise tolerant parsing). */
  pushRaw(data: string): void;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

/** pydantic's datetime JSON: ISO 8601 with an explicit UTC offset. */
function isoUtc(d: Date): string {
  return d.toISOString().replace('Z', '+00:00');
}

function randomKey(): string {
  return randomBytes(16).toString('hex'); // LNbits keys are uuid4().hex
}

export async function startFakeLnbits(opts: FakeLnbitsOptions = {}): Promise<FakeLnbits> {
  const flavour = opts.flavour ?? 'v1';
  const invoiceKey = opts.invoiceKey ?? randomKey();
  const adminKey = opts.adminKey ?? randomKey();
  const walletId = randomKey();
  const nodeKey = randomBytes(32).toString('hex');
  const payments = new Map<string, FakePayment>();
  const channels = new Map<WebSocket, string>(); // open websocket -> item id it subscribed to
  const requests: RecordedLnbitsRequest[] = [];
  const stats = { invoicesCreated: 0, requests: 0, statusChecks: 0, wsConnections: 0, wsRefused: 0 };
  const failures: { status: number; detail: string; left: number }[] = [];
  let failing = false;
  let refusing = false;
  let balanceMsats = 0;

  function keyKind(key: string | undefined): RecordedLnbitsRequest['key'] {
    if (key === undefined) return 'none';
    if (key === invoiceKey) return 'invoice';
    if (key === adminKey) return 'admin';
    return 'other';
  }

  function paymentJson(p: FakePayment): Record<string, unknown> {
    const paid = p.paidAt !== null;
    const common = {
      checking_id: p.checkingId,
      payment_hash: p.paymentHash,
      wallet_id: walletId,
      amount: p.amountMsats,
      fee: 0,
      bolt11: p.bolt11,
      memo: p.memo,
      expiry: isoUtc(new Date(p.expiresAt * 1000)),
      webhook: null,
      webhook_status: null,
      preimage: paid ? p.preimage : null,
      tag: null,
      extension: null,
      time: isoUtc(p.createdAt),
      extra: {},
    };
    if (flavour === 'legacy') return { ...common, pending: !paid };
    return {
      ...common,
      payment_request: p.bolt11,
      fiat_provider: null,
      status: paid ? 'success' : 'pending',
      created_at: isoUtc(p.createdAt),
      updated_at: isoUtc(p.paidAt ?? p.createdAt),
      labels: [],
    };
  }

  function createInvoice(body: Record<string, unknown>): FakePayment {
    const amount = body.amount;
    if (amount === undefined || amount === null) {
      // What LNbits really does: CreateInvoice.amount defaults to None and create_invoice evaluates `not amount > 0`.
      throw new HttpError(500, "'>' not supported between instances of 'NoneType' and 'int'");
    }
    if (typeof amount !== 'number' || !Number.isFinite(amount)) throw new HttpError(400, 'value is not a valid float');
    if (amount < 0) throw new HttpError(400, 'ensure this value is greater than or equal to 0');
    if (!(amount > 0)) throw new HttpError(520, 'Amountless invoices not supported.', { status: 'failed' });
    const unit = body.unit ?? 'sat';
    if (unit !== 'sat') throw new HttpError(400, 'The provided unit is not supported'); // the fake has no fiat rates
    const memo = body.memo ?? SITE_TITLE;
    if (typeof memo !== 'string') throw new HttpError(400, 'str type expected');
    if (memo.length > MAX_MEMO_CHARS) throw new HttpError(400, `ensure this value has at most ${MAX_MEMO_CHARS} characters`);
    const expiry = body.expiry ?? DEFAULT_EXPIRY_S;
    if (typeof expiry !== 'number' || !Number.isInteger(expiry)) throw new HttpError(400, 'value is not a valid integer');

    const amountMsats = Math.floor(amount) * 1000; // unit 'sat': whole sats
    const preimage = randomBytes(32);
    const paymentHash = createHash('sha256').update(preimage).digest('hex');
    const createdAt = new Date();
    const timestamp = Math.floor(createdAt.getTime() / 1000);
    const unsigned = bolt11.encode({
      network: REGTEST,
      millisatoshis: String(amountMsats),
      timestamp,
      tags: [
        { tagName: 'payment_hash', data: paymentHash },
        { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
        typeof body.description_hash === 'string' ? { tagName: 'purpose_commit_hash', data: body.description_hash } : { tagName: 'description', data: memo },
        { tagName: 'expire_time', data: expiry },
        { tagName: 'min_final_cltv_expiry', data: 18 },
      ],
    });
    const pr = bolt11.sign(unsigned, nodeKey).paymentRequest;
    if (!pr) throw new HttpError(520, 'unexpected backend error.', { status: 'pending' });
    const p: FakePayment = {
      checkingId: paymentHash,
      paymentHash,
      preimage: preimage.toString('hex'),
      bolt11: pr,
      amountMsats,
      memo,
      createdAt,
      expiresAt: timestamp + expiry,
      paidAt: null,
    };
    payments.set(paymentHash, p);
    stats.invoicesCreated++;
    return p;
  }

  function postPayments(key: string | undefined, body: unknown): { status: number; json: unknown } {
    const kind = requireKey(key);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HttpError(400, 'value is not a valid dict');
    }
    const b = body as Record<string, unknown>;
    const out = b.out ?? true; // CreateInvoice.out defaults to True
    if (typeof out !== 'boolean') throw new HttpError(400, 'value could not be parsed to a boolean');
    if (out) {
      if (kind !== 'admin') {
        throw new HttpError(flavour === 'legacy' ? 401 : 403, 'Invoice (or Admin) key required.');
      }
      if (!b.bolt11) throw new HttpError(400, flavour === 'legacy' ? 'BOLT11 string is invalid or not given' : 'Missing BOLT11 invoice');
      throw new HttpError(520, 'Payment failed: this fake wallet cannot send.', { status: 'failed' });
    }
    const p = createInvoice(b);
    if (flavour === 'legacy') {
      return {
        status: 201,
        json: { payment_hash: p.paymentHash, payment_request: p.bolt11, checking_id: p.checkingId, lnurl_response: null },
      };
    }
    return { status: 201, json: paymentJson(p) };
  }

  function getPayment(key: string | undefined, hash: string): { status: number; json: unknown } {
    stats.statusChecks++;
    // LNbits looks the key up but does not require it; only this wallet's key adds `details`.
    const own = key === invoiceKey || key === adminKey;
    const p = payments.get(hash.toLowerCase());
    if (!p) throw new HttpError(404, 'Payment does not exist.');
    if (p.paidAt) {
      return { status: 200, json: own ? { paid: true, preimage: p.preimage, details: paymentJson(p) } : { paid: true, preimage: p.preimage } };
    }
    if (flavour === 'legacy') {
      return { status: 200, json: own ? { paid: false, preimage: null, details: paymentJson(p) } : { paid: false, preimage: null } };
    }
    return {
      status: 200,
      json: own ? { paid: false, status: 'pending', preimage: null, details: paymentJson(p) } : { paid: false, preimage: null },
    };
  }

  function requireKey(key: string | undefined): 'invoice' | 'admin' {
    const kind = keyKind(key);
    if (kind === 'none') throw new HttpError(401, 'No Api Key provided.');
    if (kind === 'other') {
      throw flavour === 'legacy' ? new HttpError(401, 'Invalid key or wallet.') : new HttpError(404, 'Wallet not found.');
    }
    return kind;
  }

  function send(res: ServerResponse, status: number, json: unknown): void {
    const body = JSON.stringify(json);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new HttpError(413, 'Request Entity Too Large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handle(req: IncomingMessage): Promise<{ status: number; json: unknown }> {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const header = req.headers['x-api-key'];
    const key = (Array.isArray(header) ? header[0] : header) ?? u.searchParams.get('api-key') ?? undefined;
    const raw = await readBody(req);

    const failure = failures[0];
    if (failure) {
      if (--failure.left <= 0) failures.shift();
      throw new HttpError(failure.status, failure.detail);
    }
    if (failing) throw new HttpError(500, 'Internal Server Error');

    if (u.pathname === '/api/v1/payments') {
      if (req.method !== 'POST') throw new HttpError(405, 'Method Not Allowed');
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        throw new HttpError(400, 'JSON decode error');
      }
      return postPayments(key, body);
    }
    if (u.pathname === '/api/v1/wallet') {
      // LNbits: the wallet of the key (invoice or admin), balance in msats; 401 without a valid key.
      if (req.method !== 'GET') throw new HttpError(405, 'Method Not Allowed');
      if (key !== invoiceKey && key !== adminKey) throw new HttpError(401, 'Invalid key or wallet.');
      return { status: 200, json: { id: 'fake-wallet', name: 'Timmy test wallet', balance: 0 } };
    }
    const m = /^\/api\/v1\/payments\/([^/]+)$/.exec(u.pathname);
    if (m?.[1]) {
      if (req.method !== 'GET') throw new HttpError(405, 'Method Not Allowed');
      return getPayment(key, decodeURIComponent(m[1]));
    }
    throw new HttpError(404, 'Not Found');
  }

  const server = createServer((req, res) => {
    stats.requests++;
    const header = req.headers['x-api-key'];
    const record: RecordedLnbitsRequest = {
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0] ?? '/',
      key: keyKind(Array.isArray(header) ? header[0] : header),
      status: 0,
    };
    requests.push(record);
    handle(req)
      .then(({ status, json }) => {
        record.status = status;
        send(res, status, json);
      })
      .catch((err: unknown) => {
        const e = err instanceof HttpError ? err : new HttpError(500, String(err));
        record.status = e.status;
        send(res, e.status, { detail: e.detail, ...e.extra });
      });
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    // Handed over by the HTTP server, the socket has no error listener: a client that resets it while a refusal
    // is written (ECONNRESET) would otherwise be an uncaught exception in the test process.
    socket.on('error', () => {});
    const m = /^\/api\/v1\/ws\/([^/?]+)$/.exec((req.url ?? '/').split('?')[0] ?? '/');
    if (!m?.[1]) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (refusing) {
      stats.wsRefused++;
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const itemId = decodeURIComponent(m[1]);
    wss.handleUpgrade(req, socket, head, (ws) => {
      stats.wsConnections++;
      channels.set(ws, itemId);
      ws.on('close', () => channels.delete(ws));
      ws.on('error', () => channels.delete(ws));
      ws.on('message', () => {}); // LNbits reads and queues client frames; nothing to answer
    });
  });

  function sendTo(itemId: string, data: string): void {
    for (const [ws, id] of channels) if (id === itemId && ws.readyState === ws.OPEN) ws.send(data);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    invoiceKey,
    adminKey,
    walletId,
    requests,
    stats,
    get wsClients() {
      return channels.size;
    },
    invoice: (hash) => payments.get(hash.toLowerCase()),
    pay(hash) {
      const p = payments.get(hash.toLowerCase());
      if (!p) throw new Error(`fake LNbits: no invoice ${hash}`);
      if (p.paidAt) return p.preimage; // LNbits notifies once per settlement
      if (p.expiresAt <= Math.floor(Date.now() / 1000)) throw new Error('fake LNbits: invoice expired');
      p.paidAt = new Date();
      balanceMsats += p.amountMsats;
      const note = JSON.stringify({ wallet_balance: Math.floor(balanceMsats / 1000), payment: paymentJson(p) });
      sendTo(invoiceKey, note);
      sendTo(adminKey, note);
      sendTo(p.paymentHash, JSON.stringify(flavour === 'legacy' ? { pending: false } : { pending: false, status: 'success' }));
      return p.preimage;
    },
    failNext(status, detail, times = 1) {
      failures.push({ status, detail, left: times });
    },
    setFailing(on) {
      failing = on;
    },
    refuseWebsockets(on) {
      refusing = on;
    },
    dropWebsockets() {
      for (const ws of channels.keys()) ws.terminate();
    },
    pushRaw(data) {
      for (const ws of channels.keys()) if (ws.readyState === ws.OPEN) ws.send(data);
    },
    async close() {
      for (const ws of channels.keys()) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
