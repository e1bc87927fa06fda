// Sessions in process: deposits and top-ups through the invoice book, reserve -> debit actual cost, unpaid
// sessions purged with their invoice, typed refusals.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, newJob, type CoreHarness } from '../helpers/core.ts';
import { Refusal } from '../../src/core/refusal.ts';
import { estimatePromptTokens, estimateTokens } from '../../src/pricing/pricing.ts';

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness();
});
afterEach(() => h.close());

describe('sessions', () => {
  it('a deposit activates once; a top-up reported twice credits once; a request is debited its actual cost', async () => {
    const s = await h.core.sessions.create({ amountSats: 1000, clientAddress: '192.0.2.7', origin: 'http' });
    expect((await h.core.sessions.view(s.sessionId))!.state).toBe('awaiting_deposit');
    await h.pay(s.invoice.paymentHash);
    await h.pay(s.invoice.paymentHash);
    expect((await h.core.sessions.view(s.sessionId))).toMatchObject({ state: 'active', balanceSats: 1000 });
    const top = await h.core.sessions.topup(s.sessionId, 500);
    await Promise.all([h.pay(top.invoice.paymentHash), h.core.book.settle(top.invoice.paymentHash)]);
    expect((await h.store.sessions.balanceMsats(s.sessionId))).toBe(1_500_000);
    const r = await h.core.sessions.run(newJob({ source: 'http', customerPubkey: null }), s.sessionId, null);
    if (r.status !== 'done') throw new Error(r.status);
    expect(r.balanceMsats).toBe(1_500_000 - r.job.costLedger!.chargedSats * 1000);
    expect(r.job.costLedger!.chargedSats).toBeLessThanOrEqual(r.job.pricing!.amountSats);
  });

  it('an empty answer is not free: the input the model read is debited, the rest of the reservation released', async () => {
    const s = await h.core.sessions.create({ amountSats: 1000, clientAddress: null, origin: 'http' });
    await h.pay(s.invoice.paymentHash);
    h.agent.onWork = async () => ({ text: '  \n ', usage: { model: 'claude-sonnet-4-6', inputTokens: 19_000, outputTokens: 3 } });
    const r = await h.core.sessions.run(newJob({ source: 'http', customerPubkey: null, input: 'x'.repeat(19_000 * 4) }), s.sessionId, null);
    if (r.status !== 'failed') throw new Error(r.status);
    // 19,000 tokens at 3 USD/Mtok plus infra, with margin, at 100,000 USD/BTC, rounded up.
    const expectedSats = Math.ceil(((19_000 * 3) / 1e6 + 20 / 10_000) * 1.2 * 1e8 / 100_000);
    expect(r.debitedMsats).toBe(expectedSats * 1000);
    expect((await h.store.sessions.balanceMsats(s.sessionId))).toBe(1_000_000 - expectedSats * 1000);
  });

  it('no top-up before the deposit is paid, and at most MAX_OPEN_UNPAID_PER_CLIENT open at once', async () => {
    const s = await h.core.sessions.create({ amountSats: 10, clientAddress: null, origin: 'http' });
    await expect(h.core.sessions.topup(s.sessionId, 1_000_000)).rejects.toMatchObject({ code: 'conflict' });
    await h.pay(s.invoice.paymentHash);
    const open = [];
    for (let i = 0; i < 5; i++) open.push(await h.core.sessions.topup(s.sessionId, 1_000_000));
    await expect(h.core.sessions.topup(s.sessionId, 1_000_000)).rejects.toMatchObject({ code: 'rate-limited' });
    await h.pay(open[0]!.invoice.paymentHash); // one paid: room for one more
    await h.core.sessions.topup(s.sessionId, 1);
    expect((await h.core.book.of('session', s.sessionId)).filter((i) => i.status === 'open')).toHaveLength(5);
  });

  it('refuses with typed codes: caveat, unknown session, closed session', async () => {
    const s = await h.core.sessions.create({ amountSats: 1000, clientAddress: null, origin: 'http' });
    await h.pay(s.invoice.paymentHash);
    await expect(h.core.sessions.run(newJob({ source: 'http' }), s.sessionId, 0)).rejects.toMatchObject({ code: 'caveat' });
    await expect(h.core.sessions.topup('0'.repeat(32), 10)).rejects.toMatchObject({ code: 'not-found' });
    await h.core.sessions.close(s.sessionId);
    const closed = h.core.sessions.topup(s.sessionId, 10);
    await expect(closed).rejects.toBeInstanceOf(Refusal);
    await expect(closed).rejects.toMatchObject({ code: 'conflict' });
  });

  it('an unpaid session is purged when its deposit invoice expires; paying afterwards is credited, not lost', async () => {
    const s = await h.core.sessions.create({ amountSats: 50, pubkey: '9'.repeat(64), clientAddress: null, origin: 'http' });
    await h.core.book.expireDue(s.invoice.expiresAt + 1);
    expect((await h.store.sessions.getSession(s.sessionId))).toBeUndefined();
    expect((await h.core.book.get(s.invoice.paymentHash))!.status).toBe('expired');
    // A real backend may still report it paid (the stub wallet refuses expired invoices, so mark it there).
    await h.exec('update stub_invoices set paid_at = ? where payment_hash = ?', Date.now(), s.invoice.paymentHash);
    await h.core.book.settle(s.invoice.paymentHash);
    await h.core.book.settle(s.invoice.paymentHash);
    expect((await h.store.credits.creditBalanceMsats('9'.repeat(64)))).toBe(50_000);
  });
});

