// Idle sockets from one address cannot starve everyone else (issue 14, item 6): hundreds of half-open
// connections to the HTTP port and to the embedded relay, and /api/healthz still answers another client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { freePort, startDaemon, type DaemonProc } from './helpers/procs.ts';
import { waitFor } from './helpers/wait.ts';

let daemon: DaemonProc;
let relayPort: number;
beforeAll(async () => {
  relayPort = await freePort();
  daemon = await startDaemon({ relays: [], env: { EMBEDDED_RELAY_PORT: String(relayPort), HTTP_MAX_CONNECTIONS_PER_ADDRESS: '50' } });
});
afterAll(async () => {
  await daemon?.kill('SIGTERM');
});

/** Opens `n` TCP connections from 127.0.0.1 that never send a byte; resolves with those still open. */
async function holdIdle(port: number, n: number): Promise<Socket[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise<Socket>((resolve) => {
      const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
      s.on('error', () => resolve(s));
    })),
  );
  return sockets;
}

const healthFrom = (localAddress: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: daemon.httpPort, path: '/api/healthz', localAddress }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });

describe('connection limits', () => {
  it('past the per-address cap the extra sockets are closed; another address is served meanwhile', async () => {
    const http = await holdIdle(daemon.httpPort, 300);
    const relay = await holdIdle(relayPort, 300);
    try {
      // Beyond 50 (HTTP) and 100 (relay) per address, sockets are closed by the server.
      await waitFor(() => http.filter((s) => !s.destroyed && !s.closed).length <= 50, 'HTTP sockets beyond the cap closed');
      await waitFor(() => relay.filter((s) => !s.destroyed && !s.closed).length <= 100, 'relay sockets beyond the cap closed');
      expect(await healthFrom('127.0.0.2')).toBe(200);
    } finally {
      for (const s of [...http, ...relay]) s.destroy();
    }
  });

  it('an idle socket that never sends a request is closed after the header timeout', async () => {
    const [s] = await holdIdle(daemon.httpPort, 1);
    await waitFor(() => s!.closed || s!.readyState !== 'open', 'idle socket closed by the server (after 10 s)', 30_000);
    s!.destroy();
  });
});
