// A flood of throwaway keys cannot lock honest customers out (issue 14, item 2), on loopback: a real relay,
// the daemon, thousands of requests from as many fresh keys, then an honest customer.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { getPow, minePow } from 'nostr-tools/nip13';
import { finalizeEvent, initCrypto } from '../src/nostr/crypto.ts';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, status, tag } from './helpers/customer.ts';
import { readDb } from './helpers/store.ts';
import { waitForProgress, whileProgressing } from './helpers/wait.ts';

let relay: RelayProc | undefined;
let daemon: DaemonProc | undefined;
let honest: Customer | undefined;
afterEach(async () => {
  honest?.close();
  await daemon?.kill();
  await relay?.stop();
});

/** Signs `n` requests, each from its own fresh key, p-tagged to Timmy. */
async function throwawayRequests(n: number, timmy: string): Promise<{ id: string }[]> {
  await initCrypto();
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: n }, (_, i) =>
    finalizeEvent({ kind: 5050, created_at: now, tags: [['i', `spam ${i}`, 'text'], ['p', timmy]], content: '' }, generateSecretKey()),
  );
}

/** Publishes over one socket and resolves when the relay has answered OK to every event. */
async function flood(url: string, events: { id: string }[]): Promise<void> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const oks = new Set<string>();
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as unknown[];
    if (msg[0] === 'OK' && msg[2] === true) oks.add(msg[1] as string);
    if (oks.size === events.length) done();
  });
  for (const ev of events) ws.send(JSON.stringify(['EVENT', ev]));
  await whileProgressing(all, () => oks.size, 'the relay to accept the flood');
  ws.close();
}

const jobStates = (d: DaemonProc) =>
  readDb(d.dataDir, (db) => Object.fromEntries((db.prepare('select state, count(*) n from jobs group by state').all() as { state: string; n: number }[]).map((r) => [r.state, r.n])));
const unacked = (d: DaemonProc) => readDb(d.dataDir, (db) => (db.prepare('select count(*) n from outbox where acked_at is null').get() as { n: number }).n);
const jobCount = (d: DaemonProc) => readDb(d.dataDir, (db) => (db.prepare('select count(*) n from jobs').get() as { n: number }).n);
const openJobInvoices = (d: DaemonProc) =>
  readDb(d.dataDir, (db) => (db.prepare("select count(*) n from invoice_book where subject_kind = 'job' and status = 'open'").get() as { n: number }).n);

describe('a flood of throwaway keys', () => {
  it('5,000 requests from 5,000 keys: past the threshold they need proof of work; an honest request with it gets payment-required', async () => {
    relay = await startRelay();
    daemon = await startDaemon({ relays: [relay.url], env: { LOG_LEVEL: 'info', POW_DIFFICULTY: '8' } });
    const spam = await throwawayRequests(5000, daemon.pubkey);
    await flood(relay.url, spam);
    await waitForProgress(() => jobCount(daemon!) === 5000, () => jobCount(daemon!), 'every flood request to be answered');
    // MAX_OPEN_UNPAID_TOTAL 1000 × POW_THRESHOLD_PCT 50 %: the first 500 were invoiced, the rest refused
    // unless their random id happened to have 8 leading zero bits (1 in 256).
    const lucky = new Set(spam.filter((e) => getPow(e.id) >= 8).map((e) => e.id));
    const refused = readDb(daemon.dataDir, (db) => db.prepare("select id, error_message m from jobs where state = 'failed'").all() as { id: string; m: string }[]);
    expect(new Set(refused.map((r) => r.m.replace(/ \(.*$/, '')))).toEqual(new Set(['pow-required: difficulty 8']));
    expect(refused.filter((r) => lucky.has(r.id))).toEqual([]);
    expect(openJobInvoices(daemon)).toBe(5000 - refused.length);
    expect(openJobInvoices(daemon)).toBeGreaterThanOrEqual(500);
    expect(openJobInvoices(daemon)).toBeLessThanOrEqual(500 + lucky.size);
    // Let the 5,000 answers reach the relay before the honest customer arrives (a real one would wait too).
    await waitForProgress(() => unacked(daemon!) === 0, () => unacked(daemon!), 'the answers to the flood acked');

    honest = await new Customer([relay.url], daemon.pubkey).connect();
    const plain = await honest.request('What is a Lightning invoice?');
    const [err] = await honest.waitForFeedback(plain.id, 'error');
    expect(tag(err!, 'status')?.[2]).toMatch(/^pow-required: difficulty 8\b/);

    // A NIP-13 client mines the request and sends it again: served, while the flood waits unpaid.
    const mined = minePow(
      { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['i', 'What is a Lightning invoice?', 'text'], ['p', daemon.pubkey]], content: '', pubkey: honest.pubkey },
      8,
    );
    const ev = finalizeEvent({ kind: mined.kind, created_at: mined.created_at, tags: mined.tags, content: mined.content }, honest.sk);
    expect(ev.id).toBe(mined.id);
    await honest.publish(ev);
    const [required] = await honest.waitForFeedback(ev.id, 'payment-required');
    expect(status(required!)).toBe('payment-required');
    expect(tag(required!, 'amount')?.[2]).toMatch(/^lnbc/);
  });

  it('with proof of work off, the cap drops the oldest unpaid request for the newest: an honest request is still invoiced', async () => {
    relay = await startRelay();
    daemon = await startDaemon({ relays: [relay.url], env: { LOG_LEVEL: 'info', POW_DIFFICULTY: '0', MAX_OPEN_UNPAID_TOTAL: '100' } });
    const spam = await throwawayRequests(600, daemon.pubkey);
    await flood(relay.url, spam);
    await waitForProgress(() => jobCount(daemon!) === 600, () => jobCount(daemon!), 'every flood request to be recorded');
    expect(jobStates(daemon)).toEqual({ awaiting_eval_payment: 100, expired: 500 });
    expect(openJobInvoices(daemon)).toBe(100);
    // The oldest were dropped, and told so.
    const first = readDb(daemon.dataDir, (db) => db.prepare('select state, error_message m from jobs where id = ?').get(spam[0]!.id)) as { state: string; m: string };
    expect(first.state).toBe('expired');
    const withdrawn = readDb(daemon.dataDir, (db) => (db.prepare("select count(*) n from invoice_book where status = 'withdrawn'").get() as { n: number }).n);
    expect(withdrawn).toBe(500);
    await waitForProgress(() => unacked(daemon!) === 0, () => unacked(daemon!), 'the answers to the flood acked');

    honest = await new Customer([relay.url], daemon.pubkey).connect();
    const req = await honest.request('What is a Lightning invoice?');
    const [required] = await honest.waitForFeedback(req.id, 'payment-required');
    expect(tag(required!, 'amount')?.[2]).toMatch(/^lnbc/);
    expect(openJobInvoices(daemon)).toBe(100);
  });
});
