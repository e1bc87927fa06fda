// The customer side of the CLI: posts 5050 requests and node orders with the customer's key, follows the
// 7000 feedback and the results live (through relay drops), fetches a result or node credentials later,
// and pays stub invoices through the dev route.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as nip17 from 'nostr-tools/nip17';
import * as nip04 from 'nostr-tools/nip04';
import * as nip44 from 'nostr-tools/nip44';
import { minePow } from 'nostr-tools/nip13';
import { makeZapRequest } from 'nostr-tools/nip57';
import WebSocket from 'ws';
import { nip19, type Event } from 'nostr-tools';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import { decode as decodeBolt11 } from 'light-bolt11-decoder';
import { initCrypto, finalizeEvent, getPublicKey } from './nostr/crypto.ts';
import { terminalSafe } from './terminal.ts';
import { ApiError, apiCall, apiUrl, fetchApi } from './customer/api.ts';
import { RelayFollower, type Follow } from './customer/follow.ts';
import { showInvoice } from './customer/invoice.ts';

/** Prints a line whose text may come from relays or strangers (results, reasons): never raw to the terminal. */
const stdoutLine = (l: string) => process.stdout.write(`${terminalSafe(l)}\n`);

useWebSocketImplementation(WebSocket);

/** Where Timmy is: its HTTP API, and optionally its pubkey and relays given on the command line. */
export interface Target {
  api: string;
  to?: string;
  relays?: string[];
}

export interface RequestOptions extends Target {
  /** Spend this pre-funded session (bound to `secretKey`) instead of paying invoices. */
  session?: string;
  secretKey: Uint8Array;
  payStub: boolean;
  maxTokens?: number;
  bidMsats?: number;
  timeoutSecs: number;
  qr: boolean;
  /** Pay each stage by zapping its payment-required event (NIP-57), the zap invoice paid through the dev route. */
  zap?: boolean;
  out?: (line: string) => void;
}

/** The payment hash of a bolt11 invoice (or the argument itself when it already is one). */
export function paymentHashOf(invoiceOrHash: string): string {
  if (/^[0-9a-f]{64}$/i.test(invoiceOrHash)) return invoiceOrHash.toLowerCase();
  const section = decodeBolt11(invoiceOrHash).sections.find((s) => s.name === 'payment_hash');
  if (!section || !('value' in section)) throw new Error('invoice has no payment hash');
  return String(section.value);
}

export async function devPay(api: string, invoiceOrHash: string): Promise<{ paid: true; preimage: string }> {
  const hash = paymentHashOf(invoiceOrHash);
  const res = await fetchApi(apiUrl(api, `/api/dev/stub/pay/${hash}`), { method: 'POST' });
  const body = (await res.json().catch(() => ({}))) as { error?: string; paid?: true; preimage?: string };
  if (!res.ok) throw new Error(`dev pay failed (HTTP ${res.status}): ${body.error ?? 'no detail'}`);
  return body as { paid: true; preimage: string };
}

interface Info {
  pubkey: string;
  relays: { url: string; read: boolean; write: boolean }[];
  kinds?: number[];
}

/** Timmy's pubkey, relays and job kinds: from the command line, else from GET /api/info. */
async function discover(t: Target): Promise<{ pubkey: string; relays: string[]; kinds: number[] }> {
  let pubkey = t.to;
  let relays = t.relays;
  let kinds: number[] = [];
  if (!pubkey || !relays?.length) {
    const info = await apiCall<Info>(t.api, 'GET', '/api/info');
    pubkey ??= info.pubkey;
    relays = relays?.length ? relays : info.relays.map((r) => r.url);
    kinds = info.kinds ?? [];
  }
  if (pubkey.startsWith('npub1')) {
    let d;
    try {
      d = nip19.decode(pubkey);
    } catch {
      throw new Error('--to must be an npub or hex pubkey');
    }
    if (d.type !== 'npub') throw new Error('--to must be an npub or hex pubkey');
    pubkey = d.data;
  }
  if (!/^[0-9a-f]{64}$/.test(pubkey)) throw new Error('--to must be an npub or hex pubkey');
  return { pubkey, relays, kinds };
}

const tagOf = (ev: Event, name: string) => ev.tags.find((t) => t[0] === name);

/** The plain text of a result or feedback content, decrypted when Timmy encrypted it to us. */
function openContent(ev: Event, sk: Uint8Array): string {
  if (!tagOf(ev, 'encrypted') || !ev.content) return ev.content;
  try {
    return ev.content.includes('?iv=') ? nip04.decrypt(sk, ev.pubkey, ev.content) : nip44.decrypt(ev.content, nip44.getConversationKey(sk, ev.pubkey));
  } catch {
    return '(encrypted to another key: pass the key that made the request with --key)';
  }
}

