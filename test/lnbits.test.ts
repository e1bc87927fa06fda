// The production LNbits backend against a local fake that speaks LNbits' wire format.
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { decode } from 'light-bolt11-decoder';
import { createLogger } from '../src/log.ts';
import { LnbitsApiError, LnbitsPayments, settledHashFromWsMessage, type LnbitsOptions } from '../src/payments/lnbits.ts';
import { PaymentError } from '../src/core/ports.ts';
import { startFakeLnbits, type FakeLnbits, type FakeLnbitsOptions } from './fakes/lnbits.ts';
import { waitFor } from './helpers/wait.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Captures every log line so tests can check what was (not) logged. */
function captureLog(): { log: ReturnType<typeof createLogger>; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger('trace', sink), text: () => lines.join('') };
}

async function setup(
  backendOpts: Partial<LnbitsOptions> = {},
  fakeOpts: FakeLnbitsOptions = {},
): Promise<{ fake: FakeLnbits; lnbits: LnbitsPayments; settled: string[]; logText: () => string }> {
  const fake = await startFakeLnbits(fakeOpts);
  const { log, text } = captureLog();
  const lnbits = new LnbitsPayments({ url: fake.url, apiKey: fake.invoiceKey, log, ...backendOpts });
  const settled: string[] = [];
  lnbits.onSettled((h) => settled.push(h));
  cleanups.push(async () => {
    await lnbits.close();
    await fake.close();
  });
  return { fake, lnbits, settled, logText: text };
}

const req = (amountMsats: number, expirySecs = 600) => ({ amountMsats, memo: 'timmy test', expirySecs });

