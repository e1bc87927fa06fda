// The daemon as a child process for the benchmarks, like test/helpers/procs.ts's startDaemon but timed:
// the spawn instant and the first /api/healthz 200 are recorded (polled every 10 ms), the log goes to a
// file in the data directory (a pipe that this busy process drains late would block the daemon's
// synchronous log writes and show up as latency), and the process's CPU time is readable.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freePort } from '../../test/helpers/procs.ts';
import { rssKb, sleep } from './common.ts';

export interface BenchDaemon {
  api: string;
  pid: number;
  child: ChildProcess;
  spawnedAt: number; // performance.now() right before spawn
  healthyAt: number; // performance.now() of the first healthz 200
  tail(): string;
  rssKb(): number;
  cpuMs(): number;
  /** SIGKILL, or SIGTERM (graceful stop; lets a --cpu-prof profile be written) when BENCH_DAEMON_NODE_ARGS is set. */
  kill(): Promise<void>;
}

/** utime + stime of a process, ms (Linux, /proc/<pid>/stat; clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // fields 14 and 15 of stat(5), after pid and comm
}

/**
 * Starts `timmy start`. Extra node flags for the daemon come from BENCH_DAEMON_NODE_ARGS (space-separated,
 * e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; the profile is written when the daemon exits on SIGTERM).
 */
export async function spawnDaemon(o: { relays: string[]; dataDir: string; env: Record<string, string>; timeoutMs?: number; logPath?: string }): Promise<BenchDaemon> {
  const httpPort = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATA_DIR: o.dataDir,
    RELAYS: o.relays.join(','),
    EMBEDDED_RELAY_PORT: 'off',
    HTTP_PORT: String(httpPort),
    LOG_LEVEL: 'info',
    NODE_ENV: 'test',
    ...o.env,
  };
  const logPath = o.logPath ?? join(o.dataDir, 'daemon.log'); // workers sharing a DATA_DIR each name their own
  const logFd = openSync(logPath, 'a');
  const spawnedAt = performance.now();
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, 'src/bin.js', 'start'], { cwd: ROOT, env, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const tail = () => {
    try {
      return readFileSync(logPath, 'utf8').slice(-16_384);
    } catch {
      return '';
    }
  };
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const api = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  let healthyAt = NaN;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited early: ${tail().slice(-2000)}`);
    try {
      const res = await fetch(`${api}/api/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) {
        healthyAt = performance.now();
        break;
      }
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`daemon not healthy within ${o.timeoutMs ?? 60_000} ms: ${tail().slice(-2000)}`);
    }
    await sleep(10);
  }
  return {
    api,
    pid: child.pid!,
    child,
    spawnedAt,
    healthyAt,
    tail,
    rssKb: () => rssKb(child.pid!),
    cpuMs: () => cpuMs(child.pid!),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill(nodeArgs.length ? 'SIGTERM' : 'SIGKILL');
      await exited;
    },
  };
}
