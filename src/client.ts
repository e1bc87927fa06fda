// The customer side, as `timmy request` and `timmy dev pay` use it: posts a 5050 request with its own
// key, follows the 7000 feedback and the 6050 result live, and optionally pays stub invoices.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as nip17 from 'nostr-tools/nip17';
import { generateSecretKey as pureSecretKey } from 'nostr-tools/pure';
import { join } from 'node:path';
import WebSocket from 'ws';
import qrcode from 'qrcode-terminal';
import { nip19, type Event } from 'nostr-tools';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import { decode as decodeBolt11 } from 'light-bolt11-decoder';
import { initCrypto, finalizeEvent, generateSecretKey, getPublicKey } from './nostr/crypto.ts';
import { terminalSafe } from './terminal.ts';

/** Prints a line whose text may come from relays or strangers (results, reasons): never raw to the terminal. */
const stdoutLine = (l: string) => process.stdout.write(`${terminalSafe(l)}\n`);

useWebSocketImplementation(WebSocket);

export interface RequestOptions {
  api: string;
  /** Spend this pre-funded session (bound to `secretKey`) instead of paying invoices. */
  session?: string;
  secretKey?: Uint8Array;
  to?: string;
  relays?: string[];
  payStub: boolean;
  maxTokens?: number;
  bidMsats?: number;
  timeoutSecs: number;
  qr: boolean;
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
  const res = await fetch(`${api.replace(/\/$/, '')}/api/dev/stub/pay/${hash}`, { method: 'POST' });
  const body = (await res.json().catch(() => ({}))) as { error?: string; paid?: true; preimage?: string };
  if (!res.ok) throw new Error(`dev pay failed (HTTP ${res.status}): ${body.error ?? 'no detail'}`);
  return body as { paid: true; preimage: string };
}

async function discover(opts: RequestOptions): Promise<{ pubkey: string; relays: string[] }> {
  let pubkey = opts.to;
  let relays = opts.relays;
  if (!pubkey || !relays?.length) {
    const res = await fetch(`${opts.api.replace(/\/$/, '')}/api/info`);
    if (!res.ok) throw new Error(`GET /api/info answered HTTP ${res.status}`);
    const info = (await res.json()) as { pubkey: string; relays: { url: string; read: boolean; write: boolean }[] };
    pubkey ??= info.pubkey;
    relays = relays?.length ? relays : info.relays.map((r) => r.url);
  }
  if (pubkey.startsWith('npub1')) {
    const d = nip19.decode(pubkey);
    if (d.type !== 'npub') throw new Error('--to must be an npub or hex pubkey');
    pubkey = d.data;
  }
  return { pubkey, relays };
}