/** Prints a text job's result event: the answer, the cost ledger, a session balance. */
function printResult(ev: Event, sk: Uint8Array, out: (l: string) => void): void {
  out('--- result ---');
  out(openContent(ev, sk));
  const ledger = tagOf(ev, 'cost_ledger')?.[1];
  if (ledger) {
    try {
      out(`--- cost ledger ---\n${JSON.stringify(JSON.parse(ledger), null, 2)}`);
    } catch {
      out(`--- cost ledger ---\n${ledger}`);
    }
  }
  const balance = tagOf(ev, 'balance')?.[1];
  if (balance) out(`session balance: ${Number(balance) / 1000} sats`);
}

/** Runs one job as a customer; resolves to the process exit code (0 = result received). */
export async function runRequest(prompt: string, opts: RequestOptions): Promise<number> {
  const out = opts.out ?? stdoutLine;
  await initCrypto();
  let target: Awaited<ReturnType<typeof discover>>;
  try {
    target = await discover(opts);
  } catch (err) {
    out(`cannot reach Timmy: ${(err as Error).message}`);
    return 2;
  }
  const tags: string[][] = [
    ['i', prompt, 'text'],
    ['p', target.pubkey],
    ['relays', ...target.relays],
  ];
  if (opts.maxTokens) tags.push(['param', 'max_tokens', String(opts.maxTokens)]);
  if (opts.bidMsats !== undefined) tags.push(['bid', String(opts.bidMsats)]);
  if (opts.session) tags.push(['param', 'session', opts.session]);
  // Under load Timmy asks for NIP-13 proof of work (`pow-required: difficulty N`): mine and send again.
  let difficulty = 0;
  for (;;) {
    const request = signRequest(tags, difficulty, opts.secretKey);
    let powNeeded = 0;
    const paid = new Set<string>();
    const zaps: Promise<void>[] = []; // zaps in flight: their receipts are printed before the result ends the run
    const code = await converse(target.relays, request, 'request', opts, out, (finish) => [
      {
        filters: [{ kinds: [7000, 6050], '#e': [request.id] }],
        onevent: (ev: Event) => {
          if (ev.pubkey !== target.pubkey) return;
          if (ev.kind === 7000) {
            powNeeded = Number(/^pow-required: difficulty (\d+)/.exec(tagOf(ev, 'status')?.[2] ?? '')?.[1] ?? 0);
            followFeedback(ev, { ...opts, out, paid, zaps, fail: () => finish(1) });
          } else {
            void Promise.allSettled(zaps).then(() => {
              printResult(ev, opts.secretKey, out);
              finish(0);
            });
          }
        },
      },
    ]);
    if (code !== 1 || powNeeded <= difficulty || powNeeded > MAX_POW_DIFFICULTY) return code;
    difficulty = powNeeded;
    out(`mining proof of work (NIP-13, difficulty ${difficulty}) and sending the request again`);
  }
}

/** The most proof of work the CLI will mine when asked (each bit doubles the work; 24 bits is ~16 M hashes). */
const MAX_POW_DIFFICULTY = 24;

/** A signed kind 5050 request; with `difficulty` > 0, mined to that many leading zero bits (NIP-13 nonce tag). */
function signRequest(tags: string[][], difficulty: number, sk: Uint8Array): Event {
  const template = { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags, content: '' };
  if (difficulty <= 0) return finalizeEvent(template, sk);
  const mined = minePow({ ...template, tags: tags.map((t) => [...t]), pubkey: getPublicKey(sk) }, difficulty); // mutates its copy
  return finalizeEvent({ kind: mined.kind, created_at: mined.created_at, tags: mined.tags, content: mined.content }, sk);
}

/**
 * Publishes `request` (null: only follows) to `relays`, follows the replies through relay drops, and
 * resolves with the exit code passed to `finish` (3 on timeout, 2 when no relay takes the request).
 */
