// The invoice book in process: one settlement path for every subject, exactly once; one late-payment rule;
// one policy for an unreachable backend.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, newJob, type CoreHarness } from '../helpers/core.ts';
import { InvoiceBook } from '../../src/core/book.ts';
import { systemClock } from '../../src/core/ports.ts';
import { createLogger } from '../../src/log.ts';

const silent = createLogger('silent');

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness();
});
afterEach(() => h.close());

const openRows = async (kind: string) => Number((await h.exec("select count(*) n from invoice_book where status = 'open' and subject_kind = ?", kind))[0]!.n);

describe('invoice book', () => {
  it('moves a job once however often its payment is reported, and keeps the open counter with the rows', async () => {
    const r = await h.core.jobs.submit(newJob());
    if (r.status !== 'created') throw new Error(r.status);
    expect((await h.store.invoices.openInvoiceCount('job'))).toBe(1);
    const hash = r.invoice!.paymentHash;
    await Promise.all([h.pay(hash), h.core.book.settle(hash), h.core.book.settle(hash)]);
    await h.core.runner.settled(r.job.id);
    expect((await h.core.jobs.get(r.job.id))!.state).toBe('awaiting_work_payment');
    expect((await h.intents(r.job.id)).filter((o) => o.intent.type === 'feedback' && o.intent.status === 'processing')).toHaveLength(1);
    expect((await h.core.book.get(hash))!.status).toBe('paid');
    expect((await h.store.invoices.openInvoiceCount('job'))).toBe(await openRows('job')); // the work invoice
    expect(await openRows('job')).toBe(1);
  });

  it('credits money that arrives after the subject stopped waiting, once, to the payer', async () => {
    const job = newJob();
    const r = await h.core.jobs.submit(job);
    if (r.status !== 'created') throw new Error(r.status);
    expect((await h.core.jobs.cancel(job.id, job.customerPubkey!))).toBe(true);
    // The invoice is withdrawn (no longer open work) yet stays payable and followed until it runs out:
    // money that still arrives is credited.
    expect((await h.core.book.get(r.invoice!.paymentHash))!.status).toBe('withdrawn');
    expect((await h.store.invoices.openInvoiceCount('job'))).toBe(0);
    await h.pay(r.invoice!.paymentHash);
    await h.core.book.settle(r.invoice!.paymentHash);
    expect((await h.store.credits.creditBalanceMsats(job.customerPubkey!))).toBe(r.invoice!.amountMsats);
    expect((await h.intents(job.id)).filter((o) => o.intent.type === 'feedback' && o.intent.status === 'error' && o.intent.label === 'credited')).toHaveLength(1);
    // An anonymous payer is credited on the subject's own account.
    const anon = newJob({ source: 'http', customerPubkey: null, clientAddress: '192.0.2.1' });
    const a = await h.core.jobs.submit(anon);
    if (a.status !== 'created') throw new Error(a.status);
    expect((await h.core.book.get(a.invoice!.paymentHash))!.account).toBe(`job:${anon.id}`);
  });

  it('a withdrawn invoice is followed until it runs out, then expires without moving its subject', async () => {
    const job = newJob();
    const r = await h.core.jobs.submit(job);
    if (r.status !== 'created') throw new Error(r.status);
    expect((await h.core.jobs.cancel(job.id, job.customerPubkey!))).toBe(true);
    const watched: string[] = [];
    const watch = h.backends.payments.watch?.bind(h.backends.payments);
    h.backends.payments.watch = (hash: string, expiresAt: number) => (watched.push(hash), watch?.(hash, expiresAt));
    await h.core.book.resume();
    expect(watched).toContain(r.invoice!.paymentHash);
    await h.core.book.expireDue(r.invoice!.expiresAt + 1);
    expect((await h.core.book.get(r.invoice!.paymentHash))!.status).toBe('expired');
    expect((await h.core.jobs.get(job.id))!.state).toBe('cancelled');
    expect((await h.store.credits.creditBalanceMsats(job.customerPubkey!))).toBe(0);
  });

  it('never expires an invoice the backend cannot be asked about; expires it once the backend answers', async () => {
    const r = await h.core.jobs.submit(newJob());
    if (r.status !== 'created') throw new Error(r.status);
    const later = r.invoice!.expiresAt + 1;
    const isPaid = h.backends.payments.isPaid.bind(h.backends.payments);
    h.backends.payments.isPaid = async () => {
      throw new Error('backend unreachable');
    };
    await h.core.book.expireDue(later);
    expect((await h.core.jobs.get(r.job.id))!.state).toBe('awaiting_eval_payment');
    expect((await h.core.book.get(r.invoice!.paymentHash))!.status).toBe('open');
    h.backends.payments.isPaid = isPaid;
    await h.core.book.expireDue(later);
    expect((await h.core.jobs.get(r.job.id))!.state).toBe('expired');
    expect((await h.core.book.get(r.invoice!.paymentHash))!.status).toBe('expired');
    expect((await h.store.invoices.openInvoiceCount('job'))).toBe(0);
  });

  it('settles at expiry an invoice that was paid while no report arrived', async () => {
    const r = await h.core.jobs.submit(newJob());
    if (r.status !== 'created') throw new Error(r.status);
    h.backends.stubPayments.onSettled(() => {}); // the push path is down
    await h.backends.stubPayments.pay(r.invoice!.paymentHash);
    await h.core.book.expireDue(r.invoice!.expiresAt + 1);
    await h.core.runner.settled(r.job.id);
    expect((await h.core.jobs.get(r.job.id))!.state).toBe('awaiting_work_payment');
  });

  it('one invoice that cannot be handled does not stop the others from expiring', async () => {
    await h.exec("insert into invoice_book (payment_hash, subject_kind, subject_id, purpose, account, amount_msats, bolt11, status, expires_at, created_at) values (?, 'zap', 'x', 'eval', 'a', 1, 'lnbcrt1', 'open', 1, 0)", '0'.repeat(64));
    const r = await h.core.jobs.submit(newJob());
    if (r.status !== 'created') throw new Error(r.status);
    await h.core.book.expireDue(r.invoice!.expiresAt + 1);
    expect((await h.core.jobs.get(r.job.id))!.state).toBe('expired');
  });

  it('recounts its open-invoice counters from the rows when it opens', async () => {
    await h.core.jobs.submit(newJob());
    await h.exec("update counters set value = 999 where name = 'open_invoices:job'");
    await new InvoiceBook({ store: h.store, payments: h.backends.payments, publisher: { wake() {} }, clock: systemClock, log: silent, invoiceExpirySecs: 600 }).start();
    expect((await h.store.invoices.openInvoiceCount('job'))).toBe(1);
  });

  it('after a restart asks about every open invoice once and settles the paid ones', async () => {
    const a = await h.core.jobs.submit(newJob());
    const b = await h.core.jobs.submit(newJob());
    if (a.status !== 'created' || b.status !== 'created') throw new Error('not created');
    h.backends.stubPayments.onSettled(() => {});
    await h.backends.stubPayments.pay(a.invoice!.paymentHash);
    await h.core.book.resume();
    await h.core.runner.settled(a.job.id);
    expect((await h.core.jobs.get(a.job.id))!.state).toBe('awaiting_work_payment');
    expect((await h.core.jobs.get(b.job.id))!.state).toBe('awaiting_eval_payment');
  });
});
