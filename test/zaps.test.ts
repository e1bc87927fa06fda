// Zaps as payment (NIP-57), with nostr-tools' nip57 as the customer's client library: Timmy's LNURL-pay
// endpoint, zap requests checked as Appendix D says, a zap that pays a job's stage (and the bolt11 paid as
// well, credited), a zap for less (credited, the shortfall named), a tip, and receipts a client can verify.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { makeZapRequest, validateZapRequest } from 'nostr-tools/nip57';
import { decode } from 'light-bolt11-decoder';
import { freePort, startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { amountMsatsOf, Customer, invoiceOf, payStub, queryRelay, tag } from './helpers/customer.ts';
import { queryOne } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';

let relay: RelayProc;
let daemon: DaemonProc;
let customer: Customer;
let lnurl: { callback: string; nostrPubkey: string; allowsNostr: boolean; minSendable: number; maxSendable: number };

beforeAll(async () => {
  relay = await startRelay();
  const httpPort = await freePort();
  daemon = await startDaemon({ relays: [relay.url], httpPort, env: { PUBLIC_URL: `http://127.0.0.1:${httpPort}` } });
  customer = await new Customer([relay.url], daemon.pubkey).connect();
  lnurl = (await (await fetch(`${daemon.api}/.well-known/lnurlp/timmy`)).json()) as typeof lnurl;
});
afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await relay?.stop();
});

/** The zapper's side of NIP-57: a signed zap request for `target`, sent to the callback; the invoice back. */
async function zap(target: Event, amountMsats: number, sk = generateSecretKey()): Promise<{ request: Event; json: string; bolt11: string }> {
  const request = finalizeEvent(makeZapRequest({ event: target, amount: amountMsats, relays: [relay.url], comment: 'for Timmy' }), sk);
  const json = JSON.stringify(request);
  expect(validateZapRequest(json)).toBeNull(); // what a client checks before sending it
  const res = await fetch(`${lnurl.callback}?amount=${amountMsats}&nostr=${encodeURIComponent(json)}`);
  const body = (await res.json()) as { pr?: string; reason?: string };
  expect(res.status, body.reason).toBe(200);
  return { request, json, bolt11: body.pr! };
}

/** Waits for the receipt of a zap request and checks it as Appendix F says a client must. */
async function receiptOf(z: { request: Event; json: string; bolt11: string }): Promise<Event> {
  const receipt = await waitFor(async () => (await queryRelay(relay.url, { kinds: [9735], '#P': [z.request.pubkey] })).find((e) => tag(e, 'bolt11')?.[1] === z.bolt11), 'the zap receipt');
  expect(receipt.pubkey).toBe(lnurl.nostrPubkey);
  expect(tag(receipt, 'description')?.[1]).toBe(z.json);
  expect(amountMsatsOf(z.bolt11)).toBe(Number(tag(z.request, 'amount')![1])); // (nip57's helper reads mainnet invoices only)
  expect(tag(receipt, 'e')?.[1]).toBe(tag(z.request, 'e')?.[1]);
  expect(tag(receipt, 'p')?.[1]).toBe(daemon.pubkey);
  return receipt;
}

const descriptionHash = (bolt11: string) => ((decode(bolt11).sections as { name: string }[]).find((s) => s.name === 'description_hash') as { value: string } | undefined)?.value;
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const creditsOf = (pubkey: string) =>
  queryOne<{ s: number }>(daemon.dataDir, 'select coalesce(sum(delta_msats), 0) s from credits where account = ?', pubkey).then((r) => r!.s);