describe('LnbitsPayments against the fake LNbits', () => {
  it('creates an invoice whose bolt11 decodes to the amount, hash and expiry', async () => {
    const { fake, lnbits } = await setup();
    const before = Math.floor(Date.now() / 1000);
    const inv = await lnbits.createInvoice(req(21_000));

    expect(inv.bolt11.startsWith('lnbcrt210n1')).toBe(true);
    const sections = decode(inv.bolt11).sections;
    const amount = sections.find((s) => s.name === 'amount');
    const hash = sections.find((s) => s.name === 'payment_hash');
    expect(amount && 'value' in amount ? amount.value : null).toBe('21000');
    expect(hash && 'value' in hash ? hash.value : null).toBe(inv.paymentHash);
    expect(inv.amountMsats).toBe(21_000);
    expect(inv.expiresAt).toBeGreaterThanOrEqual(before + 600);
    expect(inv.expiresAt).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 600);

    // A real preimage stands behind the hash, and the request used the invoice key only.
    const stored = fake.invoice(inv.paymentHash)!;
    expect(createHash('sha256').update(Buffer.from(stored.preimage, 'hex')).digest('hex')).toBe(inv.paymentHash);
    expect(fake.stats.invoicesCreated).toBe(1);
    expect(fake.requests).toEqual([{ method: 'POST', path: '/api/v1/payments', key: 'invoice', status: 201 }]);
  });

  it('reads the legacy (0.12) answer with `payment_request` as well', async () => {
    const { lnbits } = await setup({}, { flavour: 'legacy' });
    const inv = await lnbits.createInvoice(req(5000));
    expect(inv.bolt11.startsWith('lnbcrt50n1')).toBe(true);
    expect(await lnbits.isPaid(inv.paymentHash)).toBe(false);
  });

  it('refuses amounts that are not whole sats without calling LNbits', async () => {
    const { fake, lnbits } = await setup();
    await expect(lnbits.createInvoice(req(1500))).rejects.toBeInstanceOf(PaymentError);
    expect(fake.stats.requests).toBe(0);
  });

  it('a wrong key is a PaymentError carrying LNbits’ detail (1.x and 0.12)', async () => {
    const { fake, logText } = await setup();
    const { log } = captureLog();
    const wrong = new LnbitsPayments({ url: fake.url, apiKey: 'f'.repeat(32), log });
    cleanups.push(() => wrong.close());
    const err = await wrong.createInvoice(req(1000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PaymentError);
    expect(err).toBeInstanceOf(LnbitsApiError);
    expect((err as LnbitsApiError).status).toBe(404);
    expect((err as LnbitsApiError).detail).toBe('Wallet not found.');
    expect((err as Error).message).toContain('Wallet not found.');
    expect(logText()).not.toContain(fake.invoiceKey);

    const legacy = await startFakeLnbits({ flavour: 'legacy' });
    cleanups.push(() => legacy.close());
    const old = new LnbitsPayments({ url: legacy.url, apiKey: 'f'.repeat(32), log });
    cleanups.push(() => old.close());
    const err2 = (await old.createInvoice(req(1000)).catch((e: unknown) => e)) as LnbitsApiError;
    expect(err2).toBeInstanceOf(PaymentError);
    expect([err2.status, err2.detail]).toEqual([401, 'Invalid key or wallet.']);
  });

  it('a 500 (or 520) on create is a PaymentError with the detail', async () => {
    const { fake, lnbits } = await setup();
    fake.setFailing(true);
    const err = (await lnbits.createInvoice(req(1000)).catch((e: unknown) => e)) as LnbitsApiError;
    expect(err).toBeInstanceOf(PaymentError);
    expect([err.status, err.detail]).toEqual([500, 'Internal Server Error']);
    fake.setFailing(false);

    fake.failNext(520, 'Unable to connect to http://127.0.0.1:9735.');
    const err2 = (await lnbits.createInvoice(req(1000)).catch((e: unknown) => e)) as LnbitsApiError;
    expect(err2).toBeInstanceOf(PaymentError);
    expect(err2.detail).toBe('Unable to connect to http://127.0.0.1:9735.');

    // The failures were one-shot: the next invoice is fine.
    await expect(lnbits.createInvoice(req(1000))).resolves.toMatchObject({ amountMsats: 1000 });
  });

  it('an unreachable LNbits is a PaymentError', async () => {
    const fake = await startFakeLnbits();
    const url = fake.url;
    await fake.close();
    const lnbits = new LnbitsPayments({ url, apiKey: 'k', log: createLogger('silent') });
    cleanups.push(() => lnbits.close());
    await expect(lnbits.createInvoice(req(1000))).rejects.toBeInstanceOf(PaymentError);
  });

  it('rejects an invoice whose bolt11 does not match the returned payment hash', async () => {
    const other = 'ab'.repeat(32);
    const tamper: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method !== 'POST') return res;
      const body = (await res.json()) as Record<string, unknown>;
      return new Response(JSON.stringify({ ...body, payment_hash: other }), { status: res.status, headers: res.headers });
    };
    const { lnbits } = await setup({ fetch: tamper });
    await expect(lnbits.createInvoice(req(1000))).rejects.toThrow(/payment hash does not match/);
  });

  it('isPaid: false while open, true once paid, false for an unknown hash (404)', async () => {
    const { fake, lnbits } = await setup();
    const inv = await lnbits.createInvoice(req(3000));
    expect(await lnbits.isPaid(inv.paymentHash)).toBe(false);
    const preimage = fake.pay(inv.paymentHash);
    expect(createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex')).toBe(inv.paymentHash);
    expect(await lnbits.isPaid(inv.paymentHash)).toBe(true);
    expect(await lnbits.isPaid('00'.repeat(32))).toBe(false);
    await expect(lnbits.isPaid('not-a-hash')).rejects.toBeInstanceOf(PaymentError);
  });

  it('a payment pushed over the websocket reaches onSettled without waiting for a poll', async () => {
    const { fake, lnbits, settled, logText } = await setup({ pollIntervalMs: 60_000 });
    lnbits.start();
    await waitFor(() => lnbits.websocketConnected && fake.wsClients === 1, 'websocket connected', 5000);
    const inv = await lnbits.createInvoice(req(2000));
    const checksBefore = fake.stats.statusChecks;

    const t0 = Date.now();
    fake.pay(inv.paymentHash);
    await waitFor(() => settled.includes(inv.paymentHash), 'settlement over the websocket', 2000);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(fake.stats.statusChecks).toBe(checksBefore); // no poll was involved
    expect(lnbits.watchedCount).toBe(0);
    // The websocket URL carries the key; it must never reach the log.
    expect(logText()).toContain('LNbits websocket connected');
    expect(logText()).not.toContain(fake.invoiceKey);
  });

  it('with websockets refused, polling settles the invoice and then stops asking for it', async () => {
    const { fake, lnbits, settled } = await setup({ pollIntervalMs: 100 });
    fake.refuseWebsockets(true);
    lnbits.start();
    const inv = await lnbits.createInvoice(req(4000));
    await waitFor(() => fake.stats.statusChecks >= 2, 'a few polls', 5000);
    expect(settled).toEqual([]);

    fake.pay(inv.paymentHash);
    await waitFor(() => settled.includes(inv.paymentHash), 'settlement by polling', 5000);
    expect(fake.stats.wsRefused).toBeGreaterThan(0);
    expect(lnbits.websocketConnected).toBe(false);

    // Once seen paid it leaves the poll set: later polls neither ask for it nor report it again.
    const checks = fake.stats.statusChecks;
    const other = await lnbits.createInvoice(req(1000));
    await waitFor(() => fake.stats.statusChecks >= checks + 3, 'more polls', 5000);
    const asked = fake.requests.filter((r) => r.path === `/api/v1/payments/${inv.paymentHash}`).length;
    await waitFor(() => fake.stats.statusChecks >= checks + 6, 'even more polls', 5000);
    expect(fake.requests.filter((r) => r.path === `/api/v1/payments/${inv.paymentHash}`).length).toBe(asked);
    expect(settled.filter((h) => h === inv.paymentHash)).toHaveLength(1);
    expect(fake.requests.some((r) => r.path === `/api/v1/payments/${other.paymentHash}`)).toBe(true);
  });

  it('after a websocket outage, the reconnect catches up by polling once', async () => {
    const { fake, lnbits, settled } = await setup({ pollIntervalMs: 60_000 });
    lnbits.start();
    await waitFor(() => lnbits.websocketConnected, 'websocket connected', 5000);
    const inv = await lnbits.createInvoice(req(1000));

    fake.refuseWebsockets(true);
    fake.dropWebsockets();
    await waitFor(() => !lnbits.websocketConnected, 'websocket down', 5000);
    await waitFor(() => fake.stats.wsRefused > 0, 'a refused reconnect', 5000);
    fake.pay(inv.paymentHash); // pushed to nobody
    expect(fake.wsClients).toBe(0);

    fake.refuseWebsockets(false);
    await waitFor(() => settled.includes(inv.paymentHash), 'settlement after reconnect', 10_000);
    expect(lnbits.websocketConnected).toBe(true);
  });

  it('watch() adds invoices created by an earlier process to the poll set', async () => {
    const { fake, settled } = await setup();
    const first = new LnbitsPayments({ url: fake.url, apiKey: fake.invoiceKey, log: createLogger('silent') });
    const inv = await first.createInvoice(req(7000));
    await first.close();

    fake.refuseWebsockets(true);
    fake.pay(inv.paymentHash);
    const second = new LnbitsPayments({ url: fake.url, apiKey: fake.invoiceKey, log: createLogger('silent'), pollIntervalMs: 100 });
    cleanups.push(() => second.close());
    second.onSettled((h) => settled.push(h));
    second.watch(inv.paymentHash, inv.expiresAt);
    second.start();
    await waitFor(() => settled.includes(inv.paymentHash), 'settlement of a watched invoice', 5000);
  });

  it('ignores websocket messages that are not incoming settlements', async () => {
    const { fake, lnbits, settled } = await setup({ pollIntervalMs: 60_000 });
    lnbits.start();
    await waitFor(() => fake.wsClients === 1, 'websocket connected', 5000);
    const h = (c: string) => c.repeat(64);
    fake.pushRaw('not json');
    fake.pushRaw(JSON.stringify({ wallet_balance: 5 }));
    fake.pushRaw(JSON.stringify({ wallet_balance: 5, payment: { payment_hash: h('1'), amount: -1000, status: 'success' } }));
    fake.pushRaw(JSON.stringify({ wallet_balance: 5, payment: { payment_hash: h('2'), amount: 1000, status: 'pending' } }));
    fake.pushRaw(JSON.stringify({ wallet_balance: 5, payment: { payment_hash: h('3'), amount: 1000, status: 'success' } }));
    await waitFor(() => settled.length > 0, 'the one real settlement', 2000);
    expect(settled).toEqual([h('3')]);

    // The parser on its own, for both generations of the message.
    expect(settledHashFromWsMessage(JSON.stringify({ payment: { payment_hash: h('A'), amount: 1000, pending: false } }))).toBe(h('a'));
    expect(settledHashFromWsMessage(JSON.stringify({ payment: { payment_hash: h('4'), amount: 1000, pending: true } }))).toBeNull();
    expect(settledHashFromWsMessage(JSON.stringify({ pending: false, status: 'success' }))).toBeNull();
  });
});