describe('streamed session requests (the stub agent)', () => {
  it('a conversation streams word by word into the live hooks; the result is the text streamed, debited once', async () => {
    const s = await h.core.sessions.create({ amountSats: 1000, clientAddress: null, origin: 'http' });
    await h.pay(s.invoice.paymentHash);
    const pieces: string[] = [];
    const chat = { system: 'Be brief.', turns: [{ role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: 'hello' }, { role: 'user' as const, content: 'and now?' }] };
    const req = newJob({ source: 'http', customerPubkey: null, input: 'and now?', params: { chat } });
    const opened = await h.core.sessions.open(req, s.sessionId, null, { onText: (d) => pieces.push(d) });
    expect(opened.status).toBe('created');
    const r = await h.core.sessions.outcome(req.id, s.sessionId);
    if (r.status !== 'done') throw new Error(r.status);
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe(r.job.result);
    expect(r.job.result).toContain('You asked: "and now?"');
    expect(h.agent.streamCalls).toBe(1);
    // The reservation priced every turn and the customer's system prompt (the conservative estimate).
    expect(r.job.pricing!.estimatedInputTokens).toBe(estimatePromptTokens(chat));
    expect((await h.store.sessions.balanceMsats(s.sessionId))).toBe(1_000_000 - r.job.costLedger!.chargedSats * 1000);
  });

  it('a caller that stops the stream is charged what was generated, and only that', async () => {
    const s = await h.core.sessions.create({ amountSats: 1000, clientAddress: null, origin: 'http' });
    await h.pay(s.invoice.paymentHash);
    const stop = new AbortController();
    let text = '';
    const req = newJob({ source: 'http', customerPubkey: null, input: 'Explain Lightning invoices in two sentences.', params: { chat: { turns: [{ role: 'user', content: 'Explain Lightning invoices in two sentences.' }] } } });
    await h.core.sessions.open(req, s.sessionId, null, {
      onText: (d) => {
        text += d;
        if (text.split(' ').length > 3) stop.abort();
      },
      signal: stop.signal,
    });
    const r = await h.core.sessions.outcome(req.id, s.sessionId);
    if (r.status !== 'done') throw new Error(r.status);
    expect(r.job.result).toBe(text);
    expect(r.job.costLedger!.actualOutputTokens).toBe(estimateTokens(text));
    const entries = (await h.core.sessions.ledger(s.sessionId)).filter((e) => e.jobId === req.id);
    const reserved = -entries.find((e) => e.kind === 'reserve')!.amountMsats;
    const debit = -entries.find((e) => e.kind === 'debit')!.amountMsats;
    expect(debit).toBe(r.job.costLedger!.chargedSats * 1000);
    expect(debit).toBeLessThan(reserved);
    expect(entries.find((e) => e.kind === 'release')!.amountMsats).toBe(reserved);
    expect((await h.store.sessions.balanceMsats(s.sessionId))).toBe(1_000_000 - debit);
  });
});
