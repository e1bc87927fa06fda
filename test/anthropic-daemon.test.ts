// The daemon with the real Anthropic client against the local Messages fake: cost ledger from real usage,
// retries on 529, and a model outage after payment ending in `failed` with the money credited.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, tag } from './helpers/customer.ts';
import { jobRow, readDb } from './helpers/store.ts';
import { startFakeAnthropic, fakeTokens, defaultResponder, FAKE_API_KEY, type FakeAnthropic } from './fakes/anthropic.ts';

let relay: RelayProc;
let fake: FakeAnthropic;
let daemon: DaemonProc;
let customer: Customer;

beforeAll(async () => {
  [relay, fake] = await Promise.all([startRelay(), startFakeAnthropic()]);
  daemon = await startDaemon({
    relays: [relay.url],
    env: { ANTHROPIC_API_KEY: FAKE_API_KEY, ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_MAX_RETRIES: '2', ANTHROPIC_TIMEOUT_S: '2' },
  });
  customer = await new Customer([relay.url], daemon.pubkey).connect();
});
afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await Promise.all([relay?.stop(), fake?.close()]);
});
beforeEach(() => fake.reset());

async function payEvalAndGetQuote(c: Customer, prompt: string) {
  const req = await c.request(prompt);
  const [evalFb] = await c.waitForFeedback(req.id, 'payment-required');
  await payStub(daemon.api, invoiceOf(evalFb!).bolt11);
  const quotes = await c.waitForFeedback(req.id, 'payment-required', 2);
  return { req, work: quotes.find((e) => e.id !== evalFb!.id)! };
}

describe('Anthropic backend', () => {
  it('prices the result from the real usage: tokens x rates + infra, x margin', async () => {
    const { req, work } = await payEvalAndGetQuote(customer, 'What is a payment channel?');
    const pricing = JSON.parse(work.content);
    await payStub(daemon.api, invoiceOf(work).bolt11);
    const result = await customer.waitForResult(req.id);

    const workCall = fake.requests.find((r) => r.maxTokens === pricing.estimatedOutputTokens)!;
    expect(workCall.model).toBe('claude-sonnet-4-6');
    const answer = defaultResponder(workCall);
    expect(result.content).toBe(answer);
    const ledger = JSON.parse(tag(result, 'cost_ledger')![1]!);
    const inTok = Math.max(1, fakeTokens(workCall.system) + fakeTokens(workCall.userText));
    const outTok = fakeTokens(answer);
    expect(ledger.actualInputTokens).toBe(inTok);
    expect(ledger.actualOutputTokens).toBe(outTok);
    // Defaults: $3 / $15 per Mtok, $20 / 10,000 requests infra, 20 % margin.
    expect(ledger.actualCostUsd).toBeCloseTo(((inTok * 3 + outTok * 15) / 1e6 + 20 / 10_000) * 1.2, 12);
    expect(ledger.chargedSats).toBe(pricing.amountSats);
    expect(ledger.actualCostUsd).toBeLessThanOrEqual(pricing.totalUsd);
  });

  it('quotes CJK text on the tokens the API counts, asked only after the evaluation was paid', async () => {
    const cjk = '閃電網絡'.repeat(3998) + '比特幣'; // 15,995 characters: ÷ 4 would have said ~4,000 tokens
    const req = await customer.request(cjk);
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    expect(fake.counts).toHaveLength(0); // an unpaid request never reaches the API
    await payStub(daemon.api, invoiceOf(evalFb!).bolt11);
    const work = (await customer.waitForFeedback(req.id, 'payment-required', 2)).find((e) => e.id !== evalFb!.id)!;
    const pricing = JSON.parse(work.content);
    expect(fake.counts).toHaveLength(1);
    expect(fake.counts[0]!.userText).toBe(cjk);
    const counted = fakeTokens(fake.counts[0]!.system) + fakeTokens(cjk);
    expect(pricing.estimatedInputTokens).toBe(counted);
    await payStub(daemon.api, invoiceOf(work).bolt11);
    const result = await customer.waitForResult(req.id);
    expect(JSON.parse(tag(result, 'cost_ledger')![1]!).actualInputTokens).toBe(counted); // the quote was exact
  });

  it('quotes on the conservative estimate when the count fails', async () => {
    fake.failNextCount(500, 'api_error', 'Internal server error', 10);
    const cjk = '比特幣'.repeat(1000);
    const { req, work } = await payEvalAndGetQuote(customer, cjk);
    expect(fake.counts.length).toBeGreaterThan(0);
    const pricing = JSON.parse(work.content);
    await payStub(daemon.api, invoiceOf(work).bolt11);
    const result = await customer.waitForResult(req.id);
    const ledger = JSON.parse(tag(result, 'cost_ledger')![1]!);
    expect(pricing.estimatedInputTokens).toBeGreaterThanOrEqual(ledger.actualInputTokens);
  });

  it('529 then success: served once', async () => {
    const { req, work } = await payEvalAndGetQuote(customer, 'Name one Lightning implementation.');
    fake.failNext(529, 'overloaded_error', 'Overloaded', 1, { headers: { 'retry-after-ms': '10' } });
    await payStub(daemon.api, invoiceOf(work).bolt11);
    await customer.waitForResult(req.id);
    await customer.waitForFeedback(req.id, 'success');
    const workCalls = fake.requests.filter((r) => r.maxTokens === JSON.parse(work.content).estimatedOutputTokens);
    expect(workCalls.map((r) => r.status)).toEqual([529, 200]);
    expect(customer.results(req.id)).toHaveLength(1);
  });

  it('down after payment: failed, the work price credited, and the next request spends it', async () => {
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const { req, work } = await payEvalAndGetQuote(c, 'Summarise the Bitcoin whitepaper.');
      const workMsats = invoiceOf(work).msats;
      fake.failNext(500, 'api_error', 'Internal server error', Infinity, { headers: { 'retry-after-ms': '10' } });
      await payStub(daemon.api, invoiceOf(work).bolt11);
      const [err] = await c.waitForFeedback(req.id, 'error');
      expect(tag(err!, 'status')?.[2]).toMatch(/work failed: .*api_error.*credited to your pubkey/);
      expect(tag(err!, 'status')?.[2]).not.toContain(FAKE_API_KEY);
      expect((await jobRow(daemon.dataDir, req.id))?.state).toBe('failed');
      const credit = () =>
        readDb(daemon.dataDir, (db) => (db.prepare('select coalesce(sum(delta_msats),0) s from credits where account = ?').get(c.pubkey) as { s: number }).s);
      expect(credit()).toBe(workMsats);
      expect(c.results(req.id)).toHaveLength(0);

      fake.reset();
      const next = await c.request('Try again please.');
      const evalFeeMsats = 10_000;
      if (workMsats >= evalFeeMsats) {
        await c.waitForFeedback(next.id, 'processing');
        expect(c.feedback(next.id, 'payment-required')).toHaveLength(0);
      } else {
        const [fb] = await c.waitForFeedback(next.id, 'payment-required');
        expect(invoiceOf(fb!).msats).toBe(evalFeeMsats - workMsats);
      }
      expect(credit()).toBe(Math.max(0, workMsats - evalFeeMsats));
    } finally {
      c.close();
    }
  });
});