/** Runs one job as a customer; resolves to the process exit code (0 = result received). */
export async function runRequest(prompt: string, opts: RequestOptions): Promise<number> {
  const out = opts.out ?? stdoutLine;
  await initCrypto();
  let target: { pubkey: string; relays: string[] };
  try {
    target = await discover(opts);
  } catch (err) {
    out(`cannot reach Timmy: ${(err as Error).message}`);
    return 2;
  }
  const sk = opts.secretKey ?? generateSecretKey();
  const tags: string[][] = [
    ['i', prompt, 'text'],
    ['p', target.pubkey],
    ['relays', ...target.relays],
  ];
  if (opts.maxTokens) tags.push(['param', 'max_tokens', String(opts.maxTokens)]);
  if (opts.bidMsats !== undefined) tags.push(['bid', String(opts.bidMsats)]);
  if (opts.session) tags.push(['param', 'session', opts.session]);
  const request = finalizeEvent({ kind: 5050, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, sk);
  const paid = new Set<string>();
  return converse(target.relays, request, 'request', opts, out, (pool, finish) => [
    pool.subscribeMany(target.relays, { kinds: [7000, 6050], '#e': [request.id] }, {
      onevent: (ev: Event) => {
        if (ev.pubkey !== target.pubkey) return;
        if (ev.kind === 7000) {
          followFeedback(ev, { ...opts, out, paid, fail: () => finish(1) });
        } else if (ev.kind === 6050) {
          out('--- result ---');
          out(ev.content);
          const ledger = ev.tags.find((t) => t[0] === 'cost_ledger')?.[1];
          if (ledger) out(`--- cost ledger ---\n${JSON.stringify(JSON.parse(ledger), null, 2)}`);
          const balance = ev.tags.find((t) => t[0] === 'balance')?.[1];
          if (balance) out(`session balance: ${Number(balance) / 1000} sats`);
          finish(0);
        }
      },
    }),
  ]);
}

/**
 * Publishes `request` to `relays`, lets `subscribe` follow the replies, and resolves with the exit code
 * passed to `finish` (3 on timeout, 2 when no relay takes the request).
 */
function converse(
  relays: string[],
  request: Event,
  what: string,
  opts: { timeoutSecs: number },
  out: (l: string) => void,
  subscribe: (pool: SimplePool, finish: (code: number) => void) => { close(): void }[],
): Promise<number> {
  const pool = new SimplePool();
  return new Promise<number>((resolve) => {
    let done = false;
    let subs: { close(): void }[] = [];
    const finish = (code: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      subs.forEach((x) => x.close());
      pool.destroy();
      resolve(code);
    };
    const timer = setTimeout(() => {
      out(`timed out after ${opts.timeoutSecs} s`);
      finish(3);
    }, opts.timeoutSecs * 1000);
    subs = subscribe(pool, finish);
    out(`${what} ${request.id} (kind ${request.kind}, from ${nip19.npubEncode(request.pubkey)}) -> ${relays.join(', ')}`);
    // Each relay's answer, named: a rejection ("tag value too long", "blocked: ...") says which relay and why.
    const sends = pool.publish(relays, request).map((p, i) =>
      p.catch((err: unknown) => {
        out(`relay ${relays[i]} did not take the ${what}: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }),
    );
    Promise.any(sends).catch(() => {
      out(`no relay accepted the ${what}`);
      finish(2);
    });
  });
}

/** Prints a kind 7000 feedback event, shows (and with payStub pays) its invoice; `fail` on `error`. */
function followFeedback(
  ev: Event,
  o: { api: string; payStub: boolean; qr: boolean; out: (l: string) => void; paid: Set<string>; fail: () => void },
): void {
  const status = ev.tags.find((t) => t[0] === 'status');
  const amount = ev.tags.find((t) => t[0] === 'amount');
  o.out(`[${status?.[1]}] ${status?.[2] ?? ''}`);
  if (status?.[1] === 'error') {
    o.fail();
    return;
  }
  if (status?.[1] !== 'payment-required' || !amount?.[2] || o.paid.has(amount[2])) return;
  const bolt11 = amount[2];
  if (ev.content) o.out(`  quote: ${ev.content}`);
  showInvoice((l) => o.out(`  ${l}`), bolt11, Number(amount[1]) / 1000, o.qr);
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

/** A persistent client key for `timmy request --session` (sessions are bound to a pubkey). */
export function clientKey(dataDir: string): Uint8Array {
  const file = join(dataDir, 'client.key');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, `${Buffer.from(pureSecretKey()).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  }
  return new Uint8Array(Buffer.from(readFileSync(file, 'utf8').trim(), 'hex'));
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

/** JSON over HTTP to Timmy's API; throws with the server's error text on a non-2xx answer. */
export async function apiCall<T>(api: string, method: string, path: string, body?: unknown, macaroon?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (macaroon) headers.authorization = `Bearer ${macaroon}`;
  const res = await fetch(`${api.replace(/\/$/, '')}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const parsed = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${parsed.error ?? 'no detail'}`);
  return parsed;
}

/** Prints an invoice as text and (optionally) a terminal QR code. */
export function showInvoice(out: (l: string) => void, bolt11: string, amountSats: number, qr: boolean): void {
  out(`invoice (${amountSats} sats): ${bolt11}`);
  if (qr) qrcode.generate(bolt11.toUpperCase(), { small: true }, (q) => out(q));
}

export interface BootstrapOptions {
  api: string;
  to?: string;
  relays?: string[];
  size?: string;
  region?: string;
  sshKeyFile?: string;
  payStub: boolean;
  keyOut: string; // where to write a generated private key (0600)
  secretKey: Uint8Array;
  timeoutSecs: number;
  qr: boolean;
  out?: (line: string) => void;
}

/** Orders a node over Nostr, follows it, and reads the credentials DM (gift wraps are backdated up to 2 days). */
export async function runBootstrap(opts: BootstrapOptions): Promise<number> {
  const out = opts.out ?? stdoutLine;
  await initCrypto();
  let target: { pubkey: string; relays: string[] };
  try {
    target = await discover({ ...opts, payStub: opts.payStub, timeoutSecs: opts.timeoutSecs, qr: opts.qr });
  } catch (err) {
    out(`cannot reach Timmy: ${(err as Error).message}`);
    return 2;
  }
  const me = getPublicKey(opts.secretKey);
  const tags: string[][] = [['p', target.pubkey]];
  if (opts.size) tags.push(['param', 'size', opts.size]);
  if (opts.region) tags.push(['param', 'region', opts.region]);
  if (opts.sshKeyFile) tags.push(['param', 'ssh_key', readFileSync(opts.sshKeyFile, 'utf8').trim()]);
  const info = (await fetch(`${opts.api.replace(/\/$/, '')}/api/info`).then((r) => r.json()).catch(() => ({}))) as { kinds?: number[] };
  const kind = info.kinds?.find((k) => k !== 5050) ?? 5960;
  const request = finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, opts.secretKey);
  const paid = new Set<string>();
  return converse(target.relays, request, 'node order', opts, out, (pool, finish) => [
    pool.subscribeMany(target.relays, { kinds: [7000, kind + 1000], '#e': [request.id] }, {
      onevent: (ev) => {
        if (ev.pubkey !== target.pubkey) return;
        if (ev.kind !== 7000) {
          out(`node ready: ${ev.content}`);
          return;
        }
        followFeedback(ev, { ...opts, out, paid, fail: () => finish(1) });
      },
    }),
    // NIP-59 wraps carry a random created_at up to two days back: look that far.
    pool.subscribeMany(target.relays, { kinds: [1059], '#p': [me], since: Math.floor(Date.now() / 1000) - 3 * 86_400 }, {
      onevent: (wrap) => {
        let rumor;
        try {
          rumor = nip17.unwrapEvent(wrap, opts.secretKey);
        } catch {
          return;
        }
        if (rumor.pubkey !== target.pubkey || !rumor.tags.some((t) => t[0] === 'e' && t[1] === request.id)) return;
        const key = /-----BEGIN OPENSSH PRIVATE KEY-----[\s\S]+?-----END OPENSSH PRIVATE KEY-----/.exec(rumor.content)?.[0];
        const json = /```json\n([\s\S]+?)\n```/.exec(rumor.content)?.[1];
        const creds = json ? (JSON.parse(json) as { ip: string; sshUser: string; tailscaleHostname: string | null; nodeNpub: string }) : null;
        out('--- credentials received by encrypted DM ---');
        if (key) {
          writeFileSync(opts.keyOut, `${key}\n`, { mode: 0o600 });
          chmodSync(opts.keyOut, 0o600);
          out(`private key written to ${opts.keyOut} (0600)`);
        }
        if (creds) {
          out(`connect: ssh ${key ? `-i ${opts.keyOut} ` : ''}${creds.sshUser}@${creds.ip}${creds.tailscaleHostname ? `  (Tailscale: ${creds.tailscaleHostname})` : ''}`);
          out(`node npub: ${creds.nodeNpub} (its nsec is in the DM and on the node, root only)`);
        }
        finish(0);
      },
    }),
  ]);
}
