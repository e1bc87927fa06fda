// The daemon on the real LNbits client (and the real Anthropic client) against faithful local fakes:
// the full paid flow, settlement pushed by websocket, polling while it is down, double reports.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, amountMsatsOf, invoiceOf, paymentHash, tag } from './helpers/customer.ts';
import { waitFor } from './helpers/wait.ts';
import { startFakeLnbits, type FakeLnbits } from './fakes/lnbits.ts';
import { startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.ts';
import { fakeBackendEnv } from './helpers/backends.ts';

let relay: RelayProc;
let lnbits: FakeLnbits;
let anthropic: FakeAnthropic;
let daemon: DaemonProc;
let customer: Customer;

beforeAll(async () => {
  [relay, lnbits, anthropic] = await Promise.all([startRelay(), startFakeLnbits(), startFakeAnthropic()]);
  daemon = await startDaemon({
    relays: [relay.url],
    env: { ...fakeBackendEnv(lnbits, anthropic), LNBITS_POLL_INTERVAL_S: '0.2' },
  });
  await waitFor(() => lnbits.stats.wsConnections > 0, 'daemon on the LNbits websocket');
  customer = await new Customer([relay.url], daemon.pubkey).connect();
});
afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await Promise.all([relay?.stop(), lnbits?.close(), anthropic?.close()]);
});

describe('LNbits backend', () => {
  it('full paid flow; websocket settlement reaches processing without a poll', async () => {
    const req = await customer.request('What does a Lightning node do?');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    const evalInv = invoiceOf(evalFb!);
    expect(amountMsatsOf(evalInv.bolt11)).toBe(10_000);
    const hash = paymentHash(evalInv.bolt11);
    expect(lnbits.invoice(hash)?.amountMsats).toBe(10_000);
    // Only the invoice key was ever used.
    expect(lnbits.requests.every((r) => r.key !== 'admin')).toBe(true);

    const checksBefore = lnbits.stats.statusChecks;
    const preimage = lnbits.pay(hash);
    expect(createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex')).toBe(hash);
    await customer.waitForFeedback(req.id, 'processing');
    expect(lnbits.stats.statusChecks).toBe(checksBefore);

    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2);
    const work = invoiceOf(quotes.find((e) => e.id !== evalFb!.id)!);
    expect(amountMsatsOf(work.bolt11)).toBe(work.msats);
    lnbits.pay(paymentHash(work.bolt11));
    const result = await customer.waitForResult(req.id);
    expect(result.content).toContain('What does a Lightning node do?');
    const ledger = JSON.parse(tag(result, 'cost_ledger')![1]!);
    expect(ledger.chargedSats * 1000).toBe(work.msats);
  });

  it('with the websocket down, polling settles the payment', async () => {
    lnbits.refuseWebsockets(true);
    lnbits.dropWebsockets();
    try {
      const req = await customer.request('Polling please.');
      const [fb] = await customer.waitForFeedback(req.id, 'payment-required');
      const checksBefore = lnbits.stats.statusChecks;
      lnbits.pay(paymentHash(invoiceOf(fb!).bolt11));
      await customer.waitForFeedback(req.id, 'processing');
      expect(lnbits.stats.statusChecks).toBeGreaterThan(checksBefore);
    } finally {
      lnbits.refuseWebsockets(false);
    }
  });

  it('a settlement reported by websocket and by poll moves the job once', async () => {
    await waitFor(() => lnbits.wsClients > 0, 'websocket back');
    const req = await customer.request('Report me twice.');
    const [fb] = await customer.waitForFeedback(req.id, 'payment-required');
    const hash = paymentHash(invoiceOf(fb!).bolt11);
    lnbits.pay(hash);
    // A GET asks LNbits too (the poll path) while the websocket push arrives.
    await Promise.all([fetch(`${daemon.api}/api/jobs/${req.id}`), fetch(`${daemon.api}/api/jobs/${req.id}`)]);
    await customer.waitForFeedback(req.id, 'payment-required', 2);
    expect(customer.feedback(req.id, 'processing')).toHaveLength(1);
    expect(daemon.logs.filter((l) => l.msg === 'job transition' && l.jobId === req.id && l.to === 'evaluating')).toHaveLength(1);
  });

  it('LNbits failing at invoice time: unavailable error, no job waiting on a phantom invoice', async () => {
    lnbits.setFailing(true);
    try {
      const req = await customer.request('Invoice will fail.');
      const [err] = await customer.waitForFeedback(req.id, 'error');
      expect(tag(err!, 'status')?.[2]).toMatch(/^unavailable: /);
    } finally {
      lnbits.setFailing(false);
    }
  });
});

describe('LNbits unreachable at expiry time', () => {
  it('does not expire an invoice it cannot check; the payment made meanwhile is honoured', async () => {
    const fake = await startFakeLnbits();
    const d = await startDaemon({
      relays: [relay.url],
      env: { LNBITS_URL: fake.url, LNBITS_API_KEY: fake.invoiceKey, LNBITS_POLL_INTERVAL_S: '0.2', INVOICE_EXPIRY_S: '2' },
    });
    const c = await new Customer([relay.url], d.pubkey).connect();
    try {
      const req = await c.request('Pay me while LNbits is down.');
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      fake.refuseWebsockets(true);
      fake.dropWebsockets();
      fake.setFailing(true);
      fake.pay(paymentHash(invoiceOf(fb!).bolt11)); // the payment lands, but nobody can ask LNbits about it
      await waitFor(() => d.logs.filter((l) => l.msg === 'invoice status check failed').length >= 2, 'expiry passes that could not check', 20_000);
      expect(c.feedback(req.id, 'error')).toHaveLength(0);
      fake.setFailing(false);
      await c.waitForFeedback(req.id, 'processing', 1, 20_000);
      expect(c.feedback(req.id, 'error')).toHaveLength(0);
    } finally {
      c.close();
      await d.kill();
      await fake.close();
    }
  });
});
