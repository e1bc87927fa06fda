// NIP-42: a relay that challenges every connection gets a signed AUTH answer, and jobs still flow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer } from './helpers/customer.ts';
import { waitFor } from './helpers/wait.ts';

let relay: RelayProc;
let daemon: DaemonProc;
beforeAll(async () => {
  relay = await startRelay({ auth: '127.0.0.1' });
  daemon = await startDaemon({ relays: [relay.url] });
});
afterAll(async () => {
  await daemon?.kill();
  await relay?.stop();
});

describe('NIP-42 AUTH', () => {
  it('answers the challenge (the relay accepts it) and serves requests', async () => {
    const answered = await waitFor(() => daemon.logs.find((l) => l.msg === 'relay AUTH answered'), 'AUTH answered');
    expect(answered.ok).toBe(true);
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const req = await c.request('hello from behind AUTH');
      await c.waitForFeedback(req.id, 'payment-required');
    } finally {
      c.close();
    }
  });
});
