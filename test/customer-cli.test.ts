// The customer CLI (issue 14, item 20): a kept customer key, `timmy result`, `bootstrap --resume`, a
// follow that survives a relay drop, the API base URL, `--version`, invoices people can pay, `jobs` in
// sats with node orders, refused bad numbers, and read-only commands that create nothing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nip19 } from 'nostr-tools';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { decode } from 'light-bolt11-decoder';
import { freePort, ROOT, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { payStub } from './helpers/customer.ts';
import { waitFor, TIME_SCALE } from './helpers/wait.ts';
import { openDb, closeDb } from '../src/store/db.ts';
import { addCredit } from '../src/store/credits.ts';

/** A customer's environment: its own home and config dir, never the real ones. */
function customerEnv(extra: Record<string, string> = {}): Record<string, string> {
  const home = tempDir('timmy-home-');
  return { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TIMMY_NO_BUNDLE: '1', ...extra };
}

/** Runs the CLI to completion. */
function cli(args: string[], env: Record<string, string>): { code: number | null; out: string; err: string; all: string } {
  const r = spawnSync(process.execPath, ['src/bin.js', ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 * TIME_SCALE });
  return { code: r.status, out: r.stdout, err: r.stderr, all: `${r.stdout}\n${r.stderr}` };
}

/** Starts the CLI and records its output as it comes. */
function cliLive(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['src/bin.js', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exit };
}

const invoicesIn = (out: string) => [...out.matchAll(/invoice \(\d+ sats[^)]*\)\): (lnbcrt\w+)/g)].map((m) => m[1]!);
const requestIdIn = (out: string, what = 'request') => new RegExp(`${what} ([0-9a-f]{64}) \\(kind`).exec(out)?.[1];
/** Runs of consecutive QR-code lines (half-block characters). */
const qrBlocks = (out: string) => out.split('\n').reduce<string[][]>((blocks, l, i, all) => {
  if (/[▀▄█]{8}/.test(l)) (i > 0 && /[▀▄█]{8}/.test(all[i - 1]!) ? blocks[blocks.length - 1]! : (blocks[blocks.length] = [])).push(l);
  return blocks;
}, []);

