// Relay outages and hostile input: a relay that dies and comes back, and a rogue relay that feeds the
// daemon 1,000 malformed, forged, oversize and mis-dated events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, freePort, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer } from './helpers/customer.ts';
import { readDb } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';
import { RogueRelay } from './helpers/rogue-relay.ts';

interface Health {
  relaysConnected: number;
  relays: { url: string; connected: boolean }[];
}

async function health(d: DaemonProc): Promise<Health> {
  return (await (await fetch(`${d.api}/api/healthz`)).json()) as Health;
}

describe('relay outage', () => {
  let relay: RelayProc;
  let daemon: DaemonProc;

  beforeAll(async () => {
    relay = await startRelay();
    daemon = await startDaemon({ relays: [relay.url] });
  });
  afterAll(async () => {
    await daemon?.kill();
    await relay?.stop();
  });

  it('keeps running while the relay is down and serves a new request after it returns', async () => {
    await relay.stop();
    await waitFor(async () => (await health(daemon)).relaysConnected === 0, 'daemon notices the relay is gone');
    expect((await fetch(`${daemon.api}/api/healthz`)).status).toBe(503);

    relay = await startRelay({ port: relay.port, dbPath: relay.dbPath });
    await waitFor(async () => (await health(daemon)).relaysConnected === 1, 'daemon reconnects', 10_000);
    const customer = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const req = await customer.request('Are you back?');
      await customer.waitForFeedback(req.id, 'payment-required', 1, 10_000);
    } finally {
      customer.close();
    }
  });
});

describe('hostile input', () => {
  let relay: RelayProc;
  let rogue: RogueRelay;
  let daemon: DaemonProc;
  let customer: Customer;

  beforeAll(async () => {
    relay = await startRelay();
    rogue = new RogueRelay(await freePort());
    daemon = await startDaemon({ relays: [relay.url, rogue.url] });
    await waitFor(() => rogue.live(), 'daemon subscribed on the rogue relay');
    customer = await new Customer([relay.url], daemon.pubkey).connect();
  });
  afterAll(async () => {
    customer?.close();
    await daemon?.kill();
    rogue?.close();
    await relay?.stop();
  });

  it('survives 1,000 bad events with flat memory, creating no job, and still serves a valid request', async () => {
    const now = Math.floor(Date.now() / 1000);
    const p = ['p', daemon.pubkey];
    const valid = customer.sign([['i', 'a real request after the storm', 'text'], p]);
    const forgedIds: string[] = [valid.id];
    const generators: (() => void)[] = [
      () => rogue.sendRaw('this is not json'),
      () => rogue.sendRaw('["EVENT"'),
      () => rogue.sendRaw(JSON.stringify({ EVENT: true })),
      () => rogue.sendEvent({ id: 'nope', kind: 5050 }),
      () => rogue.sendEvent({ ...valid, tags: 'not an array' }),
      () => rogue.sendEvent({ ...valid, kind: '5050' }),
      () => rogue.sendEvent(null),
      // Same id as the valid request, but a bad signature: must not poison the dedupe of the real one.
      () => rogue.sendEvent({ ...valid, sig: 'a'.repeat(128) }),
      () => {
        const ev = customer.sign([['i', 'tampered', 'text'], p]);
        forgedIds.push(ev.id);
        rogue.sendEvent({ ...ev, content: 'changed after signing' });
      },
      () => {
        const ev = customer.sign([['i', 'x'.repeat(70_000), 'text'], p]); // over the 64 KiB event limit
        forgedIds.push(ev.id);
        rogue.sendEvent(ev);
      },
      () => {
        const ev = customer.sign([['i', 'from the future', 'text'], p], { createdAt: now + 3600 });
        forgedIds.push(ev.id);
        rogue.sendEvent(ev);
      },
      () => {
        const ev = customer.sign([['i', 'from the past', 'text'], p], { createdAt: now - 7200 });
        forgedIds.push(ev.id);
        rogue.sendEvent(ev);
      },
      () => {
        const ev = customer.sign([['i', 'expired', 'text'], p, ['expiration', String(now - 10)]]);
        forgedIds.push(ev.id);
        rogue.sendEvent(ev);
      },
      () => rogue.sendEvent({ ...valid, tags: [['i', '\u0000\uffff\ud800', 'text'], [1, 2]] }),
    ];

    // Warm up, then measure.
    for (let i = 0; i < 100; i++) generators[i % generators.length]!();
    await waitFor(async () => (await fetch(`${daemon.api}/api/healthz`)).status === 200, 'daemon answering');
    const rssBefore = daemon.rssKb();
    for (let i = 0; i < 1000; i++) generators[i % generators.length]!();
    // One frame over the websocket size limit: the daemon drops that connection and reconnects.
    const before = rogue.connections;
    rogue.sendRaw(JSON.stringify(['EVENT', 'x', { content: 'y'.repeat(600 * 1024) }]));
    await waitFor(() => rogue.connections > before && rogue.live(), 'daemon reconnects to the rogue relay', 10_000);

    expect(daemon.child.exitCode).toBeNull();
    const rssAfter = daemon.rssKb();
    expect(rssAfter - rssBefore).toBeLessThan(40 * 1024); // KiB: no growth with the event count

    await customer.publish(valid);
    await customer.waitForFeedback(valid.id, 'payment-required');
    const jobIds = readDb(daemon.dataDir, (db) => (db.prepare('select id from jobs').all() as { id: string }[]).map((r) => r.id));
    expect(jobIds).toEqual([valid.id]);
    expect(forgedIds.slice(1).every((id) => !jobIds.includes(id))).toBe(true);
  });
});
