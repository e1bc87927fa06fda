// /api/healthz tells the truth part by part (issue 14, item 16): LNbits failing, the Anthropic API gone;
// while the AI backend is down, new requests are refused before any invoice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, tag } from './helpers/customer.ts';
import { waitFor } from './helpers/wait.ts';
import { startFakeLnbits, type FakeLnbits } from './fakes/lnbits.ts';
import { startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.ts';
import { fakeBackendEnv } from './helpers/backends.ts';

type Part = { backend: string; ok: boolean; detail: string };
type Health = { ok: boolean; store: boolean; payments: Part; ai: Part };

let relay: RelayProc;
let lnbits: FakeLnbits;
let anthropic: FakeAnthropic;
let daemon: DaemonProc;

beforeAll(async () => {
  [relay, lnbits, anthropic] = await Promise.all([startRelay(), startFakeLnbits(), startFakeAnthropic()]);
  daemon = await startDaemon({
    relays: [relay.url],
    env: { ...fakeBackendEnv(lnbits, anthropic), ANTHROPIC_MAX_RETRIES: '0' },
  });
});
afterAll(async () => {
  await daemon?.kill();
  await Promise.all([relay?.stop(), lnbits?.close()]);
});

const health = async () => {
  const res = await fetch(`${daemon.api}/api/healthz`);
  return { status: res.status, body: (await res.json()) as Health };
};

describe('healthz', () => {
  it('reports each part; a failing LNbits makes it 503 until LNbits answers again', async () => {
    const up = await waitFor(async () => {
      const h = await health();
      return h.status === 200 && h.body.payments.detail !== 'not checked yet' && h.body.ai.detail !== 'not checked yet' && h;
    }, 'healthy, every part checked');
    expect(up.body).toMatchObject({ ok: true, store: true, payments: { backend: 'lnbits', ok: true }, ai: { backend: 'anthropic', ok: true } });
    lnbits.setFailing(true);
    const down = await waitFor(async () => {
      const h = await health();
      return h.status === 503 && h;
    }, 'LNbits seen failing');
    expect(down.body.payments.ok).toBe(false);
    expect(down.body.payments.detail).toMatch(/LNbits answered HTTP 500/);
    expect(down.body.ai.ok).toBe(true);
    lnbits.setFailing(false);
    await waitFor(async () => (await health()).status === 200, 'LNbits back');
  });

  it('with the AI backend gone: 503, and a new request is refused before any invoice', async () => {
    await anthropic.close();
    const down = await waitFor(async () => {
      const h = await health();
      return h.status === 503 && !h.body.ai.ok && h;
    }, 'the AI backend seen down');
    expect(down.body.ai.detail).toMatch(/could not reach the API|connection error/);
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const req = await c.request('are you there?');
      const [err] = await c.waitForFeedback(req.id, 'error');
      expect(tag(err!, 'status')?.[2]).toMatch(/^unavailable: the AI backend is not answering right now .*nothing was charged/);
      expect(c.feedback(req.id, 'payment-required')).toHaveLength(0);
    } finally {
      c.close();
    }
  });
});