describe('without a daemon', () => {
  it('--version prints the package version', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const r = cli(['--version'], customerEnv());
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(version);
  });

  it('refuses --limit abc with a clear message', () => {
    const r = cli(['jobs', '--limit', 'abc'], customerEnv({ DATA_DIR: tempDir() }));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/--limit <n>' argument 'abc' is invalid\. must be a whole number/);
    expect(r.err).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it('read-only commands never create a store or a data directory; they say there is none', () => {
    const dataDir = join(tempDir(), 'nothing-here');
    const env = customerEnv({ DATA_DIR: dataDir });
    for (const args of [['jobs'], ['jobs', '--json'], ['credits', '--all'], ['credits', 'c'.repeat(64)]]) {
      const r = cli(args, env);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain(`no store at ${join(dataDir, 'timmy.db')}`);
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('the API base comes from TIMMY_API, else HTTP_HOST/HTTP_PORT, and an unreachable one is named', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const hash = 'ab'.repeat(32);
    const viaEnv = cli(['dev', 'pay', hash], customerEnv({ TIMMY_API: `http://127.0.0.1:${p1}` }));
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.err).toContain(`could not reach http://127.0.0.1:${p1}/api/dev/stub/pay/${hash}: ECONNREFUSED`);
    const viaPort = cli(['dev', 'pay', hash], customerEnv({ HTTP_PORT: String(p2) }));
    expect(viaPort.err).toContain(`could not reach http://127.0.0.1:${p2}/api/dev/stub/pay/`);
    const request = cli(['request', 'hi', '--no-qr'], customerEnv({ TIMMY_API: `http://127.0.0.1:${p1}` }));
    expect(request.code).toBe(2);
    expect(request.out).toContain(`cannot reach Timmy: could not reach http://127.0.0.1:${p1}/api/info: ECONNREFUSED`);
  });
});

describe('against a daemon', () => {
  let relay: RelayProc;
  let daemon: DaemonProc;
  let env: Record<string, string>;
  let completedJob: string;
  beforeAll(async () => {
    relay = await startRelay();
    daemon = await startDaemon({ relays: [relay.url], env: { STUB_PROVISION_DELAY_MS: '200' } });
    env = customerEnv({ TIMMY_API: daemon.api, DATA_DIR: daemon.dataDir });
  });
  afterAll(async () => {
    await daemon?.kill();
    await relay?.stop();
  });

  it('keeps one customer key (0600 in a 0700 config dir) whose credit pays the next request; `credits` shows it', () => {
    const first = cli(['request', 'hi', '--pay-stub', '--no-qr'], env);
    expect(first.code, first.all).toBe(0);
    const keyFile = join(env.XDG_CONFIG_HOME!, 'timmy', 'customer.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(env.XDG_CONFIG_HOME!, 'timmy')).mode & 0o777).toBe(0o700);
    expect(first.out).toContain(`new customer key ${keyFile}`);
    const npub = /from (npub1\w+)\)/.exec(first.out)![1]!;
    completedJob = requestIdIn(first.out)!;
    const second = cli(['request', 'hi again', '--pay-stub', '--no-qr'], env);
    expect(second.code, second.all).toBe(0);
    expect(/from (npub1\w+)\)/.exec(second.out)![1]).toBe(npub); // the same key, not a throwaway one
    expect(second.out).not.toContain('new customer key');

    const pubkey = nip19.decode(npub).data as string;
    expect(cli(['credits'], env).out).toContain(`account ${pubkey}`);
    expect(cli(['credits'], env).out).toContain('balance 0 sats');
    const db = openDb(join(daemon.dataDir, 'timmy.db'));
    addCredit(db, { account: pubkey, deltaMsats: 100_000, reason: 'refund for a failed job', jobId: null, ref: 'test:seed' });
    closeDb(db);
    expect(cli(['credits'], env).out).toContain('balance 100 sats');
    expect(cli(['credits', npub], env).out).toContain('balance 100 sats');
    expect(cli(['credits', '--all'], env).out).toContain(`${pubkey}  100 sats`);

    const onCredit = cli(['request', 'paid by credit', '--no-qr'], env); // no --pay-stub: nothing to pay
    expect(onCredit.code, onCredit.all).toBe(0);
    expect(invoicesIn(onCredit.out)).toEqual([]);
    const balance = Number(/balance (\d+) sats/.exec(cli(['credits'], env).out)![1]);
    expect(balance).toBeLessThan(100);
    expect(balance).toBeGreaterThan(0);
  });

  it('--key chooses the key: an nsec, or a file', () => {
    const sk = generateSecretKey();
    const npub = nip19.npubEncode(getPublicKey(sk));
    const r = cli(['request', 'hi', '--pay-stub', '--no-qr', '--key', nip19.nsecEncode(sk)], env);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toContain(`from ${npub})`);
    const bad = cli(['request', 'hi', '--key', join(tempDir(), 'missing.key')], env);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--key: no such file/);
  });

  it('shows when an invoice expires and how to pay it; the QR code fits 80x24 or is left out; --no-qr draws none', async () => {
    const fresh = ['--key', nip19.nsecEncode(generateSecretKey())]; // a key without credit: it gets invoices
    const live = cliLive(['request', 'an unpaid one', ...fresh], env);
    try {
      await waitFor(() => live.output().includes('pay it:'), 'the eval invoice, its QR code and how to pay it (printed last)');
    } finally {
      live.child.kill('SIGTERM');
      await live.exit;
    }
    const out = live.output();
    const bolt11 = invoicesIn(out)[0]!;
    const d = decode(bolt11);
    const ts = Number((d.sections.find((s) => s.name === 'timestamp') as { value: number }).value);
    const expiresAt = new Date((ts + d.expiry!) * 1000).toISOString().replace('.000Z', 'Z');
    expect(out).toContain(`invoice (10 sats, expires in 10 min (${expiresAt})): ${bolt11}`);
    expect(out).toContain('npx timmy dev pay <invoice>');
    const blocks = qrBlocks(out);
    if (blocks.length === 0) expect(out).toMatch(/no QR code: it needs \d+x\d+ characters, more than this 80x24 terminal/);
    for (const b of blocks) {
      expect(b.length).toBeLessThanOrEqual(24);
      for (const l of b) expect([...l].length).toBeLessThanOrEqual(80);
    }

    // Later: `timmy result` tells the state and shows the open invoice again; exit 4 = not finished.
    const pending = cli(['result', requestIdIn(out)!, '--no-qr', ...fresh], env);
    expect(pending.code, pending.all).toBe(4);
    expect(pending.out).toContain(`job ${requestIdIn(out)}: awaiting_eval_payment`);
    expect(pending.out).toContain(`invoice (10 sats, expires in `);
    expect(pending.out).not.toMatch(/[▀▄█]{8}|no QR code/);
  });

  it('`timmy result <id>` fetches a Nostr job result from the relays, and an HTTP job through the API', async () => {
    const r = cli(['result', completedJob], env);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toContain('--- result ---');
    expect(r.out).toContain('You asked: "hi"');
    expect(r.out).toContain('--- cost ledger ---');
    expect(r.out).not.toContain(`job ${completedJob}: complete`); // from the relays, not the HTTP fallback

    const created = (await (await fetch(`${daemon.api}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request: 'over http' }) })).json()) as { jobId: string; evalInvoice: { paymentRequest: string } };
    await payStub(daemon.api, created.evalInvoice.paymentRequest);
    const work = await waitFor(async () => ((await (await fetch(`${daemon.api}/api/jobs/${created.jobId}`)).json()) as { workInvoice?: { paymentRequest: string } }).workInvoice, 'work invoice');
    await payStub(daemon.api, work.paymentRequest);
    await waitFor(async () => ((await (await fetch(`${daemon.api}/api/jobs/${created.jobId}`)).json()) as { state: string }).state === 'complete', 'HTTP job complete');
    const h = cli(['result', created.jobId], env);
    expect(h.code, h.all).toBe(0);
    expect(h.out).toContain(`job ${created.jobId}: complete`);
    expect(h.out).toContain('You asked: "over http"');

    const unknown = cli(['result', 'f'.repeat(32)], env);
    expect(unknown.code).toBe(2);
    expect(unknown.out).toContain(`no job ${'f'.repeat(32)} at ${daemon.api}`);
  });

  it('`timmy bootstrap --resume <id>` fetches the credentials of an order placed earlier', async () => {
    const keyOut = join(tempDir(), 'node.key');
    const live = cliLive(['bootstrap', '--no-qr', '--key-out', keyOut], env);
    let out: string;
    try {
      await waitFor(() => invoicesIn(live.output()).length > 0, 'the node order invoice');
    } finally {
      live.child.kill('SIGTERM'); // the customer goes away before paying
      await live.exit;
      out = live.output();
    }
    const orderId = requestIdIn(out, 'node order')!;
    expect(out).toContain(`timmy bootstrap --resume ${orderId}`);
    await payStub(daemon.api, invoicesIn(out)[0]!);
    const resumed = cli(['bootstrap', '--resume', orderId, '--key-out', keyOut, '--no-qr'], env);
    expect(resumed.code, resumed.all).toBe(0);
    expect(resumed.out).toContain(`following node order ${orderId}`);
    expect(resumed.out).toContain('--- credentials received by encrypted DM ---');
    expect(readFileSync(keyOut, 'utf8')).toContain('-----BEGIN OPENSSH PRIVATE KEY-----');
    expect(statSync(keyOut).mode & 0o777).toBe(0o600);

    // `timmy jobs`: amounts in sats, and node orders listed too.
    const jobs = cli(['jobs'], env);
    expect(jobs.code, jobs.err).toBe(0);
    const line = jobs.out.split('\n').find((l) => l.includes(completedJob))!;
    const [, paid, price] = /(\d+)\/(\d+) sats/.exec(line)!;
    expect(Number(price)).toBeGreaterThan(10);
    expect(paid).toBe(price);
    const orderLine = jobs.out.split('\n').find((l) => l.includes(orderId))!;
    expect(orderLine).toMatch(/10000\/10000 sats {2}node /);
    expect(jobs.out).toMatch(/\d+ node order\(s\)/);
    const json = cli(['jobs', '--json'], env).out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; id: string; priceSats: number; paidSats: number });
    expect(json.find((j) => j.id === orderId)).toMatchObject({ type: 'node', priceSats: 10_000, paidSats: 10_000 });
    expect(json.find((j) => j.id === completedJob)).toMatchObject({ type: 'job', paidSats: Number(price) });
  });
});

describe('following a job', () => {
  it('survives a relay drop: says so, reconnects, and still gets the result', async () => {
    const relay = await startRelay();
    const daemon = await startDaemon({ relays: [relay.url] });
    let restarted: RelayProc | undefined;
    const env = customerEnv({ TIMMY_API: daemon.api });
    const live = cliLive(['request', 'through a relay drop', '--no-qr', '--timeout', '600'], env);
    try {
      await waitFor(() => invoicesIn(live.output()).length === 1, 'the eval invoice');
      await relay.stop();
      await waitFor(() => live.output().includes(`lost the connection to ${relay.url}; reconnecting`), 'the CLI to notice the drop');
      restarted = await startRelay({ port: relay.port, dbPath: relay.dbPath });
      await waitFor(() => live.output().includes(`reconnected to ${relay.url}`), 'the CLI to reconnect');
      await payStub(daemon.api, invoicesIn(live.output())[0]!);
      await waitFor(() => invoicesIn(live.output()).length === 2, 'the work invoice, after the drop');
      await payStub(daemon.api, invoicesIn(live.output())[1]!);
      expect(await live.exit).toBe(0);
      expect(live.output()).toContain('You asked: "through a relay drop"');
    } finally {
      live.child.kill('SIGTERM');
      await daemon.kill();
      await restarted?.stop();
      await relay.stop();
    }
  });
});

describe('under load (proof of work demanded)', () => {
  let relay: RelayProc;
  let daemon: DaemonProc;
  beforeAll(async () => {
    relay = await startRelay();
    // POW_THRESHOLD_PCT 0: every Nostr request must carry proof of work.
    daemon = await startDaemon({ relays: [relay.url], env: { POW_DIFFICULTY: '8', POW_THRESHOLD_PCT: '0' } });
  });
  afterAll(async () => {
    await daemon?.kill();
    await relay?.stop();
  });

  it('`timmy request` mines the proof of work asked for and sends the request again', () => {
    const env = customerEnv({ TIMMY_API: daemon.api, DATA_DIR: daemon.dataDir });
    const r = cli(['request', 'hi', '--pay-stub', '--no-qr'], env);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toMatch(/\[error\] pow-required: difficulty 8\b/);
    expect(r.out).toContain('mining proof of work (NIP-13, difficulty 8) and sending the request again');
    expect(r.out).toContain('--- result ---');
    const ids = [...r.out.matchAll(/request ([0-9a-f]{64}) \(kind/g)].map((m) => m[1]!);
    expect(ids).toHaveLength(2);
    expect(ids[1]!.startsWith('00')).toBe(true); // 8 leading zero bits
  });
});

describe('paying by zap', () => {
  let relay: RelayProc;
  let daemon: DaemonProc;
  beforeAll(async () => {
    relay = await startRelay();
    const httpPort = await freePort();
    daemon = await startDaemon({ relays: [relay.url], httpPort, env: { PUBLIC_URL: `http://127.0.0.1:${httpPort}` } });
  });
  afterAll(async () => {
    await daemon?.kill();
    await relay?.stop();
  });

  it('`timmy request --zap` zaps each payment-required event, prints the receipts, and gets the result', () => {
    const env = customerEnv({ TIMMY_API: daemon.api, DATA_DIR: daemon.dataDir });
    const r = cli(['request', 'hi', '--zap', '--no-qr'], env);
    expect(r.code, r.all).toBe(0);
    const receipts = [...r.out.matchAll(/zap receipt ([0-9a-f]{64})/g)].map((m) => m[1]);
    expect(receipts).toHaveLength(2); // the evaluation fee and the work, each zapped
    expect(new Set(receipts).size).toBe(2);
    expect(r.out).toContain('--- result ---');
    expect(r.out).not.toContain('paid through the dev route'); // the bolt11s were not paid: the zaps were
  });
});
