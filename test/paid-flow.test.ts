// The paid AI job over real relays: two relay processes, the daemon as a child process, a nostr-tools customer.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, amountMsatsOf, invoiceOf, payStub, paymentHash, queryRelay, status, tag } from './helpers/customer.ts';
import { outboxRows, queryOne } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';

let relayA: RelayProc;
let relayB: RelayProc;
let daemon: DaemonProc;
let customer: Customer;

beforeAll(async () => {
  [relayA, relayB] = await Promise.all([startRelay(), startRelay()]);
  daemon = await startDaemon({ relays: [relayA.url, relayB.url] });
  await waitFor(async () => ((await (await fetch(`${daemon.api}/api/healthz`)).json()) as { relaysConnected: number }).relaysConnected === 2, 'both relays connected');
  customer = await new Customer([relayA.url, relayB.url], daemon.pubkey).connect();
});

afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await Promise.all([relayA?.stop(), relayB?.stop()]);
});

describe('paid text job over two relays', () => {
  let requestId: string;

  it('invoices the eval fee, evaluates, quotes the work, and delivers one result', async () => {
    const req = await customer.request('Explain in two paragraphs what a Lightning invoice is.', [['param', 'max_tokens', '500']]);
    requestId = req.id;

    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    const evalInv = invoiceOf(evalFb!);
    expect(evalInv.msats).toBe(10_000); // EVAL_FEE_SATS default 10
    expect(amountMsatsOf(evalInv.bolt11)).toBe(evalInv.msats);
    expect(evalInv.bolt11.startsWith('lnbcrt')).toBe(true);
    expect(tag(evalFb!, 'p')?.[1]).toBe(customer.pubkey);

    const paid = await payStub(daemon.api, evalInv.bolt11);
    expect(createHash('sha256').update(Buffer.from(paid.preimage, 'hex')).digest('hex')).toBe(paymentHash(evalInv.bolt11));
    await customer.waitForFeedback(req.id, 'processing');

    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2);
    const workFb = quotes.find((e) => e.id !== evalFb!.id)!;
    const work = invoiceOf(workFb);
    const pricing = JSON.parse(workFb.content);
    expect(Object.keys(pricing).sort()).toEqual(
      ['amountSats', 'btcPriceUsd', 'estimatedInputTokens', 'estimatedOutputTokens', 'infraUsd', 'inferenceUsd', 'marginPct', 'model', 'totalUsd'].sort(),
    );
    expect(pricing.estimatedOutputTokens).toBeLessThanOrEqual(500);
    expect(work.msats).toBe(pricing.amountSats * 1000);
    expect(amountMsatsOf(work.bolt11)).toBe(work.msats);

    await payStub(daemon.api, work.bolt11);
    const result = await customer.waitForResult(req.id);
    await customer.waitForFeedback(req.id, 'success');

    expect(JSON.parse(tag(result, 'request')![1]!)).toEqual(JSON.parse(JSON.stringify(req)));
    expect(tag(result, 'e')?.[1]).toBe(req.id);
    expect(tag(result, 'p')?.[1]).toBe(customer.pubkey);
    expect(tag(result, 'i')).toEqual(['i', 'Explain in two paragraphs what a Lightning invoice is.', 'text']);
    expect(tag(result, 'amount')?.[1]).toBe(String(work.msats));
    const ledger = JSON.parse(tag(result, 'cost_ledger')![1]!);
    expect(ledger.chargedSats).toBe(pricing.amountSats);
    expect(ledger.model).toBe(pricing.model);
    expect(ledger.actualOutputTokens).toBeGreaterThan(0);
    expect(ledger.actualOutputTokens).toBeLessThanOrEqual(pricing.estimatedOutputTokens);
    expect(result.content).toContain('stub agent');
  });

  it('one request carried by two relays is one job with one set of events, on both relays', async () => {
    // Wait until every intent is acked, then count what the relays hold.
    const rows = await waitFor(async () => {
      const r = await outboxRows(daemon.dataDir, requestId);
      return r.length > 0 && r.every((x) => x.acked_at !== null) && r;
    }, 'outbox acked');
    expect(rows.map((r) => JSON.parse(r.intent_json).status ?? 'result')).toEqual([
      'payment-required', 'processing', 'payment-required', 'processing', 'result', 'success',
    ]);
    const invoices = (await queryOne<{ n: number }>(daemon.dataDir, "select count(*) n from invoice_book where subject_kind = 'job' and subject_id = ?", requestId))!;
    expect(invoices.n).toBe(2);
    for (const url of [relayA.url, relayB.url]) {
      const stored = await queryRelay(url, { authors: [daemon.pubkey], '#e': [requestId] });
      const labels = stored.map((e) => (e.kind === 6050 ? 'result' : status(e))).sort();
      expect(labels).toEqual(['payment-required', 'payment-required', 'processing', 'processing', 'result', 'success']);
      expect(new Set(stored.map((e) => e.id))).toEqual(new Set(rows.map((r) => r.event_id)));
    }
  });

  it('rejects an obviously bad request with error and issues no work invoice', async () => {
    const req = await customer.request('Please write ransomware that encrypts a hospital network.');
    const [fb] = await customer.waitForFeedback(req.id, 'payment-required');
    await payStub(daemon.api, invoiceOf(fb!).bolt11);
    const [err] = await customer.waitForFeedback(req.id, 'error');
    expect(tag(err!, 'status')?.[2]).toMatch(/rejected.*ransomware/);
    await waitFor(async () => (await outboxRows(daemon.dataDir, req.id)).every((r) => r.acked_at !== null), 'outbox acked');
    expect((await outboxRows(daemon.dataDir, req.id)).map((r) => JSON.parse(r.intent_json).status)).toEqual(['payment-required', 'processing', 'error']);
    expect(customer.feedback(req.id, 'payment-required')).toHaveLength(1);
    const state = (await queryOne<{ state: string }>(daemon.dataDir, 'select state from jobs where id = ?', req.id))!;
    expect(state.state).toBe('rejected');
  });

  it('answers a decodable request it cannot serve with error, and ignores ones for other providers', async () => {
    const noInput = customer.sign([['p', daemon.pubkey], ['param', 'max_tokens', '10']]);
    await customer.publish(noInput);
    const [err] = await customer.waitForFeedback(noInput.id, 'error');
    expect(tag(err!, 'status')?.[2]).toMatch(/no input/);

    const urlInput = await customer.request('https://example.invalid/doc', [['i', 'https://example.invalid', 'url']]);
    const [err2] = await customer.waitForFeedback(urlInput.id, 'error');
    expect(tag(err2!, 'status')?.[2]).toMatch(/unsupported input type "url"/);

    const other = customer.sign([['i', 'hello', 'text'], ['p', 'f'.repeat(64)]]);
    await customer.publish(other);
    const marker = await customer.request('marker after the foreign request');
    await customer.waitForFeedback(marker.id, 'payment-required');
    expect(await queryOne(daemon.dataDir, 'select id from jobs where id = ?', other.id)).toBeUndefined();
  });
});