function converse(
  relays: string[],
  request: Event | { id: string; pubkey: string; kind: number; resume: true },
  what: string,
  opts: { timeoutSecs: number },
  out: (l: string) => void,
  follows: (finish: (code: number) => void) => Follow[],
): Promise<number> {
  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      follower.close();
      resolve(code);
    };
    const timer = setTimeout(() => {
      out(`timed out after ${opts.timeoutSecs} s`);
      finish(3);
    }, opts.timeoutSecs * 1000);
    const follower = new RelayFollower(relays, out, {
      what,
      onNoRelay: () => {
        out(`no relay ${'resume' in request ? 'could be reached' : `accepted the ${what}`}`);
        finish(2);
      },
    });
    const resumed = 'resume' in request;
    out(`${resumed ? 'following ' : ''}${what} ${request.id} (kind ${request.kind}, from ${nip19.npubEncode(request.pubkey)}) -> ${relays.join(', ')}`);
    follower.start(resumed ? null : (request as Event), follows(finish));
  });
}

/**
 * Pays a payment-required event by zapping it (NIP-57): Timmy's LNURL-pay endpoint (its lightning address
 * from GET /api/info), a signed zap request for the event, the zap invoice paid through the dev route, then
 * the zap receipt (kind 9735) awaited on the relays. Resolves with the receipt's id.
 */
async function zapAndPay(ev: Event, amountMsats: number, o: { api: string; secretKey: Uint8Array; relays?: string[] }): Promise<string> {
  const info = (await apiCall(o.api, 'GET', '/api/info')) as { lud16?: string | null; relays: { url: string }[] };
  if (!info.lud16) throw new Error('this Timmy takes no zaps (it has no PUBLIC_URL)');
  const name = info.lud16.split('@')[0]!;
  const lnurl = (await apiCall(o.api, 'GET', `/.well-known/lnurlp/${encodeURIComponent(name)}`)) as { callback: string; nostrPubkey: string; allowsNostr?: boolean };
  if (!lnurl.allowsNostr || lnurl.nostrPubkey !== ev.pubkey) throw new Error("the zap endpoint does not take zaps for Timmy's events");
  const relays = o.relays ?? info.relays.map((r) => r.url);
  const request = finalizeEvent(makeZapRequest({ event: ev, amount: amountMsats, relays }), o.secretKey);
  const url = new URL(lnurl.callback);
  url.searchParams.set('amount', String(amountMsats));
  url.searchParams.set('nostr', JSON.stringify(request));
  const res = await fetchApi(url.toString());
  const body = (await res.json().catch(() => ({}))) as { pr?: string; reason?: string };
  if (!res.ok || !body.pr) throw new Error(`the zap endpoint refused: ${body.reason ?? `HTTP ${res.status}`}`);
  await devPay(o.api, body.pr);
  const pool = new SimplePool();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const found = await pool.querySync(relays, { kinds: [9735], '#e': [ev.id], authors: [ev.pubkey] }, { maxWait: 2000 });
      const receipt = found.find((r) => r.tags.some((t) => t[0] === 'bolt11' && t[1] === body.pr));
      if (receipt) return receipt.id;
      if (Date.now() > deadline) throw new Error('no zap receipt within 30 s');
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    pool.close(relays);
  }
}

/** Prints a kind 7000 feedback event, shows (and with payStub pays, or with zap zaps) its invoice; `fail` on `error`. */
function followFeedback(
  ev: Event,
  o: {
    api: string;
    payStub: boolean;
    zap?: boolean;
    zaps?: Promise<void>[];
    relays?: string[];
    qr: boolean;
    secretKey: Uint8Array;
    out: (l: string) => void;
    paid: Set<string>;
    fail: () => void;
  },
): void {
  const status = tagOf(ev, 'status');
  const amount = tagOf(ev, 'amount');
  o.out(`[${status?.[1]}] ${status?.[2] ?? ''}`);
  if (status?.[1] === 'error') {
    o.fail();
    return;
  }
  if (status?.[1] !== 'payment-required' || !amount?.[2] || o.paid.has(amount[2])) return;
  const bolt11 = amount[2];
  if (o.zap) {
    o.paid.add(bolt11);
    const zapped = zapAndPay(ev, Number(amount[1]), o).then(
      (receipt) => o.out(`  zapped ${Number(amount[1]) / 1000} sats; zap receipt ${receipt}`),
      (err) => {
        o.out(`  zap failed: ${(err as Error).message}`);
        o.fail();
      },
    );
    o.zaps?.push(zapped);
    return;
  }
  if (ev.content) o.out(`  quote: ${openContent(ev, o.secretKey)}`);
  showInvoice((l) => o.out(`  ${l}`), bolt11, Number(amount[1]) / 1000, { qr: o.qr, payStub: o.payStub, indent: 2 });
  if (!o.payStub) return;
  o.paid.add(bolt11);
  devPay(o.api, bolt11).then(
    () => o.out('  paid through the dev route'),
    (err) => {
      o.out(`  ${(err as Error).message}`);
      o.fail();
    },
  );
}

