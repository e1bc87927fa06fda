// Relay URLs from strangers (a request's `relays` tag): refused by default (loopback is private), and
// with ALLOW_PRIVATE_RELAYS=1 dialled only once the request is paid. Only loopback addresses are named.
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, status } from './helpers/customer.ts';
import { readDb } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';
import { RogueRelay } from './helpers/rogue-relay.ts';

let relay: RelayProc;
beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  await relay?.stop();
});

describe('default policy', () => {
  let daemon: DaemonProc;
  let trap: Server;
  let connections = 0;
  beforeAll(async () => {
    trap = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    daemon = await startDaemon({ relays: [relay.url] });
  });
  afterAll(async () => {
    await daemon?.kill();
    trap?.close();
  });

  it('never dials a loopback relay a request names, even after payment', async () => {
    const addr = trap.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const req = await c.request('hello', [['relays', `wss://127.0.0.1:${port}`, `ws://localhost:${port}`, `wss://[::1]:${port}`]]);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      await payStub(daemon.api, invoiceOf(fb!).bolt11);
      const quotes = await c.waitForFeedback(req.id, 'payment-required', 2);
      await payStub(daemon.api, invoiceOf(quotes.find((e) => e.id !== fb!.id)!).bolt11);
      await c.waitForResult(req.id);
      await c.waitForFeedback(req.id, 'success');
      const stored = readDb(daemon.dataDir, (db) => db.prepare('select relays_json from jobs where id = ?').get(req.id)) as { relays_json: string };
      expect(JSON.parse(stored.relays_json)).toEqual([]);
      expect(connections).toBe(0);
    } finally {
      c.close();
    }
  });
});

describe('ALLOW_PRIVATE_RELAYS=1', () => {
  let daemon: DaemonProc;
  let named: RogueRelay;
  beforeAll(async () => {
    named = new RogueRelay(await freePort());
    daemon = await startDaemon({ relays: [relay.url], env: { ALLOW_PRIVATE_RELAYS: '1' } });
  });
  afterAll(async () => {
    await daemon?.kill();
    named?.close();
  });

  it('dials the named relay only after the request is paid, and delivers the rest of the job there', async () => {
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const req = await c.request('hello there', [['relays', named.url, `ws://127.0.0.1:${daemon.httpPort}`]]);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      expect(named.connections).toBe(0);
      const stored = readDb(daemon.dataDir, (db) => db.prepare('select relays_json from jobs where id = ?').get(req.id)) as { relays_json: string };
      expect(JSON.parse(stored.relays_json)).toEqual([named.url]); // the daemon's own port is refused

      await payStub(daemon.api, invoiceOf(fb!).bolt11);
      const quotes = await c.waitForFeedback(req.id, 'payment-required', 2);
      await payStub(daemon.api, invoiceOf(quotes.find((e) => e.id !== fb!.id)!).bolt11);
      await c.waitForFeedback(req.id, 'success');
      const got = await waitFor(() => {
        const labels = named.received.filter((e) => e.tags.some((t) => t[0] === 'e' && t[1] === req.id)).map((e) => (e.kind === 6050 ? 'result' : status(e as never)));
        return labels.includes('success') && labels;
      }, 'events on the named relay');
      expect(got).not.toContain(undefined);
      expect(got.filter((l) => l === 'payment-required')).toHaveLength(1); // the work invoice, not the unpaid eval one
      expect(got).toContain('result');
    } finally {
      c.close();
    }
  });
});
