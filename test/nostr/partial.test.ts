// Streamed answers over Nostr: a request with ["param","stream","true"] gets kind 7000 `partial` feedback
// with the text so far (at most one per 2 s, on the core's clock; encrypted for encrypted requests), then
// the normal 6050 result. In process, on a session bound to the customer's pubkey.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import * as nip44 from 'nostr-tools/nip44';
import { coreHarness, type CoreHarness } from '../helpers/core.ts';
import { REQUESTS_SUB } from '../../src/nostr/intake.ts';
import { waitFor } from '../helpers/wait.ts';
import type { StreamHooks, WorkAnswer } from '../../src/core/ports.ts';

let h: CoreHarness;
let nowMs = Date.now();
const clock = { nowMs: () => nowMs };
beforeEach(async () => {
  h = await coreHarness({}, { clock });
});
afterEach(() => h.close());

const customer = generateSecretKey();
const feed = (ev: unknown) => h.nostr.intake.handle('wss://relay.test', REQUESTS_SUB, ev);
const statusOf = (ev: Event) => ev.tags.find((t) => t[0] === 'status');
const eventsFor = (id: string) => h.sent.filter((e) => e.tags.some((t) => t[0] === 'e' && t[1] === id));

async function boundSession(): Promise<string> {
  const s = await h.core.sessions.create({ amountSats: 1000, pubkey: getPublicKey(customer), clientAddress: null, origin: 'http' });
  await h.pay(s.invoice.paymentHash);
  return s.sessionId;
}

/** The model writes "Hello ", then "world" 1 s later, then "!" 1.5 s after that (on the core's clock). */
function scriptedStream(): void {
  h.agent.onWorkStream = async (_prompt, hooks: StreamHooks): Promise<WorkAnswer> => {
    for (const [delta, afterMs] of [['Hello ', 0], ['world', 1000], ['!', 1500]] as const) {
      nowMs += afterMs;
      hooks.onText?.(delta);
    }
    return { text: 'Hello world!', usage: { model: 'claude-sonnet-4-6', inputTokens: 40, outputTokens: 4 } };
  };
}

describe('partial feedback', () => {
  it('sends the text so far at most once per 2 s, then the result', async () => {
    const session = await boundSession();
    scriptedStream();
    const ev = finalizeEvent(
      {
        kind: 5050,
        created_at: Math.floor(Date.now() / 1000),
        tags: [['p', h.keys.pubkey], ['i', 'Say hello.', 'text'], ['param', 'session', session], ['param', 'stream', 'true']],
        content: '',
      },
      customer,
    );
    feed(ev);
    await waitFor(() => eventsFor(ev.id).some((e) => e.kind === 6050), 'the result');
    await waitFor(() => eventsFor(ev.id).some((e) => e.kind === 7000 && statusOf(e)![1] === 'success'), 'success feedback');
    const sequence = eventsFor(ev.id).map((e) => (e.kind === 6050 ? 'result' : statusOf(e)![1]));
    expect(sequence).toEqual(['processing', 'partial', 'partial', 'result', 'success']);
    const partials = eventsFor(ev.id).filter((e) => e.kind === 7000 && statusOf(e)![1] === 'partial');
    // "world" came 1 s after the first partial: held back; "!" 2.5 s after it: sent with all the text so far.
    expect(partials.map((e) => e.content)).toEqual(['Hello ', 'Hello world!']);
    expect(eventsFor(ev.id).find((e) => e.kind === 6050)!.content).toBe('Hello world!');
    expect(h.agent.streamCalls).toBe(1);
  });

  it('encrypts the partial text for an encrypted request; the status line never carries it', async () => {
    const session = await boundSession();
    scriptedStream();
    const key = nip44.getConversationKey(customer, h.keys.pubkey);
    const inner = [['i', 'Say hello.', 'text'], ['param', 'session', session], ['param', 'stream', 'true']];
    const ev = finalizeEvent(
      { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['p', h.keys.pubkey], ['encrypted']], content: nip44.encrypt(JSON.stringify(inner), key) },
      customer,
    );
    feed(ev);
    await waitFor(() => eventsFor(ev.id).some((e) => e.kind === 6050), 'the result');
    const partials = eventsFor(ev.id).filter((e) => e.kind === 7000 && statusOf(e)![1] === 'partial');
    expect(partials).toHaveLength(2);
    for (const p of partials) {
      expect(p.tags).toContainEqual(['encrypted']);
      expect(p.content).not.toContain('Hello');
      expect(statusOf(p)!.join(' ')).not.toContain('Hello');
    }
    expect(partials.map((p) => nip44.decrypt(p.content, key))).toEqual(['Hello ', 'Hello world!']);
  });

  it('a request without the stream param gets no partial feedback; a bad value is refused', async () => {
    const session = await boundSession();
    scriptedStream();
    const plain = finalizeEvent(
      { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['p', h.keys.pubkey], ['i', 'Say hello.', 'text'], ['param', 'session', session]], content: '' },
      customer,
    );
    feed(plain);
    await waitFor(() => eventsFor(plain.id).some((e) => e.kind === 6050), 'the result');
    expect(eventsFor(plain.id).filter((e) => statusOf(e)?.[1] === 'partial')).toEqual([]);
    expect(h.agent.streamCalls).toBe(0); // the plain work call

    const bad = finalizeEvent(
      { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['p', h.keys.pubkey], ['i', 'hi', 'text'], ['param', 'stream', 'yes']], content: '' },
      customer,
    );
    feed(bad);
    await waitFor(() => eventsFor(bad.id).length === 1, 'error feedback');
    expect(statusOf(eventsFor(bad.id)[0]!)!.slice(1)).toEqual(['error', 'param stream must be "true" or "false", got "yes"']);
  });
});
