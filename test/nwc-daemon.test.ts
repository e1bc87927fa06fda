// The daemon with NWC_URL and nothing else: a paid job, a session deposit and a node order, each paid from
// the fake NWC wallet service, settled by its notifications; and a settlement the daemon missed while the
// wallet's relay was down, found by lookup after the reconnect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, paymentHash } from './helpers/customer.ts';
import { readDb } from './helpers/store.ts';
import { FakeNwcWallet } from './fakes/nwc-wallet.ts';
import { fetchWithL402 } from '@getalby/lightning-tools';
import { waitFor } from './helpers/wait.ts';

let relay: RelayProc;
let walletRelay: RelayProc;
let wallet: FakeNwcWallet;
let daemon: DaemonProc;
let customer: Customer;

beforeAll(async () => {
  [relay, walletRelay] = await Promise.all([startRelay(), startRelay()]);
  wallet = await new FakeNwcWallet({ relayUrl: walletRelay.url }).start();
  daemon = await startDaemon({ relays: [relay.url], env: { NWC_URL: wallet.url, NWC_POLL_INTERVAL_S: '0.2', STUB_PROVISION_DELAY_MS: '0' } });
  customer = await new Customer([relay.url], daemon.pubkey).connect();
});
afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await wallet?.close();
  await Promise.all([relay?.stop(), walletRelay?.stop()]);
});

const json = async (path: string, init?: RequestInit) => {
  const res = await fetch(`${daemon.api}${path}`, { ...init, headers: { 'content-type': 'application/json', ...(init?.headers ?? {}) } });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

describe('NWC as the payment backend', () => {
  it('says so in /api/info and /api/healthz, and never logs the connection secret', async () => {
    expect((await json('/api/info')).body.payments).toBe('nwc');
    const health = await waitFor(async () => {
      const h = await json('/api/healthz');
      return h.body.payments.ok && h;
    }, 'payments healthy');
    expect(health.body.payments).toMatchObject({ backend: 'nwc', ok: true });
    const secret = /secret=([0-9a-f]+)/.exec(wallet.url)![1]!;
    expect(daemon.output()).not.toContain(secret);
  });

  it('a paid job: both invoices made by the wallet, both settled by its notifications, one result', async () => {
    const req = await customer.request('What is a Lightning invoice?');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    const evalHash = paymentHash(invoiceOf(evalFb!).bolt11);
    expect(wallet.invoices.has(evalHash)).toBe(true);
    expect(wallet.pay(evalHash)).toBe(true);
    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2);
    const work = quotes.find((e) => e.id !== evalFb!.id)!;
    expect(wallet.pay(paymentHash(invoiceOf(work).bolt11))).toBe(true);
    await customer.waitForResult(req.id);
    expect(customer.results(req.id)).toHaveLength(1);
    expect(wallet.notificationsSent).toBeGreaterThanOrEqual(2);
  });

  it('a session deposit and a node order are paid the same way', async () => {
    const session = await json('/api/sessions', { method: 'POST', body: JSON.stringify({ amountSats: 500 }) });
    expect(session.status).toBe(201);
    wallet.pay(session.body.depositInvoice.paymentHash);
    const bearer = { authorization: `Bearer ${session.body.macaroon}` };
    await waitFor(async () => (await json(`/api/sessions/${session.body.sessionId}`, { headers: bearer })).body.state === 'active', 'the session to be active');
    expect((await json(`/api/sessions/${session.body.sessionId}`, { headers: bearer })).body.balanceSats).toBe(500);

    const order = await json('/api/bootstrap', { method: 'POST', body: '{}' });
    expect(order.status).toBe(201);
    wallet.pay(order.body.invoice.paymentHash);
    await waitFor(async () => ['ready', 'delivered'].includes((await json(`/api/bootstrap/${order.body.bootstrapJobId}`)).body.state), 'the node to be ready');
  });

  it('L402 over NWC: 402, the wallet pays, the preimage opens the session; a cancelled job paid anyway is credited', async () => {
    const wallet402 = {
      payInvoice: async ({ invoice }: { invoice: string }) => {
        const hash = paymentHash(invoice);
        expect(wallet.pay(hash)).toBe(true);
        return { preimage: wallet.invoices.get(hash)!.preimage };
      },
    };
    const res = await fetchWithL402(`${daemon.api}/api/l402/request`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request: 'hi' }) }, { wallet: wallet402 });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { result: string }).result).toContain('stub agent');

    // Credits: a request deleted (NIP-09) before it was paid, then paid anyway from the wallet (a customer
    // of its own: the credit would pay the next test's evaluation).
    const canceller = await new Customer([relay.url], daemon.pubkey).connect();
    const req = await canceller.request('cancel me');
    const [fb] = await canceller.waitForFeedback(req.id, 'payment-required');
    await canceller.publish(canceller.sign([['e', req.id]], { kind: 5 }));
    canceller.close();
    await waitFor(() => readDb(daemon.dataDir, (db) => (db.prepare('select state from jobs where id = ?').get(req.id) as { state: string }).state) === 'cancelled', 'the job cancelled');
    const hash = paymentHash(invoiceOf(fb!).bolt11);
    wallet.pay(hash);
    const credited = () => readDb(daemon.dataDir, (db) => (db.prepare('select coalesce(sum(delta_msats), 0) s from credits where account = ?').get(canceller.pubkey) as { s: number }).s);
    await waitFor(() => credited() === invoiceOf(fb!).msats, 'the late payment credited');
  });

  it('a payment made while the wallet relay was down (its notification lost) is found after the reconnect', async () => {
    const req = await customer.request('Name one Lightning implementation.');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    const hash = paymentHash(invoiceOf(evalFb!).bolt11);
    const { port, dbPath } = walletRelay;
    await walletRelay.stop();
    await waitFor(() => !wallet.connected, 'the wallet to notice its relay is gone');
    const sent = wallet.notificationsSent;
    expect(wallet.pay(hash)).toBe(true);
    expect(wallet.notificationsSent).toBe(sent); // nobody listening: lost
    walletRelay = await startRelay({ port, dbPath });
    await customer.waitForFeedback(req.id, 'processing', 1, 30_000);
    const paid = readDb(daemon.dataDir, (db) => db.prepare('select status from invoice_book where payment_hash = ?').get(hash) as { status: string });
    expect(paid.status).toBe('paid');
  });
});
