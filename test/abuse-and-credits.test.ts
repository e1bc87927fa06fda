// Abuse limits and the credits ledger on the stub backend: unpaid caps, bids, NIP-09 deletion,
// expiry, a late payment credited, and credit spent before new invoices.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, paymentHash, tag } from './helpers/customer.ts';
import { jobRow, readDb } from './helpers/store.ts';

let relay: RelayProc;
let daemon: DaemonProc;
const customers: Customer[] = [];

beforeAll(async () => {
  relay = await startRelay();
  daemon = await startDaemon({
    relays: [relay.url],
    env: { MAX_OPEN_UNPAID_PER_CLIENT: '2' },
  });
});
afterAll(async () => {
  for (const c of customers) c.close();
  await daemon?.kill();
  await relay?.stop();
});

async function newCustomer(): Promise<Customer> {
  const c = await new Customer([relay.url], daemon.pubkey).connect();
  customers.push(c);
  return c;
}

const stubInvoiceCount = () => readDb(daemon.dataDir, (db) => (db.prepare('select count(*) n from stub_invoices').get() as { n: number }).n);
const creditsOf = (pubkey: string) =>
  readDb(daemon.dataDir, (db) => (db.prepare('select coalesce(sum(delta_msats), 0) s from credits where account = ?').get(pubkey) as { s: number }).s);

describe('abuse limits', () => {
  it('refuses with rate-limited: beyond the unpaid cap, creating no invoice', async () => {
    const c = await newCustomer();
    const a = await c.request('first');
    const b = await c.request('second');
    await c.waitForFeedback(a.id, 'payment-required');
    await c.waitForFeedback(b.id, 'payment-required');
    const before = stubInvoiceCount();
    const third = await c.request('third');
    const [err] = await c.waitForFeedback(third.id, 'error');
    expect(tag(err!, 'status')?.[2]).toMatch(/^rate-limited: /);
    expect(tag(err!, 'amount')).toBeUndefined();
    expect(stubInvoiceCount()).toBe(before);
  });

  it('answers a bid below the price with error naming the price, and no invoice', async () => {
    const c = await newCustomer();
    const before = stubInvoiceCount();
    const req = await c.request('Write a detailed essay about the history of money', [['bid', '1000']]);
    const [err] = await c.waitForFeedback(req.id, 'error');
    expect(tag(err!, 'status')?.[2]).toMatch(/bid too low: 1000 msats offered, the price is \d+ msats/);
    expect(stubInvoiceCount()).toBe(before);
    const ok = await c.request('hi', [['bid', '100000000']]);
    await c.waitForFeedback(ok.id, 'payment-required');
  });

});

describe('NIP-09 deletion and credits', () => {
  it("ignores another pubkey's deletion; the author's deletion cancels; a late payment becomes credit that the next request spends", async () => {
    const c = await newCustomer();
    const stranger = await newCustomer();
    const req = await c.request('delete me later');
    const [fb] = await c.waitForFeedback(req.id, 'payment-required');
    const evalInvoice = invoiceOf(fb!);

    await stranger.publish(stranger.sign([['e', req.id], ['k', '5050']], { kind: 5 }));
    await c.publish(c.sign([['e', req.id], ['k', '5050']], { kind: 5, content: 'never mind' }));
    const [cancelled] = await c.waitForFeedback(req.id, 'error');
    expect(tag(cancelled!, 'status')?.[2]).toMatch(/^cancelled: /);
    expect((await jobRow(daemon.dataDir, req.id))?.state).toBe('cancelled');

    // The customer's wallet pays anyway: the money is credited, not lost.
    await payStub(daemon.api, evalInvoice.bolt11);
    const errors = await c.waitForFeedback(req.id, 'error', 2);
    expect(errors.map((e) => tag(e, 'status')?.[2]).join('\n')).toMatch(/payment received after the job was cancelled: 10 sats credited/);
    expect(creditsOf(c.pubkey)).toBe(10_000);
    expect((await jobRow(daemon.dataDir, req.id))?.state).toBe('cancelled');

    // The next request is evaluated on credit: no eval invoice, straight to processing.
    const next = await c.request('hello again');
    const [processing] = await c.waitForFeedback(next.id, 'processing');
    expect(tag(processing!, 'status')?.[2]).toMatch(/paid from your credit/);
    await c.waitForFeedback(next.id, 'payment-required');
    expect(c.feedback(next.id, 'payment-required')).toHaveLength(1); // only the work invoice
    expect(creditsOf(c.pubkey)).toBe(0);
    // The stranger's deletion did nothing to anyone.
    expect(creditsOf(stranger.pubkey)).toBe(0);
  });
});

describe('invoice expiry', () => {
  it('expires a job whose invoice is not paid in time', async () => {
    const short = await startDaemon({ relays: [relay.url], env: { INVOICE_EXPIRY_S: '2' } });
    try {
      const c = await new Customer([relay.url], short.pubkey).connect();
      customers.push(c);
      const req = await c.request('will not pay');
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      const [err] = await c.waitForFeedback(req.id, 'error', 1, 15_000);
      expect(tag(err!, 'status')?.[2]).toMatch(/^expired: /);
      expect((await jobRow(short.dataDir, req.id))?.state).toBe('expired');
      // A wallet can no longer pay it.
      const res = await fetch(`${short.api}/api/dev/stub/pay/${paymentHash(invoiceOf(fb!).bolt11)}`, { method: 'POST' });
      expect(res.status).toBe(410);
    } finally {
      await short.kill();
    }
  });
});
