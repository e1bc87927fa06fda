// Fault injection: session money under 1,000 racing debits and top-ups; two relays going down one after
// the other; outside services failing together; and the log scanner that guards SPEC 1's secrets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoSecrets, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from '../helpers/procs.ts';
import { Customer, invoiceOf, paymentHash, queryRelay, status, tag } from '../helpers/customer.ts';
import { readDb } from '../helpers/store.ts';
import { TIME_SCALE, waitFor } from '../helpers/wait.ts';
import { startFakeLnbits } from '../fakes/lnbits.ts';
import { FakeNwcWallet } from '../fakes/nwc-wallet.ts';
import { startFakeAnthropic, FAKE_API_KEY } from '../fakes/anthropic.ts';
import { createServer } from 'node:http';

const OPS = Number(process.env.FAULT_MONEY_OPS ?? 1000);

async function post(d: DaemonProc, path: string, body: unknown, auth?: string) {
  const res = await fetch(`${d.api}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('session money', () => {
  let relay: RelayProc;
  let daemon: DaemonProc;
  beforeAll(async () => {
    relay = await startRelay();
    daemon = await startDaemon({ relays: [relay.url], env: { MAX_OPEN_UNPAID_PER_CLIENT: '100000' } });
  });
  afterAll(async () => {
    await daemon?.kill();
    await relay?.stop();
  });

  it(`${OPS} debits and top-ups racing (100 at a time): never negative, ledger exact`, async () => {
    const created = await post(daemon, '/api/sessions', { amountSats: 50 });
    await post(daemon, `/api/dev/stub/pay/${created.body.depositInvoice.paymentHash}`, undefined);
    const auth = `Bearer ${created.body.macaroon}`;
    const id = created.body.sessionId as string;
    await waitFor(async () => ((await (await fetch(`${daemon.api}/api/sessions/${id}`, { headers: { authorization: auth } })).json()) as { state: string }).state === 'active', 'active');

    const op = (i: number) =>
      i % 4 === 0
        ? post(daemon, `/api/sessions/${id}/topup`, { amountSats: 3 }, auth).then((t) => post(daemon, `/api/dev/stub/pay/${t.body.invoice.paymentHash}`, undefined)).then(() => ({ kind: 'topup' as const, debit: 0, ok: true }))
        : post(daemon, `/api/sessions/${id}/request`, { request: `q${i}` }, auth).then((r) => ({ kind: 'request' as const, debit: r.status === 200 ? r.body.costLedger.chargedSats : 0, ok: r.status === 200 || r.status === 402 }));
    // Up to 100 in flight at once: racing enough for the ledger, without 1,000 sockets overflowing the
    // listen backlog of a slow machine (a reset connection is the client's problem, not the ledger's).
    const results: Awaited<ReturnType<typeof op>>[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(100, OPS) }, async () => {
        while (next < OPS) {
          const i = next++;
          results[i] = await op(i);
        }
      }),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    const topups = results.filter((r) => r.kind === 'topup').length;
    await waitFor(
      () => readDb(daemon.dataDir, (db) => (db.prepare("select count(*) n from session_ledger where session_id = ? and kind = 'topup'").get(id) as { n: number }).n) === topups,
      'every top-up credited',
      60_000,
    );
    const debited = results.reduce((s, r) => s + r.debit, 0);
    readDb(daemon.dataDir, (db) => {
      const rows = db.prepare('select kind, amount_msats from session_ledger where session_id = ? order by id').all(id) as { kind: string; amount_msats: number }[];
      let running = 0;
      let min = 0;
      for (const r of rows) {
        running += r.amount_msats;
        min = Math.min(min, running);
      }
      expect(min).toBeGreaterThanOrEqual(0); // at no point in the ledger's order did the balance dip below zero
      expect(running).toBe((50 + topups * 3 - debited) * 1000);
      const count = (k: string) => rows.filter((r) => r.kind === k).length;
      expect(count('reserve')).toBe(count('release'));
    });
  }, 180_000 * TIME_SCALE);
});

describe('relays going down one after the other', () => {
  it('requests posted while one relay is down are served through the other; both down then back: served, no duplicates', async () => {
    let [a, b] = await Promise.all([startRelay(), startRelay()]);
    const daemon = await startDaemon({ relays: [a.url, b.url] });
    const health = async () => ((await (await fetch(`${daemon.api}/api/healthz`)).json()) as { relaysConnected: number }).relaysConnected;
    try {
      await waitFor(async () => (await health()) === 2, 'both connected');
      await a.stop();
      await waitFor(async () => (await health()) === 1, 'a is gone');
      const viaB = await new Customer([b.url], daemon.pubkey).connect();
      const r1 = await viaB.request('posted while a is down');
      await viaB.waitForFeedback(r1.id, 'payment-required');
      viaB.close();

      a = await startRelay({ port: a.port, dbPath: a.dbPath });
      await waitFor(async () => (await health()) === 2, 'a is back');
      // a catches up with what it missed.
      await waitFor(async () => (await queryRelay(a.url, { authors: [daemon.pubkey], '#e': [r1.id] })).length === 1, 'a caught up', 15_000);

      await Promise.all([a.stop(), b.stop()]);
      await waitFor(async () => (await health()) === 0, 'both gone');
      [a, b] = await Promise.all([startRelay({ port: a.port, dbPath: a.dbPath }), startRelay({ port: b.port, dbPath: b.dbPath })]);
      await waitFor(async () => (await health()) === 2, 'both back', 15_000);
      const c = await new Customer([a.url, b.url], daemon.pubkey).connect();
      const r2 = await c.request('posted after both came back');
      await c.waitForFeedback(r2.id, 'payment-required');
      c.close();
      for (const relay of [a, b]) {
        for (const id of [r1.id, r2.id]) {
          const evs = await queryRelay(relay.url, { authors: [daemon.pubkey], '#e': [id] });
          expect(evs.map((e) => status(e))).toEqual(['payment-required']);
        }
      }
    } finally {
      await daemon.kill();
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 120_000 * TIME_SCALE);
});

describe('relays going down over NWC', () => {
  it("one relay for Nostr and the wallet: payments made while it is down are found after, each job served once", async () => {
    let relay = await startRelay();
    const wallet = await new FakeNwcWallet({ relayUrl: relay.url }).start();
    const daemon = await startDaemon({ relays: [relay.url], env: { NWC_URL: wallet.url, NWC_POLL_INTERVAL_S: '0.2' } });
    const customer = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const reqs = [await customer.request('first'), await customer.request('second')];
      const evalInvoices = await Promise.all(reqs.map(async (r) => invoiceOf((await customer.waitForFeedback(r.id, 'payment-required'))[0]!).bolt11));
      await relay.stop();
      await waitFor(() => !wallet.connected, 'the wallet to notice its relay is gone');
      for (const bolt11 of evalInvoices) expect(wallet.pay(paymentHash(bolt11))).toBe(true); // notifications lost
      expect(wallet.notificationsSent).toBe(0);
      relay = await startRelay({ port: relay.port, dbPath: relay.dbPath });
      // (The test customer's own connection does not come back: what Timmy published is read from the relay.)
      const timmysEvents = (id: string) => queryRelay(relay.url, { authors: [daemon.pubkey], '#e': [id] });
      for (const r of reqs) {
        const work = await waitFor(async () => (await timmysEvents(r.id)).find((e) => status(e) === 'payment-required' && !evalInvoices.includes(invoiceOf(e).bolt11)), 'the work quote after the outage', 30_000);
        expect(wallet.pay(paymentHash(invoiceOf(work).bolt11))).toBe(true);
      }
      for (const r of reqs) await waitFor(async () => (await timmysEvents(r.id)).some((e) => e.kind === 6050), 'the result', 30_000);
      for (const r of reqs) {
        const evs = await queryRelay(relay.url, { authors: [daemon.pubkey], '#e': [r.id] });
        expect(evs.map((e) => (e.kind === 6050 ? 'result' : status(e))).sort()).toEqual(['payment-required', 'payment-required', 'processing', 'processing', 'result', 'success']);
      }
    } finally {
      customer.close();
      await daemon.kill();
      await wallet.close();
      await relay.stop();
    }
  }, 120_000 * TIME_SCALE);
});

describe('outside services failing together', () => {
  it('CoinGecko 429 -> fallback price; LNbits websocket dropped -> polling; Anthropic 529 then timeouts -> failed, money credited, nothing charged', async () => {
    const relay = await startRelay();
    const lnbits = await startFakeLnbits();
    const anthropic = await startFakeAnthropic();
    let priceCalls = 0;
    const coingecko = createServer((_req, res) => {
      priceCalls++;
      res.writeHead(429, { 'content-type': 'application/json' }).end('{"status":{"error_code":429}}');
    });
    await new Promise<void>((r) => coingecko.listen(0, '127.0.0.1', r));
    const cgPort = (coingecko.address() as { port: number }).port;
    const daemon = await startDaemon({
      relays: [relay.url],
      env: {
        LNBITS_URL: lnbits.url,
        LNBITS_API_KEY: lnbits.invoiceKey,
        LNBITS_POLL_INTERVAL_S: '0.2',
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: anthropic.url,
        ANTHROPIC_MAX_RETRIES: '1',
        ANTHROPIC_TIMEOUT_S: '0.5',
        BTC_PRICE_URL: `http://127.0.0.1:${cgPort}/api/v3/simple/price?ids=bitcoin&vs_currencies=usd`,
        BTC_PRICE_USD_FALLBACK: '80000',
      },
    });
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const req = await c.request('Everything is on fire, answer anyway.');
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      lnbits.refuseWebsockets(true);
      lnbits.dropWebsockets();
      lnbits.pay(paymentHash(invoiceOf(fb!).bolt11));
      await c.waitForFeedback(req.id, 'processing');
      const quotes = await c.waitForFeedback(req.id, 'payment-required', 2);
      const work = quotes.find((e) => e.id !== fb!.id)!;
      expect(JSON.parse(work.content).btcPriceUsd).toBe(80_000);
      expect(priceCalls).toBeGreaterThan(0);

      anthropic.failNext(529, 'overloaded_error', 'Overloaded', 1, { headers: { 'retry-after-ms': '10' } });
      anthropic.hang(true);
      lnbits.pay(paymentHash(invoiceOf(work).bolt11));
      const [err] = await c.waitForFeedback(req.id, 'error', 1, 30_000);
      expect(tag(err!, 'status')?.[2]).toMatch(/work failed: .*credited to your pubkey/);
      expect(c.results(req.id)).toHaveLength(0);
      const credited = readDb(daemon.dataDir, (db) => (db.prepare('select coalesce(sum(delta_msats),0) s from credits where account = ?').get(c.pubkey) as { s: number }).s);
      expect(credited).toBe(invoiceOf(work).msats);
    } finally {
      c.close();
      anthropic.hang(false);
      await daemon.kill();
      await Promise.all([relay.stop(), lnbits.close(), anthropic.close(), new Promise((r) => coingecko.close(r))]);
    }
  }, 120_000 * TIME_SCALE);
});

describe('secret scanner', () => {
  it('is not vacuous: it catches a planted key, an nsec and a private key block', () => {
    const env = { ANTHROPIC_API_KEY: 'sk-ant-planted-secret-value' };
    expect(() => assertNoSecrets('all quiet', env, tempDir())).not.toThrow();
    expect(() => assertNoSecrets('{"msg":"x","key":"sk-ant-planted-secret-value"}', env, tempDir())).toThrow(/leaked/);
    expect(() => assertNoSecrets('nsec1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq', {}, tempDir())).toThrow(/nsec/);
    expect(() => assertNoSecrets('-----BEGIN OPENSSH PRIVATE KEY-----', {}, tempDir())).toThrow(/private key/);
  });
});
