// The embedded relay takes what Timmy takes (issue 14, item 17): a 5,000-character prompt goes through
// the CLI, the embedded relay and the daemon to a result; a relay that refuses is named by the CLI.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { freePort, ROOT, startDaemon, tempDir } from './helpers/procs.ts';

/** The CLI keeps a customer key in the user's config dir: a temporary home, never the real one. */
const customerEnv = () => ({ PATH: process.env.PATH ?? '', HOME: tempDir('timmy-home-'), XDG_CONFIG_HOME: '' });

describe('long prompts', () => {
  it('a 5,000-character prompt is served through the embedded relay', async () => {
    const port = await freePort();
    const daemon = await startDaemon({ relays: [], env: { EMBEDDED_RELAY_PORT: String(port), MAX_INPUT_CHARS: '20000' } });
    try {
      const prompt = `Summarise this: ${'lightning '.repeat(500)}`;
      const r = spawnSync(process.execPath, ['src/bin.js', 'request', prompt, '--api', daemon.api, '--pay-stub', '--no-qr', '--timeout', '120'], {
        cwd: ROOT,
        env: customerEnv(),
        encoding: 'utf8',
        timeout: 240_000,
      });
      expect(r.stdout + r.stderr).toContain('--- result ---');
      expect(r.status).toBe(0);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('the CLI names each relay that refuses the request, and why', async () => {
    // A relay that answers every EVENT with OK false and a reason, as a strict relay would.
    const server = createServer();
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (m) => {
      const msg = JSON.parse(String(m));
      if (msg[0] === 'EVENT') ws.send(JSON.stringify(['OK', msg[1].id, false, 'invalid: tag value must be less than 1024 chars']));
    }));
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    try {
      const relay = `ws://127.0.0.1:${port}`;
      // Spawned, not spawnSync: the fake relay lives in this process and must keep answering meanwhile.
      const child = spawn(
        process.execPath,
        ['src/bin.js', 'request', 'hi', '--to', 'f'.repeat(64), '--relay', relay, '--api', 'http://127.0.0.1:9', '--no-qr', '--timeout', '60'],
        { cwd: ROOT, env: customerEnv() },
      );
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const status = await new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      const r = { status };
      expect(out).toContain(`relay ${relay} did not take the request: invalid: tag value must be less than 1024 chars`);
      expect(out).not.toContain('AggregateError');
      expect(r.status).toBe(2);
    } finally {
      wss.close();
      server.close();
    }
  });
});
