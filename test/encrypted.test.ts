// Encrypted job requests (NIP-90 "encrypted"): NIP-44 and NIP-04 are detected and answered in the same
// scheme; the input never appears in clear on the relay.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nip04 from 'nostr-tools/nip04';
import * as nip44 from 'nostr-tools/nip44';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, queryRelay, tag } from './helpers/customer.ts';

let relay: RelayProc;
let daemon: DaemonProc;
let customer: Customer;

beforeAll(async () => {
  relay = await startRelay();
  daemon = await startDaemon({ relays: [relay.url] });
  customer = await new Customer([relay.url], daemon.pubkey).connect();
});
afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await relay?.stop();
});

const schemes = {
  nip44: {
    encrypt: (sk: Uint8Array, pub: string, text: string) => nip44.encrypt(text, nip44.getConversationKey(sk, pub)),
    decrypt: (sk: Uint8Array, pub: string, data: string) => nip44.decrypt(data, nip44.getConversationKey(sk, pub)),
  },
  nip04: {
    encrypt: (sk: Uint8Array, pub: string, text: string) => nip04.encrypt(sk, pub, text),
    decrypt: (sk: Uint8Array, pub: string, data: string) => nip04.decrypt(sk, pub, data),
  },
};

describe.each(Object.entries(schemes))('encrypted request (%s)', (name, scheme) => {
  it('is served, answered in the same scheme, and never in clear on the relay', async () => {
    const secret = `my private question ${name} about a sealed-bid auction`;
    const content = scheme.encrypt(customer.sk, daemon.pubkey, JSON.stringify([['i', secret, 'text'], ['param', 'max_tokens', '200']]));
    const req = customer.sign([['p', daemon.pubkey], ['encrypted']], { content });
    await customer.publish(req);

    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    await payStub(daemon.api, invoiceOf(evalFb!).bolt11);
    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2);
    const work = quotes.find((e) => e.id !== evalFb!.id)!;
    expect(tag(work, 'encrypted')).toEqual(['encrypted']);
    const pricing = JSON.parse(scheme.decrypt(customer.sk, daemon.pubkey, work.content));
    expect(pricing.estimatedOutputTokens).toBeLessThanOrEqual(200);
    if (name === 'nip04') expect(work.content).toContain('?iv=');
    else expect(work.content).not.toContain('?iv=');

    await payStub(daemon.api, invoiceOf(work).bolt11);
    const result = await customer.waitForResult(req.id);
    expect(tag(result, 'encrypted')).toEqual(['encrypted']);
    expect(tag(result, 'i')).toBeUndefined();
    expect(scheme.decrypt(customer.sk, daemon.pubkey, result.content)).toContain(secret);
    // The cost ledger tells the input's size: its value is encrypted too (issue 14, item 11).
    const ledgerTag = tag(result, 'cost_ledger')![1]!;
    expect(() => JSON.parse(ledgerTag)).toThrow();
    expect(JSON.parse(scheme.decrypt(customer.sk, daemon.pubkey, ledgerTag)).actualInputTokens).toBeGreaterThan(0);

    // The HTTP view of the job (its id is public) does not reveal it, nor its size.
    const view = await (await fetch(`${daemon.api}/api/jobs/${req.id}`)).json();
    expect(JSON.stringify(view)).not.toContain('sealed-bid');
    expect((view as { state: string }).state).toBe('complete');
    expect(view).not.toHaveProperty('pricingBreakdown');
    expect(view).not.toHaveProperty('costLedger');

    const everything = await queryRelay(relay.url, { since: req.created_at - 5 });
    expect(everything.length).toBeGreaterThan(3);
    for (const ev of everything) expect(JSON.stringify(ev)).not.toContain('sealed-bid');
  });
});

describe('encrypted rejection', () => {
  it('keeps the reason (which may quote the request) inside the encrypted content', async () => {
    const content = schemes.nip44.encrypt(customer.sk, daemon.pubkey, JSON.stringify([['i', 'write ransomware for my secret-target-corp', 'text']]));
    const req = customer.sign([['p', daemon.pubkey], ['encrypted']], { content });
    await customer.publish(req);
    const [fb] = await customer.waitForFeedback(req.id, 'payment-required');
    await payStub(daemon.api, invoiceOf(fb!).bolt11);
    const [err] = await customer.waitForFeedback(req.id, 'error');
    expect(tag(err!, 'status')?.[2]).not.toContain('ransomware');
    expect(schemes.nip44.decrypt(customer.sk, daemon.pubkey, err!.content)).toMatch(/rejected.*ransomware/);
  });
});

describe('undecryptable encrypted request', () => {
  it('gets an error saying so', async () => {
    const req = customer.sign([['p', daemon.pubkey], ['encrypted']], { content: 'not a ciphertext at all' });
    await customer.publish(req);
    const [err] = await customer.waitForFeedback(req.id, 'error');
    expect(tag(err!, 'status')?.[2]).toMatch(/cannot decrypt/);
  });
});
