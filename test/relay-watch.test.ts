// Relays that are not there must not go unnoticed (issue 14, item 15): the embedded relay's entry in
// relays.json follows EMBEDDED_RELAY_PORT, and with no relay connected the daemon warns.
import { describe, expect, it } from 'vitest';
import { freePort, startDaemon } from './helpers/procs.ts';
import { waitFor } from './helpers/wait.ts';

describe('relays', () => {
  it('the embedded relay of relays.json follows EMBEDDED_RELAY_PORT', async () => {
    const port = await freePort();
    const daemon = await startDaemon({ relays: [], env: { EMBEDDED_RELAY_PORT: String(port) } });
    try {
      const info = (await (await fetch(`${daemon.api}/api/info`)).json()) as { relays: { url: string; connected: boolean }[] };
      expect(info.relays.map((r) => r.url)).toEqual([`ws://127.0.0.1:${port}`]);
      await waitFor(async () => ((await (await fetch(`${daemon.api}/api/info`)).json()) as typeof info).relays[0]!.connected, 'embedded relay connected');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('warns while no relay is connected', async () => {
    const nobody = `ws://127.0.0.1:${await freePort()}`; // nothing listens there
    const daemon = await startDaemon({ relays: [nobody], waitForRelay: false });
    try {
      const warning = await waitFor(() => daemon.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('no relay connected')), 'the warning');
      expect(warning.relays).toEqual([nobody]);
      expect(warning.level).toBe(40); // pino's warn
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});
