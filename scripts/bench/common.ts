// Shared bits of `npm run bench`: sizes from the environment, progress on stderr, statistics, the
// result rows that end up in the markdown table.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** BENCH_SCALE multiplies every count (default 1 = the sizes in docs/benchmarks.md). */
export const SCALE = (() => {
  const v = Number(process.env.BENCH_SCALE ?? '1');
  if (!Number.isFinite(v) || v <= 0) throw new Error(`BENCH_SCALE must be a positive number, got ${process.env.BENCH_SCALE}`);
  return v;
})();

/** A count: `BENCH_<name>` if set, else `base` × BENCH_SCALE, never below `min`. */
export function count(name: string, base: number, min = 1): number {
  const explicit = process.env[`BENCH_${name}`];
  if (explicit !== undefined && explicit !== '') {
    const n = Number(explicit);
    if (!Number.isInteger(n) || n < 0) throw new Error(`BENCH_${name} must be a non-negative integer, got ${explicit}`);
    return n;
  }
  return Math.max(min, Math.round(base * SCALE));
}

/** A duration in seconds: `BENCH_<name>` if set, else `base` (not scaled). */
export function seconds(name: string, base: number): number {
  const explicit = process.env[`BENCH_${name}`];
  if (explicit === undefined || explicit === '') return base;
  const n = Number(explicit);
  if (!Number.isFinite(n) || n < 0) throw new Error(`BENCH_${name} must be a non-negative number, got ${explicit}`);
  return n;
}

const started = performance.now();

/** A progress line on stderr (stdout carries only the final table). */
export function progress(msg: string): void {
  const t = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` every `intervalMs` until it is truthy; throws after `timeoutMs`. */
export async function until<T>(probe: () => T | undefined | null | false, what: string, timeoutMs: number, intervalMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Nearest-rank percentile of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function summary(samples: number[]): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  return {
    n: samples.length,
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    p99: percentile(samples, 99),
    max: samples.length ? Math.max(...samples) : NaN,
    mean: samples.length ? samples.reduce((a, b) => a + b, 0) / samples.length : NaN,
  };
}

export const fmt = {
  int: (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  ms: (n: number) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')} ms` : 'n/a'),
  s: (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a'),
  us: (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)} µs` : 'n/a'),
  pct: (r: number) => (Number.isFinite(r) ? `${(r * 100).toFixed(0)} %` : 'n/a'),
  mib: (kb: number) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MiB` : 'n/a'),
  rate: (n: number) => (Number.isFinite(n) ? `${n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)} /s` : 'n/a'),
};

/** One line of the final table. `target` and `met` are empty when the figure has no target. */
export interface Row {
  bench: string;
  metric: string;
  value: string;
  target?: string;
  met?: boolean;
  note?: string;
}

export function markdownTable(rows: Row[]): string {
  const lines = ['| # | metric | value | target | met | notes |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const met = r.met === undefined ? '' : r.met ? 'yes' : '**NO**';
    const cells = [r.bench, r.metric, r.value, r.target ?? '', met, r.note ?? ''].map((c) => c.replace(/\|/g, '\\|'));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** VmRSS of a process, in kB (Linux). */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

/**
 * Runs a TypeScript entry in a child node process (same flags as `npm run bench`) and parses the last
 * stdout line as JSON. Its stderr (progress) passes through.
 */
export async function runChild<T>(entry: string, env: Record<string, string>, timeoutMs: number): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${entry} exited with ${code}: ${out.slice(-2000)}`);
  const last = out.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}