/** Where the CLI keeps the macaroons of the sessions it opened (0600 files). */
export class SessionWallet {
  constructor(private readonly dir: string) {}
  save(sessionId: string, macaroon: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.dir, `${sessionId}.macaroon`), `${macaroon}\n`, { mode: 0o600 });
  }
  load(sessionId: string): string {
    const file = join(this.dir, `${sessionId}.macaroon`);
    if (!existsSync(file)) throw new Error(`no macaroon for session ${sessionId} in ${this.dir}; pass --macaroon`);
    return readFileSync(file, 'utf8').trim();
  }
}

export interface ResultOptions extends Target {
  secretKey: Uint8Array | null;
  qr: boolean;
  out?: (line: string) => void;
}

interface HttpJobView {
  jobId: string;
  state: string;
  evalInvoice?: { paymentRequest: string; amountSats: number };
  workInvoice?: { paymentRequest: string; amountSats: number };
  reason?: string;
  result?: string;
  costLedger?: unknown;
  errorMessage?: string;
}

const AWAITING = new Set(['awaiting_eval_payment', 'evaluating', 'awaiting_work_payment', 'executing']);

/**
 * `timmy result <id>`: a Nostr job's result from the relays (decrypted when it was encrypted to our key),
 * else its state from GET /api/jobs/:id (HTTP jobs only have that). Exit code 0 with a result, 1 when the
 * job ended without one, 4 while it is still under way, 2 when it cannot be found or Timmy cannot be reached.
 */
export async function fetchResult(jobId: string, opts: ResultOptions): Promise<number> {
  const out = opts.out ?? stdoutLine;
  await initCrypto();
  if (!/^[0-9a-f]{32}$|^[0-9a-f]{64}$/.test(jobId)) {
    out(`"${terminalSafe(jobId.slice(0, 80), { oneLine: true })}" is not a job id (64 hex characters for a Nostr request, 32 for an HTTP job)`);
    return 2;
  }
  const sk = opts.secretKey ?? new Uint8Array(32);
  let lastFeedback: Event | undefined;
  if (jobId.length === 64) {
    let target: Awaited<ReturnType<typeof discover>> | undefined;
    try {
      target = await discover(opts);
    } catch (err) {
      out(`cannot reach Timmy: ${(err as Error).message}`);
      return 2;
    }
    const pool = new SimplePool();
    let events: Event[];
    try {
      events = await pool.querySync(target.relays, { '#e': [jobId], authors: [target.pubkey] }, { maxWait: 5000 });
    } finally {
      pool.destroy();
    }
    const result = events.filter((e) => e.kind >= 6000 && e.kind < 7000).sort((a, b) => b.created_at - a.created_at)[0];
    if (result) {
      printResult(result, sk, out);
      return 0;
    }
    lastFeedback = events.filter((e) => e.kind === 7000).sort((a, b) => b.created_at - a.created_at)[0];
  }
  let view: HttpJobView;
  try {
    view = await apiCall<HttpJobView>(opts.api, 'GET', `/api/jobs/${jobId}`);
  } catch (err) {
    if (lastFeedback) return describeFeedback(lastFeedback, sk, opts, out);
    out(err instanceof ApiError && err.status === 404 ? `no job ${jobId} ${jobId.length === 64 ? 'on the relays or ' : ''}at ${opts.api}` : (err as Error).message);
    return 2;
  }
  out(`job ${view.jobId}: ${view.state}`);
  if (view.state === 'complete' && view.result !== undefined) {
    out('--- result ---');
    out(view.result);
    if (view.costLedger) out(`--- cost ledger ---\n${JSON.stringify(view.costLedger, null, 2)}`);
    return 0;
  }
  const note = view.errorMessage ?? view.reason;
  if (note) out(note);
  const open = view.state === 'awaiting_work_payment' ? view.workInvoice : view.state === 'awaiting_eval_payment' ? view.evalInvoice : undefined;
  if (open) showInvoice(out, open.paymentRequest, open.amountSats, { qr: opts.qr });
  return AWAITING.has(view.state) ? 4 : 1;
}

