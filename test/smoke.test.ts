// The README quick start on a fresh clone: `npm start` on embedded defaults, then
// `npx timmy request "hi" --pay-stub` completes against the embedded relay.
import { execFileSync, spawn, execFile } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, freePort, tempDir } from './helpers/procs.ts';
import { waitFor } from './helpers/wait.ts';

async function portFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = createServer();
    s.once('error', () => r(false));
    s.listen(port, '127.0.0.1', () => s.close(() => r(true)));
  });
}

let groupPid: number | undefined;
afterAll(() => {
  if (groupPid) {
    try {
      process.kill(-groupPid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

describe('quick start on a fresh clone', () => {
  it('npm start, then npx timmy request "hi" --pay-stub gets a result', async () => {
    const dir = join(tempDir('timmy-clone-'), 'timmy');
    execFileSync('git', ['clone', '--quiet', ROOT, dir]);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));

    // The documented defaults (HTTP 8080, embedded relay 7777 from relays.json) when this machine has them free.
    const defaults = (await portFree(8080)) && (await portFree(7777));
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
    let httpPort = 8080;
    if (!defaults) {
      httpPort = await freePort();
      const relayPort = await freePort();
      Object.assign(env, { HTTP_PORT: String(httpPort), EMBEDDED_RELAY_PORT: String(relayPort), RELAYS: `ws://127.0.0.1:${relayPort}` });
    }
    const npm = spawn('npm', ['start'], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    groupPid = npm.pid;
    let out = '';
    npm.stdout!.on('data', (d) => (out += d));
    npm.stderr!.on('data', (d) => (out += d));
    const api = `http://127.0.0.1:${httpPort}`;
    await waitFor(async () => {
      if (npm.exitCode !== null) throw new Error(`npm start exited: ${out}`);
      return (await fetch(`${api}/api/healthz`)).status === 200;
    }, 'daemon healthy', 60_000, 100);
    expect(existsSync(join(dir, 'data', 'timmy.db'))).toBe(true);
    expect(existsSync(join(dir, 'data', 'nostr.key'))).toBe(true);

    const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile('npx', ['timmy', 'request', 'hi', '--pay-stub', '--no-qr', '--api', api, '--timeout', '30'], { cwd: dir, env }, (err, stdout) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }),
      );
    });
    expect(result.stdout).toContain('[payment-required]');
    expect(result.stdout).toContain('--- result ---');
    expect(result.stdout).toContain('"chargedSats"');
    expect(result.code).toBe(0);

    const jobs = execFileSync('npx', ['timmy', 'jobs'], { cwd: dir, env }).toString();
    expect(jobs).toMatch(/complete/);

    process.kill(-npm.pid!, 'SIGINT'); // Ctrl-C: the whole process group
    await waitFor(() => npm.exitCode !== null || npm.signalCode !== null, 'npm start exits after Ctrl-C', 20_000);
    expect(out).toContain('"msg":"stopped"');
    groupPid = undefined;
  });
});
