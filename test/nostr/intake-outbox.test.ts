// Intake and outbox in process (no sockets): events in through intake.handle, events out through a
// transport that records them. Shapes, signatures, dedupe, refusals, sign-once and resend-until-acked.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import * as nip44 from 'nostr-tools/nip44';
import { coreHarness, type CoreHarness } from '../helpers/core.ts';
import { REQUESTS_SUB } from '../../src/nostr/intake.ts';
import { waitFor } from '../helpers/wait.ts';

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness();
});
afterEach(() => h.close());

const customer = generateSecretKey();
function request(tags: string[][], content = ''): Event {
  return finalizeEvent({ kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['p', h.keys.pubkey], ...tags], content }, customer);
}
const feed = (ev: unknown) => h.nostr.intake.handle('wss://relay.test', REQUESTS_SUB, ev);
const statusOf = (ev: Event) => ev.tags.find((t) => t[0] === 'status');
const feedbackFor = (id: string) => h.sent.filter((e) => e.kind === 7000 && e.tags.some((t) => t[0] === 'e' && t[1] === id));

describe('intake', () => {
  it('one request seen on three relays is one job with one payment-required', async () => {
    const ev = request([['i', 'Explain Lightning invoices in two sentences.', 'text']]);
    for (let i = 0; i < 3; i++) feed(JSON.parse(JSON.stringify(ev)));
    await waitFor(() => feedbackFor(ev.id).length === 1, 'payment-required');
    expect(statusOf(feedbackFor(ev.id)[0]!)![1]).toBe('payment-required');
    expect(h.nostr.intake.counters).toMatchObject({ received: 3, accepted: 1, duplicate: 2 });
    expect((await h.core.jobs.get(ev.id))!.state).toBe('awaiting_eval_payment');
  });

  it('drops malformed, forged and oversize events without a job or an answer', async () => {
    const good = request([['i', 'hi', 'text']]);
    feed('not an event');
    feed({ ...good, sig: 'f'.repeat(128) });
    feed({ ...good, content: 'x'.repeat(70_000) });
    feed({ ...good, id: good.id.replace(/^./, good.id[0] === '0' ? '1' : '0') });
    expect(h.nostr.intake.counters).toMatchObject({ received: 4, malformed: 1, badSignature: 2, tooLarge: 1, accepted: 0 });
    expect((await h.core.jobs.get(good.id))).toBeUndefined();
    expect(h.sent).toEqual([]);
  });

  it('answers a decodable request it cannot serve with error (invalid), once', async () => {
    const ev = request([['i', 'x', 'url']]);
    feed(ev);
    feed(JSON.parse(JSON.stringify(ev)));
    await waitFor(() => feedbackFor(ev.id).length === 1, 'error feedback');
    const [, status, words] = statusOf(feedbackFor(ev.id)[0]!)!;
    expect(status).toBe('error');
    expect(words).toMatch(/^unsupported input type "url"/);
    expect((await h.core.jobs.get(ev.id))!.state).toBe('failed');
  });

  it('an encrypted request refused shows only its label in the clear', async () => {
    const key = nip44.getConversationKey(customer, h.keys.pubkey);
    const content = nip44.encrypt(JSON.stringify([['i', 'my secret question', 'url']]), key);
    const ev = finalizeEvent({ kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['p', h.keys.pubkey], ['encrypted']], content }, customer);
    feed(ev);
    await waitFor(() => feedbackFor(ev.id).length === 1, 'error feedback');
    const fb = feedbackFor(ev.id)[0]!;
    expect(statusOf(fb)![2]).toBe('invalid: details in the encrypted content');
    expect(nip44.decrypt(fb.content, key)).toMatch(/^unsupported input type "url"/);
    expect(JSON.stringify(fb)).not.toContain('my secret question');
  });

  it('a NIP-09 deletion by the author cancels the unpaid job; by anyone else it does nothing', async () => {
    const ev = request([['i', 'hello', 'text']]);
    feed(ev);
    await waitFor(async () => (await h.core.jobs.get(ev.id))?.state === 'awaiting_eval_payment', 'job');
    const stranger = generateSecretKey();
    feed(finalizeEvent({ kind: 5, created_at: Math.floor(Date.now() / 1000), tags: [['e', ev.id]], content: '' }, stranger));
    await h.nostr.intake.settled();
    expect((await h.core.jobs.get(ev.id))!.state).toBe('awaiting_eval_payment');
    feed(finalizeEvent({ kind: 5, created_at: Math.floor(Date.now() / 1000), tags: [['e', ev.id]], content: '' }, customer));
    await h.nostr.intake.settled();
    expect((await h.core.jobs.get(ev.id))!.state).toBe('cancelled');
    expect(getPublicKey(customer)).toBe((await h.core.jobs.get(ev.id))!.customerPubkey);
  });
});

describe('outbox', () => {
  it('signs each intent once and re-sends the same event until a relay acks it', async () => {
    h.autoAck.on = false;
    const ev = request([['i', 'hello', 'text']]);
    feed(ev);
    await waitFor(() => feedbackFor(ev.id).length === 1, 'first send');
    const first = feedbackFor(ev.id)[0]!;
    await h.nostr.outbox.drain(); // backoff: not yet again
    void h.nostr.outbox.onConnected('stub://relay'); // a relay (re)connects: catch it up with the stored event
    await waitFor(() => feedbackFor(ev.id).length >= 2, 'resend');
    expect(new Set(feedbackFor(ev.id).map((e) => e.id))).toEqual(new Set([first.id]));
    h.nostr.outbox.onOk('stub://relay', first.id, false, 'duplicate: already have it'); // as good as accepted
    await waitFor(async () => (await h.intents(ev.id))[0]!.ackedAt !== null, 'ack recorded');
    const n = feedbackFor(ev.id).length;
    await h.nostr.outbox.onConnected('stub://relay');
    expect(feedbackFor(ev.id).length).toBe(n);
  });
});
