// Child processes for integration tests: a real relay and the real daemon, each on loopback ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { databaseFor } from './store.ts';
import { waitFor } from './wait.ts';

export const ROOT = resolve(import.meta.dirname, '../..');

export function tempDir(prefix = 'timmy-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r(child.exitCode);
    else child.once('exit', (code) => r(code));
  });
}

export interface RelayProc {
  url: string;
  port: number;
  dbPath: string;
  child: ChildProcess;
  stop(): Promise<void>;
  /** With `traceEvents`: each event id received, with the connections it came on (one per sender). */
  senders(): Map<string, Set<number>>;
}

/** Starts `scripts/relay.ts` (@nostr-relay/core) as its own process; same port + db = a restart. */
export async function startRelay(opts: { port?: number; dbPath?: string; auth?: string; traceEvents?: boolean; okDelayMs?: number } = {}): Promise<RelayProc> {
  const port = opts.port ?? (await freePort());
  const dbPath = opts.dbPath ?? join(tempDir('timmy-relay-'), 'relay.db');
  const args = ['--import', 'tsx', 'scripts/relay.ts', '--port', String(port), '--db', dbPath];
  if (opts.auth) args.push('--auth', opts.auth);
  if (opts.traceEvents) args.push('--trace-events');
  if (opts.okDelayMs) args.push('--ok-delay-ms', String(opts.okDelayMs));
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitFor(() => out.includes('relay listening') || child.exitCode !== null, 'relay start', 20_000);
  if (child.exitCode !== null) throw new Error(`relay exited: ${out}`);
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    dbPath,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited(child);
    },
    senders() {
      const m = new Map<string, Set<number>>();
      for (const [, id, conn] of out.matchAll(/^EVENT ([0-9a-f]{64}) (\d+)$/gm)) {
        const s = m.get(id!) ?? new Set<number>();
        s.add(Number(conn));
        m.set(id!, s);
      }
      return m;
    },
  };
}

/** Environment variables whose values are secrets (SPEC 1): they must never appear in a log line. */
const SECRET_ENV = ['NOSTR_SECRET_KEY', 'LNBITS_API_KEY', 'ANTHROPIC_API_KEY', 'DO_API_TOKEN', 'TAILSCALE_API_KEY', 'CONSOLE_TOKEN'];

/**
 * Fails when the daemon's output holds a secret: a configured key, the keys in its data directory,
 * an nsec, or an SSH private key block. Every integration test runs it when its daemon stops.
 */
export function assertNoSecrets(output: string, env: Record<string, string>, dataDir: string): void {
  const nwcSecret = /[?&]secret=([0-9a-fA-F]+)/.exec(env.NWC_URL ?? '')?.[1]; // the NWC string's secret part
  const values = [...SECRET_ENV.map((k) => env[k]), nwcSecret].filter((v): v is string => !!v && v.length >= 8);
  // console.token: the operator console's login URL is written only to a terminal, never to the log.
  for (const f of ['nostr.key', 'macaroon.key', 'storage.key', 'client.key', 'console.token']) {
    try {
      values.push(readFileSync(join(dataDir, f), 'utf8').trim());
    } catch {
      /* not created by this daemon */
    }
  }
  const leaks = values.filter((v) => output.includes(v)).map((v) => `${v.slice(0, 6)}…`);
  if (/nsec1[02-9ac-hj-np-z]{20,}/.test(output)) leaks.push('an nsec');
  if (output.includes('PRIVATE KEY-----')) leaks.push('an SSH private key');
  if (leaks.length) throw new Error(`daemon output leaked secrets: ${leaks.join(', ')}`);
}

export interface DaemonProc {
  api: string;
  httpPort: number;
  dataDir: string;
  pubkey: string;
  child: ChildProcess;
  logs: Record<string, unknown>[];
  output: () => string;
  exit: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  rssKb(): number;
}

export interface DaemonOptions {
  relays: string[];
  dataDir?: string;
  env?: Record<string, string>;
  /** Wait for at least one relay connection before resolving (default true). */
  waitForRelay?: boolean;
  /** Fixed HTTP port (a restarted daemon keeps its address); default a free one. */
  httpPort?: number;
}

/** Starts `timmy start` as a child process with its own data dir and HTTP port. */
export async function startDaemon(o: DaemonOptions): Promise<DaemonProc> {
  const dataDir = o.dataDir ?? tempDir();
  const httpPort = o.httpPort ?? (await freePort());
  // The `pg` project: the store is a PostgreSQL database of this DATA_DIR's own, kept across restarts, and the
  // worker's name is the directory's, so a restarted daemon takes its own leases back at once (as SQLite does).
  const database = o.env?.DATABASE_URL ? null : databaseFor(dataDir);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATA_DIR: dataDir,
    RELAYS: o.relays.join(','),
    EMBEDDED_RELAY_PORT: 'off',
    HTTP_PORT: String(httpPort),
    LOG_LEVEL: 'debug',
    NODE_ENV: 'test',
    ...(database ? { DATABASE_URL: await database, WORKER_ID: `test-${basename(dataDir)}` } : {}),
    ...o.env,
  };
  const child = spawn(process.execPath, ['src/bin.js', 'start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let raw = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    raw += d;
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l));
      } catch {
        /* non-JSON output is kept in raw */
      }
    }
  });
  child.stderr!.on('data', (d) => (raw += d));
  const exit = exited(child);
  const api = `http://127.0.0.1:${httpPort}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`daemon exited early: ${raw.slice(-2000)}`);
      const res = await fetch(`${api}/api/healthz`);
      return o.waitForRelay === false ? true : res.status === 200;
    },
    'daemon healthy',
    30_000,
    50,
  );
  const info = (await (await fetch(`${api}/api/info`)).json()) as { pubkey: string };
  return {
    api,
    httpPort,
    dataDir,
    pubkey: info.pubkey,
    child,
    logs,
    output: () => raw,
    exit,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exit;
      assertNoSecrets(raw, env, dataDir);
      return code;
    },
    rssKb() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    },
  };
}
