// Text jobs in process: the paid flow, typed refusals (caps, bid), credit spent before invoicing (once),
// failures credited, sessions debited by actual cost.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, newJob, type CoreHarness } from '../helpers/core.ts';
import { Refusal } from '../../src/core/refusal.ts';

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness({ MAX_OPEN_UNPAID_PER_CLIENT: '2', MAX_OPEN_UNPAID_TOTAL: '3' });
});
afterEach(() => h.close());

async function submitted(job = newJob()) {
  const r = await h.core.jobs.submit(job);
  if (r.status !== 'created') throw new Error(`not created: ${r.status}`);
  return r;
}

describe('text jobs', () => {
  it('eval invoice -> evaluation -> work invoice -> work -> one result', async () => {
    const r = await submitted();
    expect(r.invoice!.amountMsats).toBe(10_000);
    await h.pay(r.invoice!.paymentHash);
    const quoted = (await h.core.runner.settled(r.job.id))!;
    expect(quoted.state).toBe('awaiting_work_payment');
    await h.pay(quoted.workPaymentHash!);
    const done = (await h.core.runner.settled(r.job.id))!;
    expect(done.state).toBe('complete');
    expect(done.costLedger!.chargedSats).toBe(quoted.pricing!.amountSats);
    expect(h.agent.calls).toEqual({ evaluate: 1, work: 1 });
    expect((await h.intents(r.job.id)).map((o) => (o.intent.type === 'feedback' ? o.intent.status : o.intent.type))).toEqual([
      'payment-required', 'processing', 'payment-required', 'processing', 'result', 'success',
    ]);
  });

  it('refuses past the per-customer cap with a typed rate-limited refusal, recorded and answered once', async () => {
    const alice = 'b'.repeat(64);
    await submitted(newJob({ customerPubkey: alice }));
    await submitted(newJob({ customerPubkey: alice }));
    const third = newJob({ customerPubkey: alice });
    const r = await h.core.jobs.submit(third);
    expect(r.status).toBe('refused');
    if (r.status !== 'refused') return;
    expect(r.refusal).toBeInstanceOf(Refusal);
    expect(r.refusal.code).toBe('rate-limited');
    expect(r.refusal.message).toMatch(/^rate-limited: you have 2 unpaid jobs open/);
    // A refused Nostr request is recorded once and answered with the refusal's words and its label.
    expect((await h.intents(third.id)).map((o) => o.intent)).toEqual([{ type: 'feedback', status: 'error', message: r.refusal.message, label: 'rate-limited' }]);
    expect((await h.core.jobs.submit(third)).status).toBe('duplicate');
  });

  it('at the total cap the oldest unpaid evaluation makes room: withdrawn, answered, its late payment credited', async () => {
    const oldest = await submitted(newJob({ customerPubkey: 'b'.repeat(64) }));
    await submitted(newJob({ customerPubkey: 'c'.repeat(64) }));
    await submitted(newJob({ customerPubkey: 'd'.repeat(64) }));
    const newest = await submitted(newJob({ customerPubkey: 'e'.repeat(64) }));
    expect(newest.invoice).not.toBeNull();
    expect((await h.core.book.openCount('job'))).toBe(3);
    expect((await h.core.jobs.get(oldest.job.id))!.state).toBe('expired');
    expect((await h.core.book.get(oldest.invoice!.paymentHash))!.status).toBe('withdrawn');
    const [dropped] = (await h.intents(oldest.job.id)).filter((o) => o.intent.type === 'feedback' && o.intent.status === 'error').map((o) => o.intent);
    expect(dropped).toMatchObject({ label: 'expired', message: expect.stringMatching(/^expired: dropped unpaid to make room/) });
    // Still payable: the money is credited to the payer, once, and the withdrawn invoice no longer counts.
    await h.pay(oldest.invoice!.paymentHash);
    await h.core.book.settle(oldest.invoice!.paymentHash);
    expect((await h.core.book.get(oldest.invoice!.paymentHash))!.status).toBe('paid');
    expect((await h.store.credits.creditBalanceMsats('b'.repeat(64)))).toBe(oldest.invoice!.amountMsats);
    expect((await h.core.book.openCount('job'))).toBe(3);
  });

  it('the caps hold for requests created at the same moment (on PostgreSQL: as several workers would)', async () => {
    const alice = 'b'.repeat(64);
    // Alice's six at once: two pass her cap. Then six strangers' at once, twice: the total stays at its cap.
    const hers = await Promise.all(Array.from({ length: 6 }, () => h.core.jobs.submit(newJob({ customerPubkey: alice }))));
    expect(hers.filter((o) => o.status === 'created')).toHaveLength(2);
    for (let round = 0; round < 2; round++) {
      const burst = Array.from({ length: 6 }, (_, i) => newJob({ customerPubkey: `c${round}${String(i).padStart(62, '0')}` }));
      const outcomes = await Promise.all(burst.map((j) => h.core.jobs.submit(j)));
      expect(outcomes.filter((o) => o.status === 'created').length).toBeGreaterThanOrEqual(1);
      expect(await h.core.book.openCount('job')).toBe(3); // never above MAX_OPEN_UNPAID_TOTAL
      expect(await h.exec("select id from jobs where state = 'awaiting_eval_payment'")).toHaveLength(3);
    }
  });

  it('refuses at the total cap when every open invoice is for work whose evaluation was paid', async () => {
    for (const who of ['b', 'c', 'd']) {
      const r = await submitted(newJob({ customerPubkey: who.repeat(64) }));
      await h.pay(r.invoice!.paymentHash);
      expect((await h.core.runner.settled(r.job.id))!.state).toBe('awaiting_work_payment');
    }
    const late = await h.core.jobs.submit(newJob({ customerPubkey: 'e'.repeat(64) }));
    expect(late.status === 'refused' && late.refusal.message).toBe('rate-limited: too many unpaid jobs are open, try again later');
    expect((await h.core.book.openCount('job'))).toBe(3);
  });

  it('demands NIP-13 proof of work from Nostr requests once open unpaid jobs reach the threshold', async () => {
    // Threshold: 50 % of MAX_OPEN_UNPAID_TOTAL (3) = 2 open unpaid jobs.
    await submitted(newJob({ customerPubkey: 'b'.repeat(64) }));
    expect((await h.core.jobs.powRequired())).toBe(0);
    await submitted(newJob({ customerPubkey: 'c'.repeat(64) }));
    expect((await h.core.jobs.powRequired())).toBe(16);
    const weak = await h.core.jobs.submit(newJob({ customerPubkey: 'd'.repeat(64) }), { powBits: 15 });
    expect(weak.status === 'refused' && weak.refusal.code).toBe('pow-required');
    expect(weak.status === 'refused' && weak.refusal.message).toMatch(/^pow-required: difficulty 16\b/);
    const strong = await h.core.jobs.submit(newJob({ customerPubkey: 'd'.repeat(64) }), { powBits: 17 });
    expect(strong.status).toBe('created');
    // A NIP-09 cancellation withdraws the invoice: it no longer counts as open work.
    expect((await h.core.book.openCount('job'))).toBe(3);
    expect((await h.core.jobs.cancel(strong.status === 'created' ? strong.job.id : '', 'd'.repeat(64)))).toBe(true);
    expect((await h.core.book.openCount('job'))).toBe(2);
  });

  it('refuses a bid below the price with bid-too-low and issues no invoice', async () => {
    const job = newJob({ bidMsats: 1000 });
    const r = await h.core.jobs.submit(job);
    expect(r.status === 'refused' && r.refusal.code).toBe('bid-too-low');
    expect((await h.core.book.of('job', job.id))).toEqual([]);
    const [row] = (await h.intents(job.id));
    expect(row!.intent).toMatchObject({ type: 'feedback', status: 'error', label: 'bid too low' });
  });

  it('a failure after payment is credited; the credit pays the next eval fee, once, even for concurrent requests', async () => {
    const alice = 'e'.repeat(64);
    const r = await submitted(newJob({ customerPubkey: alice }));
    h.agent.onEvaluate = async () => {
      throw new Error('model overloaded');
    };
    await h.pay(r.invoice!.paymentHash);
    const failed = (await h.core.runner.settled(r.job.id))!;
    expect(failed.state).toBe('failed');
    expect((await h.store.credits.creditBalanceMsats(alice))).toBe(10_000);
    h.agent.onEvaluate = null;
    // Two requests at once: only one may spend the 10 sats of credit.
    const [a, b] = await Promise.all([h.core.jobs.submit(newJob({ customerPubkey: alice })), h.core.jobs.submit(newJob({ customerPubkey: alice }))]);
    if (a.status !== 'created' || b.status !== 'created') throw new Error('not created');
    expect([a.invoice, b.invoice].filter((i) => i === null)).toHaveLength(1);
    expect((await h.store.credits.creditBalanceMsats(alice))).toBe(0);
  });

  it('an empty answer refunds the work payment less the input the model read', async () => {
    const alice = '7'.repeat(64);
    const r = await submitted(newJob({ customerPubkey: alice }));
    await h.pay(r.invoice!.paymentHash);
    const quoted = (await h.core.runner.settled(r.job.id))!;
    h.agent.onWork = async () => ({ text: '', usage: { model: 'claude-sonnet-4-6', inputTokens: 1000, outputTokens: 0 } });
    await h.pay(quoted.workPaymentHash!);
    const failed = (await h.core.runner.settled(r.job.id))!;
    expect(failed.state).toBe('failed');
    const inputSats = Math.ceil(((1000 * 3) / 1e6 + 20 / 10_000) * 1.2 * 1e8 / 100_000);
    expect((await h.store.credits.creditBalanceMsats(alice))).toBe((quoted.pricing!.amountSats - inputSats) * 1000);
    const error = (await h.intents(r.job.id)).at(-1)!.intent;
    expect(error).toMatchObject({ status: 'error', label: 'work failed' });
    expect((error as { message: string }).message).toContain(`${inputSats} sats kept for the 1000 input tokens it read`);
  });

  it('a customer whose credit covers everything never waits on an invoice: one move per paid stage', async () => {
    const rich = '8'.repeat(64);
    await h.exec("insert into credits (account, delta_msats, reason, ref, created_at) values (?, 10000000, 'test', 'seed-rich', 0)", rich);
    const r = await submitted(newJob({ customerPubkey: rich }));
    expect(r.invoice).toBeNull();
    expect(r.job.state).toBe('evaluating'); // created evaluating: nothing could strand it in awaiting_eval_payment
    const done = (await h.core.runner.settled(r.job.id))!;
    const final = done.state === 'complete' ? done : (await h.core.runner.settled(r.job.id))!;
    expect(final.state).toBe('complete');
    expect((await h.core.book.of('job', r.job.id))).toEqual([]);
    expect((await h.intents(r.job.id)).map((o) => (o.intent.type === 'feedback' ? o.intent.status : o.intent.type))).toEqual(['processing', 'processing', 'result', 'success']);
  });

  it('requests never served are purged after RETENTION_DAYS with their events; served ones and the money stay', async () => {
    const refused = newJob({ bidMsats: 1 }); // refused at intake
    await h.core.jobs.submit(refused);
    const expired = await submitted();
    await h.core.book.expireDue(expired.invoice!.expiresAt + 1);
    const paid = await submitted();
    await h.pay(paid.invoice!.paymentHash);
    await h.core.runner.settled(paid.job.id);
    expect((await h.core.jobs.get(expired.job.id))!.state).toBe('expired');
    const intentsBefore = (await h.intents(refused.id)).length + (await h.intents(expired.job.id)).length;
    expect(intentsBefore).toBeGreaterThan(0);
    expect((await h.core.jobs.purgeUnserved(Date.now()))).toBe(0); // not old enough
    expect((await h.core.jobs.purgeUnserved(Date.now() + 31 * 86_400_000))).toBe(2);
    expect((await h.core.jobs.get(refused.id))).toBeUndefined();
    expect((await h.core.jobs.get(expired.job.id))).toBeUndefined();
    expect((await h.intents(refused.id))).toEqual([]);
    expect((await h.intents(expired.job.id))).toEqual([]);
    expect((await h.core.jobs.get(paid.job.id))!.state).toBe('awaiting_work_payment'); // served: kept
    expect((await h.core.book.get(expired.invoice!.paymentHash))!.status).toBe('expired'); // the money record stays
  });

  it('cancellation returns credit applied to the dead invoice', async () => {
    const alice = 'f'.repeat(64);
    await h.exec("insert into credits (account, delta_msats, reason, ref, created_at) values (?, 4000, 'test', 'seed', 0)", alice);
    const job = newJob({ customerPubkey: alice });
    const r = await submitted(job);
    expect(r.invoice!.amountMsats).toBe(6000); // 10 sats less 4 of credit
    expect((await h.store.credits.creditBalanceMsats(alice))).toBe(0);
    expect((await h.core.jobs.cancel(job.id, alice))).toBe(true);
    expect((await h.core.jobs.cancel(job.id, alice))).toBe(false);
    expect((await h.store.credits.creditBalanceMsats(alice))).toBe(4000);
  });
});