describe('the fake LNbits answers bad requests like LNbits', () => {
  async function post(fake: FakeLnbits, key: string | undefined, body: unknown): Promise<[number, unknown]> {
    const res = await fetch(`${fake.url}/api/v1/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'X-Api-Key': key } : {}) },
      body: JSON.stringify(body),
    });
    return [res.status, await res.json()];
  }

  it('requires a key, refuses outgoing payments with the invoice key, and trips on a missing amount', async () => {
    const fake = await startFakeLnbits();
    cleanups.push(() => fake.close());
    expect(await post(fake, undefined, { out: false, amount: 1 })).toEqual([401, { detail: 'No Api Key provided.' }]);
    expect(await post(fake, fake.invoiceKey, { out: true, bolt11: 'lnbcrt1...' })).toEqual([
      403,
      { detail: 'Invoice (or Admin) key required.' },
    ]);
    // `out` defaults to true in LNbits' CreateInvoice model.
    expect((await post(fake, fake.invoiceKey, { amount: 1 }))[0]).toBe(403);
    const [status, body] = await post(fake, fake.invoiceKey, { out: false, unit: 'sat', memo: 'x' });
    expect(status).toBe(500);
    expect(body).toEqual({ detail: "'>' not supported between instances of 'NoneType' and 'int'" });
    expect(await post(fake, fake.invoiceKey, { out: false, amount: 0 })).toEqual([
      520,
      { detail: 'Amountless invoices not supported.', status: 'failed' },
    ]);
    expect(fake.stats.invoicesCreated).toBe(0);

    const res = await fetch(`${fake.url}/api/v1/payments/${'00'.repeat(32)}`);
    expect([res.status, await res.json()]).toEqual([404, { detail: 'Payment does not exist.' }]);
  });
});