describe('Timmy as its own zap endpoint', () => {
  it('answers LNURL-pay with allowsNostr and its pubkey, and names its lightning address in kind 0', async () => {
    expect(lnurl).toMatchObject({ allowsNostr: true, nostrPubkey: daemon.pubkey, minSendable: 1000 });
    expect(lnurl.callback).toBe(`${daemon.api}/lnurlp/timmy/callback`);
    expect((await fetch(`${daemon.api}/.well-known/lnurlp/someone-else`)).status).toBe(404);
    const [profile] = await waitFor(async () => {
      const p = await queryRelay(relay.url, { kinds: [0], authors: [daemon.pubkey] });
      return p.length > 0 && p;
    }, 'the profile');
    expect(JSON.parse(profile!.content).lud16).toBe(`timmy@${new URL(daemon.api).host}`);
  });

  it('refuses zap requests that break Appendix D, in LNURL error form', async () => {
    const sk = generateSecretKey();
    const target = await customer.request('a request to zap');
    const sign = (tags: string[][]) => JSON.stringify(finalizeEvent({ kind: 9734, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, sk));
    const cases: [string, number, RegExp][] = [
      [sign([['p', getPublicKey(generateSecretKey())], ['amount', '21000'], ['relays', relay.url]]), 21000, /another recipient/],
      [sign([['p', daemon.pubkey], ['amount', '21000'], ['relays', relay.url]]), 42000, /differs from the amount/],
      [sign([['p', daemon.pubkey], ['p', daemon.pubkey], ['relays', relay.url]]), 21000, /exactly one p tag/],
      [sign([['p', daemon.pubkey], ['e', target.id], ['e', target.id]]), 21000, /at most one e tag/],
      [JSON.stringify({ ...JSON.parse(sign([['p', daemon.pubkey]])), content: 'tampered' }), 21000, /bad id or signature/],
      ['not json', 21000, /not a JSON event/],
    ];
    for (const [json, amount, why] of cases) {
      const res = await fetch(`${lnurl.callback}?amount=${amount}&nostr=${encodeURIComponent(json)}`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { status: string; reason: string };
      expect(body.status).toBe('ERROR');
      expect(body.reason).toMatch(why);
    }
    const odd = await fetch(`${lnurl.callback}?amount=1500`);
    expect(((await odd.json()) as { reason: string }).reason).toMatch(/whole sats/);
  });

  it("a zap of the payment-required event pays that stage once; the bolt11 paid as well is credited", async () => {
    const req = await customer.request('What is a zap?');
    const [required] = await customer.waitForFeedback(req.id, 'payment-required');
    const due = invoiceOf(required!);
    const z = await zap(required!, due.msats);
    expect(descriptionHash(z.bolt11)).toBe(sha256(z.json)); // the invoice commits to the zap request
    await payStub(daemon.api, z.bolt11);
    await customer.waitForFeedback(req.id, 'processing');
    await receiptOf(z);
    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2);
    expect(quotes).toHaveLength(2); // evaluated once, quoted once
    // The customer's wallet pays the original invoice too: credited to the customer, never lost.
    await payStub(daemon.api, due.bolt11);
    await waitFor(async () => (await creditsOf(customer.pubkey)) === due.msats, 'the second payment credited');
    expect(await queryOne(daemon.dataDir, 'select outcome from zaps where id = ?', z.request.id)).toEqual({ outcome: 'paid_eval' });
  });

  it('a zap for less than is due is credited to the zapper and the shortfall is named', async () => {
    const fresh = await new Customer([relay.url], daemon.pubkey).connect(); // no credit: the eval fee is invoiced
    const req = await fresh.request('Another question');
    const [required] = await fresh.waitForFeedback(req.id, 'payment-required');
    const due = invoiceOf(required!);
    const zapper = generateSecretKey();
    const z = await zap(required!, due.msats - 1000, zapper);
    await payStub(daemon.api, z.bolt11);
    await receiptOf(z);
    const [err] = await fresh.waitForFeedback(req.id, 'error');
    fresh.close();
    expect(tag(err!, 'status')?.[2]).toMatch(/^credited: the zap of \d+ sats is 1 sats short of the \d+ sats due/);
    expect(await creditsOf(getPublicKey(zapper))).toBe(due.msats - 1000);
    expect((await queryOne<{ state: string }>(daemon.dataDir, 'select state from jobs where id = ?', req.id))!.state).toBe('awaiting_eval_payment');
  });

  it("a profile zap from a session's bound pubkey pays its open deposit; the bolt11 paid as well is credited", async () => {
    const owner = generateSecretKey();
    const pubkey = getPublicKey(owner);
    const created = (await (await fetch(`${daemon.api}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amountSats: 50, pubkey }) })).json()) as {
      sessionId: string;
      macaroon: string;
      depositInvoice: { paymentHash: string; paymentRequest: string };
    };
    const request = finalizeEvent(makeZapRequest({ pubkey: daemon.pubkey, amount: 50_000, relays: [relay.url] }), owner); // no e tag: a profile zap
    const json = JSON.stringify(request);
    const res = await fetch(`${lnurl.callback}?amount=50000&nostr=${encodeURIComponent(json)}`);
    const { pr } = (await res.json()) as { pr: string };
    await payStub(daemon.api, pr);
    await receiptOf({ request, json, bolt11: pr });
    const view = await waitFor(async () => {
      const v = (await (await fetch(`${daemon.api}/api/sessions/${created.sessionId}`, { headers: { authorization: `Bearer ${created.macaroon}` } })).json()) as { state: string; balanceSats: number };
      return v.state === 'active' && v;
    }, 'the session funded by the zap');
    expect(view.balanceSats).toBe(50);
    expect(await queryOne(daemon.dataDir, 'select outcome from zaps where id = ?', request.id)).toEqual({ outcome: 'paid_deposit' });
    await payStub(daemon.api, created.depositInvoice.paymentRequest); // the deposit invoice paid too: credited, not added twice
    await waitFor(async () => (await creditsOf(pubkey)) === 50_000, 'the second payment credited to the bound pubkey');
    const again = (await (await fetch(`${daemon.api}/api/sessions/${created.sessionId}`, { headers: { authorization: `Bearer ${created.macaroon}` } })).json()) as { balanceSats: number };
    expect(again.balanceSats).toBe(50);
  });

  it('a zap of anything else of Timmy\'s is a tip, recorded, with its receipt', async () => {
    const [profile] = await queryRelay(relay.url, { kinds: [0], authors: [daemon.pubkey] });
    const z = await zap(profile!, 21_000);
    await payStub(daemon.api, z.bolt11);
    await receiptOf(z);
    await waitFor(async () => (await queryOne<{ outcome: string | null }>(daemon.dataDir, 'select outcome from zaps where id = ?', z.request.id))?.outcome === 'tip', 'the tip recorded');
  });
});