/** The newest feedback of a job whose state the API would not tell: its status, and an open invoice. */
function describeFeedback(ev: Event, sk: Uint8Array, opts: { qr: boolean }, out: (l: string) => void): number {
  const status = tagOf(ev, 'status');
  out(`[${status?.[1]}] ${status?.[2] ?? ''}`);
  const amount = tagOf(ev, 'amount');
  if (status?.[1] === 'payment-required' && amount?.[2]) showInvoice(out, amount[2], Number(amount[1]) / 1000, { qr: opts.qr });
  if (status?.[1] === 'error') return 1;
  if (status?.[1] === 'success') out('(finished, but no relay has the result any more)');
  return status?.[1] === 'success' ? 1 : 4;
}

export interface BootstrapOptions extends Target {
  size?: string;
  region?: string;
  sshKeyFile?: string;
  payStub: boolean;
  keyOut: string; // where to write a generated private key (0600)
  secretKey: Uint8Array;
  timeoutSecs: number;
  qr: boolean;
  /** Follow an order placed earlier (its request id) instead of placing one. */
  resume?: string;
  out?: (line: string) => void;
}

/** Orders a node over Nostr (or follows an earlier order), and reads the credentials DM (gift wraps are backdated up to 2 days). */
export async function runBootstrap(opts: BootstrapOptions): Promise<number> {
  const out = opts.out ?? stdoutLine;
  await initCrypto();
  let target: Awaited<ReturnType<typeof discover>>;
  try {
    target = await discover(opts);
  } catch (err) {
    out(`cannot reach Timmy: ${(err as Error).message}`);
    return 2;
  }
  const me = getPublicKey(opts.secretKey);
  const kind = target.kinds.find((k) => k !== 5050) ?? 5960;
  let request: Event | { id: string; pubkey: string; kind: number; resume: true };
  if (opts.resume) {
    request = { id: opts.resume, pubkey: me, kind, resume: true };
  } else {
    const tags: string[][] = [['p', target.pubkey]];
    if (opts.size) tags.push(['param', 'size', opts.size]);
    if (opts.region) tags.push(['param', 'region', opts.region]);
    if (opts.sshKeyFile) tags.push(['param', 'ssh_key', readFileSync(opts.sshKeyFile, 'utf8').trim()]);
    request = finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, opts.secretKey);
    out(`to follow it later: timmy bootstrap --resume ${request.id}`);
  }
  const orderId = request.id;
  const paid = new Set<string>();
  return converse(target.relays, request, 'node order', opts, out, (finish) => [
    {
      filters: [{ kinds: [7000, kind + 1000], '#e': [orderId] }],
      onevent: (ev) => {
        if (ev.pubkey !== target.pubkey) return;
        if (ev.kind !== 7000) {
          out(`node ready: ${ev.content}`);
          return;
        }
        followFeedback(ev, { ...opts, out, paid, fail: () => finish(1) });
      },
    },
    // NIP-59 wraps carry a random created_at up to two days back: look that far.
    {
      filters: [{ kinds: [1059], '#p': [me], since: Math.floor(Date.now() / 1000) - 3 * 86_400 }],
      onevent: (wrap) => {
        let rumor;
        try {
          rumor = nip17.unwrapEvent(wrap, opts.secretKey);
        } catch {
          return;
        }
        if (rumor.pubkey !== target.pubkey || !rumor.tags.some((t) => t[0] === 'e' && t[1] === orderId)) return;
        out('--- credentials received by encrypted DM ---');
        saveCredentials(rumor.content, opts.keyOut, out);
        finish(0);
      },
    },
  ]);
}

/** Writes the OpenSSH private key of a credentials DM to `keyOut` (0600) and prints how to connect. */
function saveCredentials(content: string, keyOut: string, out: (l: string) => void): void {
  const key = /-----BEGIN OPENSSH PRIVATE KEY-----[\s\S]+?-----END OPENSSH PRIVATE KEY-----/.exec(content)?.[0];
  const json = /```json\n([\s\S]+?)\n```/.exec(content)?.[1];
  let creds: { ip: string; sshUser: string; tailscaleHostname: string | null; nodeNpub: string } | null = null;
  try {
    creds = json ? JSON.parse(json) : null;
  } catch {
    out('(the credentials block is not valid JSON)');
  }
  if (key) {
    writeFileSync(keyOut, `${key}\n`, { mode: 0o600 });
    chmodSync(keyOut, 0o600);
    out(`private key written to ${keyOut} (0600)`);
  }
  if (creds) {
    out(`connect: ssh ${key ? `-i ${keyOut} ` : ''}${creds.sshUser}@${creds.ip}${creds.tailscaleHostname ? `  (Tailscale: ${creds.tailscaleHostname})` : ''}`);
    out(`node npub: ${creds.nodeNpub} (its nsec is in the DM and on the node, root only)`);
  }
}

export { apiCall };
