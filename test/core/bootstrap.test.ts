// Node orders in process: the order's invoice in the book, provisioning on the stub, failures credited.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, type CoreHarness } from '../helpers/core.ts';
import { waitFor } from '../helpers/wait.ts';

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness();
});
afterEach(() => h.close());

const order = (id: string, over: Partial<Parameters<CoreHarness['core']['bootstrap']['submit']>[0]> = {}) =>
  h.core.bootstrap.submit({ id, source: 'http', customerPubkey: null, clientAddress: '192.0.2.9', requestJson: null, relays: [], ...over });

describe('node orders', () => {
  it('paid -> provisioning -> ready; the claim hands the credentials over once', async () => {
    const r = await order('1'.repeat(32));
    if (r.status !== 'created') throw new Error(r.status);
    expect((await h.core.bootstrap.invoice(r.job.id))).toMatchObject({ subjectKind: 'bootstrap', purpose: 'order', account: `bootstrap:${r.job.id}`, status: 'open' });
    await h.pay(r.invoice.paymentHash);
    await waitFor(async () => (await h.store.bootstrap.getBootstrap(r.job.id))?.state === 'ready', 'ready');
    const claim = (await h.core.bootstrap.claim(r.job.id, r.claimToken!));
    expect(claim.status).toBe('ok');
    expect((await h.core.bootstrap.claim(r.job.id, r.claimToken!)).status).toBe('gone');
  });

  it('refuses unknown sizes and bad regions with invalid; caps unpaid orders per address with rate-limited', async () => {
    await expect(order('2'.repeat(32), { size: 'huge' })).rejects.toMatchObject({ code: 'invalid' });
    await expect(order('3'.repeat(32), { region: 'Mars!' })).rejects.toMatchObject({ code: 'invalid' });
    await expect(order('4'.repeat(32), { sshKey: 'not a key' })).rejects.toMatchObject({ code: 'invalid' });
    for (let i = 0; i < 5; i++) await order(String(i).repeat(31) + 'a');
    await expect(order('f'.repeat(32))).rejects.toMatchObject({ code: 'rate-limited' });
  });

  it('an order whose invoice expires is expired; money arriving later is credited to the order account', async () => {
    const r = await order('5'.repeat(32));
    if (r.status !== 'created') throw new Error(r.status);
    await h.core.book.expireDue(r.invoice.expiresAt + 1);
    expect((await h.store.bootstrap.getBootstrap(r.job.id))!.state).toBe('expired');
    // The stub wallet refuses expired invoices, so the late report is what a real backend would push.
    await h.exec('update stub_invoices set paid_at = ? where payment_hash = ?', Date.now(), r.invoice.paymentHash);
    await h.core.book.settle(r.invoice.paymentHash);
    await h.core.book.settle(r.invoice.paymentHash);
    expect((await h.store.credits.creditBalanceMsats(`bootstrap:${r.job.id}`))).toBe(r.invoice.amountMsats);
  });
});
