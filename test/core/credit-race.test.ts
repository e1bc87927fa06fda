// Credit spent by another worker between a charge's read of the balance and its commit: the store refuses the
// spend (CreditRaced) and the core charges again against what is left, for the eval fee (JobService.open) and
// for the work (JobRunner.quote). The other worker is played by a spend committed at exactly that moment.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, newJob, type CoreHarness } from '../helpers/core.ts';
import type { StoreOps } from '../../src/store/store.ts';

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness();
});
afterEach(() => h.close());

const alice = 'c'.repeat(64);

/**
 * Arms a race: the next balance read of `account` by the core is followed, before the core can commit, by
 * another worker's spend of everything the read saw. Returns how many balance reads the core made.
 */
function spendElsewhereAfterNextRead(account: string): () => number {
  const real = h.store.credits;
  let reads = 0;
  let armed = true;
  const credits: StoreOps['credits'] = {
    ...real,
    async creditBalanceMsats(a) {
      const balance = await real.creditBalanceMsats(a);
      if (a === account) reads++;
      if (a === account && armed && balance > 0) {
        armed = false;
        await real.addCredit({ account, deltaMsats: -balance, reason: 'spent on another worker', jobId: null, ref: 'elsewhere' });
      }
      return balance;
    },
  };
  Object.defineProperty(h.store, 'credits', { value: credits, configurable: true });
  return () => reads;
}

const seed = (msats: number, ref: string) => h.store.credits.addCredit({ account: alice, deltaMsats: msats, reason: 'refund', jobId: null, ref });

describe('credit raced by another worker', () => {
  it('the eval fee: the job is created once, invoiced in full, and the balance never goes below zero', async () => {
    await seed(10_000, 'seed');
    const reads = spendElsewhereAfterNextRead(alice);
    const r = await h.core.jobs.submit(newJob({ customerPubkey: alice }));
    if (r.status !== 'created') throw new Error(`not created: ${r.status}`);
    expect(reads()).toBe(2); // charged, refused at commit, charged again
    expect(r.invoice!.amountMsats).toBe(10_000);
    expect(r.job).toMatchObject({ state: 'awaiting_eval_payment', evalCreditMsats: 0, evalPaymentHash: r.invoice!.paymentHash });
    expect(await h.store.credits.creditBalanceMsats(alice)).toBe(0);
    expect((await h.store.credits.creditEntries(alice)).map((e) => e.ref)).toEqual(['elsewhere', 'seed']);
    expect((await h.intents(r.job.id)).map((o) => o.intent)).toMatchObject([{ type: 'feedback', status: 'payment-required', amountMsats: 10_000 }]);
  });

  it('the work: quoted once with an invoice for the whole price, nothing spent twice', async () => {
    const r = await h.core.jobs.submit(newJob({ customerPubkey: alice }));
    if (r.status !== 'created') throw new Error(`not created: ${r.status}`);
    await seed(1_000, 'seed-work'); // less than the work price: partly paid from credit, were it still there
    const reads = spendElsewhereAfterNextRead(alice);
    await h.pay(r.invoice!.paymentHash);
    const quoted = (await h.core.runner.settled(r.job.id))!;
    expect(quoted.state).toBe('awaiting_work_payment');
    expect(reads()).toBe(2);
    expect(quoted.workCreditMsats).toBe(0);
    const work = (await h.core.book.get(quoted.workPaymentHash))!;
    expect(work.amountMsats).toBe(quoted.pricing!.amountSats * 1000);
    expect(await h.store.credits.creditBalanceMsats(alice)).toBe(0);
    await h.pay(quoted.workPaymentHash!);
    expect((await h.core.runner.settled(r.job.id))!.state).toBe('complete');
  });
});
