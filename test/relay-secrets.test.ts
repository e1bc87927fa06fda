// Relay URL credentials (userinfo, query tokens) are never shown: not in /api/info, /api/healthz,
// /metrics labels or the logs (issue 14, item 9).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';

let relay: RelayProc;
let daemon: DaemonProc;
beforeAll(async () => {
  relay = await startRelay();
  const port = new URL(relay.url).port;
  daemon = await startDaemon({ relays: [`ws://operator:hunter2secret@127.0.0.1:${port}/?token=tok3nvalue`] });
});
afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await relay?.stop();
});

describe('relay URL credentials', () => {
  it('are redacted everywhere a relay URL is shown, while the connection uses them', async () => {
    const texts = await Promise.all(['/api/info', '/api/healthz', '/metrics'].map(async (p) => (await fetch(`${daemon.api}${p}`)).text()));
    const info = JSON.parse(texts[0]!) as { relays: { url: string; connected: boolean }[] };
    expect(info.relays[0]!.connected).toBe(true); // the credentials reached the socket
    expect(info.relays[0]!.url).toMatch(/^ws:\/\/\*\*\*@127\.0\.0\.1:\d+\/\?\*\*\*$/);
    for (const text of [...texts, daemon.output()]) {
      expect(text).not.toContain('hunter2secret');
      expect(text).not.toContain('tok3nvalue');
    }
  });
});
