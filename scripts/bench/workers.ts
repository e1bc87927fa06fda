// Benchmark 6: several workers on one PostgreSQL (issue 11). An embedded PostgreSQL with durable settings
// (fsync, synchronous_commit and full_page_writes on: unlike the tests' server), one relay process per round,
// and N daemons (`timmy start`) with one NOSTR_SECRET_KEY, one DATA_DIR and one DATABASE_URL (a fresh
// database per round), the stub agent taking a fixed time per call (STUB_AI_DELAY_MS) so that the work is
// I/O-bound as with a real model. K customers run a closed loop: request (kind 5050) -> payment-required
// -> pay the evaluation through a worker's dev route -> the quote -> pay the work through the next worker
// (round-robin over the workers) -> the kind-6050 result at a raw subscriber of the relay. Reported: paid
// jobs/s from the first request to the last result, p50/p99 request -> result, and the CPU each process
// used. Then the same with one worker on SQLite. Failover: two workers, a job's work step in flight, the
// worker holding its lease (`jobs.lease_owner`) SIGKILLed; kill -> the survivor's `lease taken over` and
// kill -> the result on the relay.
import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Event } from 'nostr-tools';
import { decode } from 'light-bolt11-decoder';
import { startRelay, tempDir, type RelayProc } from '../../test/helpers/procs.ts';
import { databaseUrl, startEmbedded, withPgClient } from '../../test/helpers/pg-server.ts';
import { finalizeEvent, getPublicKey } from '../../src/nostr/crypto.ts';
import { spawnDaemon, cpuMs, type BenchDaemon } from './daemon.ts';
import { RelayConn, tagOf } from './relay-client.ts';
import { progress, sleep, until } from './common.ts';

export interface ThroughputRound {
  label: string;
  backend: 'postgres' | 'sqlite';
  workers: number;
  jobs: number; // measured (after the warm-up)
  customers: number;
  elapsedMs: number; // first measured request -> last result at the subscriber
  rate: number; // paid jobs/s
  latencies: number[]; // ms, request published -> kind-6050 result at the subscriber
  stages: Stages; // the same, per stage
  cpuMs: { workers: number[]; relay: number; postgres: number; bench: number }; // during the measured phase
  idle: { workersPct: number; postgresPct: number; relayPct: number }; // % of one core while no job is open, 4 s
  invoicesPerJob: number | null; // stub invoices made per job (losers of the intake race included); PostgreSQL only
  writeTxPerJob: number | null; // PostgreSQL transactions that wrote (took an xid), per measured job
  walKbPerJob: number | null; // WAL written per measured job
  warnings: string[]; // warn+ log lines of the workers (lease taken over / lost would be a surprise here)
}

/** ms per job: publish -> payment-required; eval paid (dev route called) -> quote; work paid -> result; each dev-route call. */
export interface Stages {
  intake: number[];
  evaluation: number[];
  work: number[];
  payCall: number[];
}

export interface FailoverTrial {
  leaseS: number;
  aiDelayMs: number;
  victim: string;
  survivor: string;
  leaseLeftMs: number; // lease_until - the kill, by the database's clock read just before the kill
  takeoverMs: number; // SIGKILL -> the survivor's `lease taken over` (its log line's time)
  resultMs: number; // SIGKILL -> the kind-6050 result at the subscriber
  results: number; // kind-6050 results on the relay for the job (1 expected)
}

export interface WorkersResult {
  aiDelayMs: number;
  rounds: ThroughputRound[];
  failover: FailoverTrial[];
  fsyncUs: number; // one 8 KiB write + fdatasync on PostgreSQL's disk, median
  pgVersion: string;
}

const SEED = process.env.BENCH_SEED ?? 'timmy-bench-workers';

/** A secret key derived from the seed: the same customers and identities on every run. */
function seededKey(...parts: (string | number)[]): Uint8Array {
  return createHash('sha256').update([SEED, ...parts].join(':')).digest();
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function paymentHash(bolt11: string): string {
  const s = decode(bolt11).sections.find((x) => x.name === 'payment_hash') as { value: string } | undefined;
  if (!s) throw new Error('invoice without a payment hash');
  return s.value;
}

/** Everything Timmy publishes for the jobs (kinds 7000 and 6050), stamped on arrival; waiters per job. */
class JobWatch {
  private readonly invoices = new Map<string, string[]>(); // job id -> bolt11 of each payment-required, in order
  private readonly results = new Map<string, { at: number; wall: number; n: number }>();
  private readonly seen = new Set<string>();
  private readonly waiters = new Map<string, (() => void)[]>();

  private constructor(readonly conn: RelayConn) {}

  static async start(url: string, timmy: string): Promise<JobWatch> {
    const conn = await RelayConn.connect(url);
    const w = new JobWatch(conn);
    await conn.subscribe([{ kinds: [7000, 6050], authors: [timmy], since: Math.floor(Date.now() / 1000) - 5 }], (ev, at) => w.onEvent(ev, at));
    return w;
  }

  private onEvent(ev: Event, at: number): void {
    if (this.seen.has(ev.id)) return;
    this.seen.add(ev.id);
    const jobId = tagOf(ev, 'e')?.[1];
    if (!jobId) return;
    if (ev.kind === 6050) {
      const r = this.results.get(jobId);
      this.results.set(jobId, r ? { ...r, n: r.n + 1 } : { at, wall: Date.now(), n: 1 });
    } else if (tagOf(ev, 'status')?.[1] === 'payment-required') {
      const bolt11 = tagOf(ev, 'amount')?.[2];
      if (!bolt11) return;
      const list = this.invoices.get(jobId) ?? [];
      list.push(bolt11);
      this.invoices.set(jobId, list);
    } else return;
    const ws = this.waiters.get(jobId);
    if (ws) {
      this.waiters.delete(jobId);
      for (const w of ws) w();
    }
  }

  private wait<T>(jobId: string, probe: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`no ${what} for job ${jobId.slice(0, 8)} within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        const v = probe();
        if (v !== undefined) {
          clearTimeout(deadline);
          resolve(v);
        } else {
          const ws = this.waiters.get(jobId) ?? [];
          ws.push(check);
          this.waiters.set(jobId, ws);
        }
      };
      check();
    });
  }

  /** The n-th (1-based) payment-required invoice of a job. */
  invoice(jobId: string, n: number, timeoutMs = 60_000): Promise<string> {
    return this.wait(jobId, () => this.invoices.get(jobId)?.[n - 1], `payment-required #${n}`, timeoutMs);
  }

  /** Arrival of the job's kind-6050 result: performance.now() and Date.now(). */
  result(jobId: string, timeoutMs = 60_000): Promise<{ at: number; wall: number }> {
    return this.wait(jobId, () => this.results.get(jobId), 'result', timeoutMs);
  }

  resultCount(jobId: string): number {
    return this.results.get(jobId)?.n ?? 0;
  }

  close(): void {
    this.conn.close();
  }
}

/** CPU time (ms) of PostgreSQL: the postmaster, the children it reaped, and its live children (backends, writers). */
function postgresCpuMs(databaseDir: string): number {
  const pid = Number(readFileSync(join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const stat = (p: number | string) => {
    const s = readFileSync(`/proc/${p}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  };
  const own = stat(pid);
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]); // utime stime cutime cstime
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const f = stat(entry);
      if (Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]); // ppid
    } catch {
      /* gone meanwhile */
    }
  }
  return ticks * 10;
}

/** Median time of an 8 KiB write + fdatasync in `dir`: what a durable commit waits for at least. */
function fsyncMicros(dir: string, n = 200): number {
  const path = join(dir, 'fsync-probe');
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(8192, 1);
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      writeSync(fd, buf, 0, buf.length, 0);
      fdatasyncSync(fd);
      samples.push((performance.now() - t0) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

interface Pg {
  url: string; // maintenance database
  databaseDir: string;
  stop(): Promise<void>;
}

/** The cluster's next transaction id and WAL position: write transactions and WAL bytes between two readings. */
async function pgCounters(pg: Pg): Promise<{ xid: number; lsn: string }> {
  return withPgClient(pg.url, async (c) => {
    const { rows } = await c.query<{ xid: string; lsn: string }>('select pg_current_xact_id()::text as xid, pg_current_wal_insert_lsn()::text as lsn');
    return { xid: Number(rows[0]!.xid), lsn: rows[0]!.lsn };
  });
}

async function walBytes(pg: Pg, from: string, to: string): Promise<number> {
  return withPgClient(pg.url, async (c) => Number((await c.query<{ b: string }>('select pg_wal_lsn_diff($1, $2)::text as b', [to, from])).rows[0]!.b));
}

async function freshDatabase(pg: Pg, name: string, settings: string[] = []): Promise<string> {
  await withPgClient(pg.url, async (c) => {
    await c.query(`create database ${name} template template0 encoding 'UTF8' locale 'C'`);
    for (const s of settings) await c.query(`alter database ${name} set ${s}`);
  });
  return databaseUrl(pg.url, name);
}

async function dropDatabase(pg: Pg, name: string): Promise<void> {
  await withPgClient(pg.url, (c) => c.query(`drop database if exists ${name} with (force)`));
}

const WORKER_ENV = {
  EMBEDDED_RELAY_PORT: 'off',
  LOG_LEVEL: 'warn',
  MAX_OPEN_UNPAID_PER_CLIENT: '1000000',
  MAX_OPEN_UNPAID_TOTAL: '1000000',
  POW_DIFFICULTY: '0',
  INVOICE_EXPIRY_S: '3600',
};

interface Fleet {
  relay: RelayProc;
  workers: (BenchDaemon & { id: string; logPath: string })[];
  dataDir: string;
  timmy: string;
  watch: JobWatch;
  stop(): Promise<void>;
}

/** A relay, then the first worker alone (it makes the shared keys in DATA_DIR), then the others together. */
async function startFleet(o: { round: string; n: number; databaseUrl?: string; env: Record<string, string> }): Promise<Fleet> {
  const relay = await startRelay();
  const dataDir = tempDir('timmy-bench-workers-');
  const sk = seededKey('timmy', o.round);
  const timmy = getPublicKey(sk);
  const workers: Fleet['workers'] = [];
  let watch: JobWatch | null = null;
  const stop = async () => {
    watch?.close();
    await Promise.all(workers.map((w) => w.kill()));
    await relay.stop();
    for (const d of [dataDir, dirname(relay.dbPath)]) rmSync(d, { recursive: true, force: true });
  };
  try {
    const spawn = async (i: number) => {
      const id = `w${i + 1}`;
      const logPath = join(dataDir, `${id}.log`);
      const env: Record<string, string> = { ...WORKER_ENV, ...o.env, NOSTR_SECRET_KEY: hex(sk), WORKER_ID: id };
      if (o.databaseUrl) env.DATABASE_URL = o.databaseUrl;
      const d = await spawnDaemon({ relays: [relay.url], dataDir, env, logPath, timeoutMs: 120_000 });
      workers[i] = { ...d, id, logPath };
    };
    await spawn(0);
    await Promise.all(Array.from({ length: o.n - 1 }, (_, i) => spawn(i + 1)));
    watch = await JobWatch.start(relay.url, timmy);
    return { relay, workers, dataDir, timmy, watch, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** JSON log lines of a worker at warn or above (logged at or after `since`, epoch ms). */
function warnLines(logPath: string, since = 0): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const l = JSON.parse(line) as Record<string, unknown>;
      if (typeof l.level === 'number' && l.level >= 40 && Number(l.time) >= since) out.push(l);
    } catch {
      /* partial line */
    }
  }
  return out;
}

async function pay(api: string, bolt11: string): Promise<void> {
  const res = await fetch(`${api}/api/dev/stub/pay/${paymentHash(bolt11)}`, { method: 'POST' });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`dev pay at ${api}: HTTP ${res.status} ${body}`);
}

/**
 * K customers in a closed loop until `jobs` jobs are done: each publishes a request, pays the evaluation and
 * then the work through the workers' dev routes in turn, and waits for the result before its next request.
 */
async function closedLoop(o: { fleet: Fleet; customers: { sk: Uint8Array; conn: RelayConn }[]; jobs: number; label: string; payCounter: { n: number } }): Promise<{ latencies: number[]; stages: Stages; first: number; last: number }> {
  const { fleet } = o;
  let issued = 0;
  const latencies: number[] = [];
  const stages: Stages = { intake: [], evaluation: [], work: [], payCall: [] };
  const payNext = async (bolt11: string) => {
    const t = performance.now();
    await pay(fleet.workers[o.payCounter.n++ % fleet.workers.length]!.api, bolt11);
    stages.payCall.push(performance.now() - t);
    return t;
  };
  let first = Infinity;
  let last = -Infinity;
  const loop = async (c: { sk: Uint8Array; conn: RelayConn }) => {
    while (issued < o.jobs) {
      const i = issued++;
      const event = finalizeEvent(
        {
          kind: 5050,
          created_at: Math.floor(Date.now() / 1000),
          tags: [['i', `${o.label} #${i}: summarise the history of the Lightning Network in three sentences`, 'text'], ['p', fleet.timmy]],
          content: '',
        },
        c.sk,
      ) as Event;
      const t0 = performance.now();
      first = Math.min(first, t0);
      const ok = await c.conn.publish(event);
      if (!ok.ok) throw new Error(`request refused by the relay: ${ok.message}`);
      const evalInvoice = await fleet.watch.invoice(event.id, 1);
      stages.intake.push(performance.now() - t0);
      const t1 = await payNext(evalInvoice);
      const workInvoice = await fleet.watch.invoice(event.id, 2);
      stages.evaluation.push(performance.now() - t1);
      const t2 = await payNext(workInvoice);
      const r = await fleet.watch.result(event.id);
      stages.work.push(r.at - t2);
      latencies.push(r.at - t0);
      last = Math.max(last, r.at);
    }
  };
  await Promise.all(o.customers.map(loop));
  return { latencies, stages, first, last };
}

async function throughputRound(o: {
  pg: Pg;
  label: string;
  backend: 'postgres' | 'sqlite';
  n: number;
  jobs: number;
  warmup: number;
  customers: number;
  aiDelayMs: number;
  env?: Record<string, string>;
  dbSettings?: string[]; // `alter database … set` for this round's database
}): Promise<ThroughputRound> {
  const round = `${o.backend}_${o.n}_${o.label.replace(/\W+/g, '_')}`.toLowerCase();
  const dbName = `bench_${round}`;
  const url = o.backend === 'postgres' ? await freshDatabase(o.pg, dbName, o.dbSettings) : undefined;
  progress(`workers: ${o.label}: starting ${o.n} worker(s)${url ? ' on a fresh PostgreSQL database' : ' on SQLite'}`);
  const fleet = await startFleet({ round, n: o.n, databaseUrl: url, env: { STUB_AI_DELAY_MS: String(o.aiDelayMs), ...o.env } });
  const customers: { sk: Uint8Array; conn: RelayConn }[] = [];
  try {
    for (let i = 0; i < o.customers; i++) customers.push({ sk: seededKey('customer', i), conn: await RelayConn.connect(fleet.relay.url) });
    const payCounter = { n: 0 };
    const loadFrom = Date.now(); // warnings before this are the workers' startup notices (stub payments, ...)
    await closedLoop({ fleet, customers, jobs: o.warmup, label: `${round} warm-up`, payCounter });
    const pids = fleet.workers.map((w) => w.pid);
    // Idle: what the workers' periodic passes (lease sweep, outbox tick, expiry...) cost with nothing to do.
    await sleep(1000);
    const idle0 = { workers: pids.map(cpuMs), relay: cpuMs(fleet.relay.child.pid!), postgres: postgresCpuMs(o.pg.databaseDir), at: performance.now() };
    await sleep(4000);
    const idleMs = performance.now() - idle0.at;
    const pct = (ms: number) => (100 * ms) / idleMs;
    const idle = {
      workersPct: pct(pids.reduce((a, p, i) => a + cpuMs(p) - idle0.workers[i]!, 0)),
      relayPct: pct(cpuMs(fleet.relay.child.pid!) - idle0.relay),
      postgresPct: pct(postgresCpuMs(o.pg.databaseDir) - idle0.postgres),
    };
    const pg0 = url ? await pgCounters(o.pg) : null;
    const cpu0 = { workers: pids.map(cpuMs), relay: cpuMs(fleet.relay.child.pid!), postgres: postgresCpuMs(o.pg.databaseDir), bench: process.cpuUsage() };
    progress(`workers: ${o.label}: ${o.jobs} jobs from ${o.customers} customers (after ${o.warmup} warm-up jobs)`);
    const run = await closedLoop({ fleet, customers, jobs: o.jobs, label: round, payCounter });
    const benchCpu = process.cpuUsage(cpu0.bench);
    const cpu = {
      workers: pids.map((p, i) => cpuMs(p) - cpu0.workers[i]!),
      relay: cpuMs(fleet.relay.child.pid!) - cpu0.relay,
      postgres: postgresCpuMs(o.pg.databaseDir) - cpu0.postgres,
      bench: (benchCpu.user + benchCpu.system) / 1000,
    };
    let invoicesPerJob: number | null = null;
    let writeTxPerJob: number | null = null;
    let walKbPerJob: number | null = null;
    if (pg0) {
      const pg1 = await pgCounters(o.pg);
      writeTxPerJob = (pg1.xid - pg0.xid - 1) / o.jobs; // the reading itself takes one xid
      walKbPerJob = (await walBytes(o.pg, pg0.lsn, pg1.lsn)) / 1024 / o.jobs;
    }
    if (url) {
      const { rows } = await withPgClient(url, (c) => c.query<{ inv: string; jobs: string }>('select (select count(*) from stub_invoices) as inv, (select count(*) from jobs) as jobs'));
      invoicesPerJob = Number(rows[0]!.inv) / Number(rows[0]!.jobs);
    }
    const elapsedMs = run.last - run.first;
    const warnings = fleet.workers.flatMap((w) => warnLines(w.logPath, loadFrom).map((l) => `${w.id}: ${String(l.msg)}`));
    const r: ThroughputRound = {
      label: o.label,
      backend: o.backend,
      workers: o.n,
      jobs: o.jobs,
      customers: o.customers,
      elapsedMs,
      rate: (o.jobs / elapsedMs) * 1000,
      latencies: run.latencies,
      stages: run.stages,
      cpuMs: cpu,
      idle,
      invoicesPerJob,
      writeTxPerJob,
      walKbPerJob,
      warnings,
    };
    progress(`workers: ${o.label}: ${r.rate.toFixed(1)} jobs/s over ${(elapsedMs / 1000).toFixed(1)} s; CPU s workers ${cpu.workers.map((c) => (c / 1000).toFixed(1)).join('+')}, relay ${(cpu.relay / 1000).toFixed(1)}, postgres ${(cpu.postgres / 1000).toFixed(1)}, bench ${(cpu.bench / 1000).toFixed(1)}; idle: workers ${idle.workersPct.toFixed(1)} %, postgres ${idle.postgresPct.toFixed(1)} %${writeTxPerJob === null ? '' : `; ${writeTxPerJob.toFixed(1)} write tx and ${walKbPerJob!.toFixed(1)} KiB WAL per job`}${warnings.length ? `; ${warnings.length} warnings, e.g. ${warnings[0]}` : ''}`);
    return r;
  } finally {
    for (const c of customers) c.conn.close();
    await fleet.stop();
    if (url) {
      // The workers' backends flushed their statistics as they exited: row writes per table, warm-up included.
      const total = o.jobs + o.warmup;
      const stats = await withPgClient(url, (c) =>
        c.query<{ relname: string; ins: string; upd: string; del: string }>(
          'select relname, n_tup_ins as ins, n_tup_upd as upd, n_tup_del as del from pg_stat_user_tables where n_tup_ins + n_tup_upd + n_tup_del > 0 order by n_tup_ins + n_tup_upd + n_tup_del desc',
        ),
      ).catch(() => null);
      if (stats) {
        const per = (v: string) => (Number(v) / total).toFixed(1);
        progress(`workers: ${o.label}: row writes per job (ins/upd/del): ${stats.rows.map((r) => `${r.relname} ${per(r.ins)}/${per(r.upd)}/${per(r.del)}`).join(', ')}`);
      }
      await dropDatabase(o.pg, dbName);
    }
  }
}

/** Reads the survivor's log until its `lease taken over` line for the job; returns the line's time (epoch ms). */
async function takeoverTime(logPath: string, jobId: string, timeoutMs: number): Promise<{ time: number; from: string; to: string }> {
  return until(
    () => {
      const l = warnLines(logPath).find((x) => x.msg === 'lease taken over' && x.jobId === jobId);
      return l ? { time: Number(l.time), from: String(l.from), to: String(l.to) } : undefined;
    },
    `lease taken over of ${jobId.slice(0, 8)}`,
    timeoutMs,
    20,
  );
}

async function failoverTrial(o: { pg: Pg; leaseS: number; aiDelayMs: number; trial: number }): Promise<FailoverTrial> {
  const round = `failover_${o.leaseS}_${o.trial}`;
  const url = await freshDatabase(o.pg, `bench_${round}`);
  progress(`workers: failover at LEASE_S=${o.leaseS} (trial ${o.trial + 1}): 2 workers, STUB_AI_DELAY_MS=${o.aiDelayMs}`);
  const fleet = await startFleet({ round, n: 2, databaseUrl: url, env: { LEASE_S: String(o.leaseS), STUB_AI_DELAY_MS: String(o.aiDelayMs) } });
  const conn = await RelayConn.connect(fleet.relay.url);
  try {
    const sk = seededKey('failover-customer', o.leaseS, o.trial);
    const event = finalizeEvent(
      { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['i', `failover ${round}: what does a payment hash commit to?`, 'text'], ['p', fleet.timmy]], content: '' },
      sk,
    ) as Event;
    await conn.publish(event);
    await pay(fleet.workers[0]!.api, await fleet.watch.invoice(event.id, 1));
    const workInvoice = await fleet.watch.invoice(event.id, 2, 60_000 + o.aiDelayMs);
    // Whoever settles the work invoice claims the step; pay through the second worker this time, and read the
    // lease holder from the database rather than assuming it.
    await pay(fleet.workers[1]!.api, workInvoice);
    const lease = await withPgClient(url, async (c) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { rows } = await c.query<{ state: string; lease_owner: string | null; lease_until: string | null; now: string }>(
          `select state, lease_owner, lease_until, (extract(epoch from clock_timestamp()) * 1000)::bigint as now from jobs where id = $1`,
          [event.id],
        );
        const r = rows[0];
        if (r?.state === 'executing' && r.lease_owner) return { owner: r.lease_owner, leaseLeftMs: Number(r.lease_until) - Number(r.now) };
        if (Date.now() > deadline) throw new Error(`job never executing under a lease: ${JSON.stringify(r)}`);
        await sleep(10);
      }
    });
    const victim = fleet.workers.find((w) => w.id === lease.owner);
    const survivor = fleet.workers.find((w) => w.id !== lease.owner)!;
    if (!victim) throw new Error(`lease held by an unknown worker ${lease.owner}`);
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    const takeover = await takeoverTime(survivor.logPath, event.id, (o.leaseS + 30) * 1000);
    const result = await fleet.watch.result(event.id, (o.leaseS + 60) * 1000 + o.aiDelayMs);
    await sleep(500); // a second result would show up now
    const trial: FailoverTrial = {
      leaseS: o.leaseS,
      aiDelayMs: o.aiDelayMs,
      victim: victim.id,
      survivor: survivor.id,
      leaseLeftMs: lease.leaseLeftMs,
      takeoverMs: takeover.time - killedAt,
      resultMs: result.wall - killedAt,
      results: fleet.watch.resultCount(event.id),
    };
    progress(`workers: failover LEASE_S=${o.leaseS}: ${victim.id} killed with ${trial.leaseLeftMs} ms of lease left; taken over by ${takeover.to} after ${trial.takeoverMs} ms, result after ${trial.resultMs} ms`);
    return trial;
  } finally {
    conn.close();
    await fleet.stop();
    await dropDatabase(o.pg, `bench_${round}`);
  }
}

export async function runWorkers(o: {
  jobs: number;
  warmup: number;
  customers: number;
  aiDelayMs: number;
  workerCounts: number[];
  sqlite: boolean;
  asyncCommit: boolean; // also 1 worker on PostgreSQL with synchronous_commit=off (a commit no longer waits for its fsync)
  failoverLeases: number[];
  failoverTrials: number;
  failoverDelayMs: number;
}): Promise<WorkersResult> {
  progress('workers: starting an embedded PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)');
  const pg: Pg = await startEmbedded(`bench-${process.pid}`, { durable: true });
  try {
    const pgVersion = await withPgClient(pg.url, async (c) => (await c.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v);
    const fsyncUs = fsyncMicros(pg.databaseDir);
    progress(`workers: PostgreSQL ${pgVersion}; 8 KiB write + fdatasync on its disk: ${fsyncUs.toFixed(0)} µs (median)`);
    const rounds: ThroughputRound[] = [];
    const base = { pg, jobs: o.jobs, warmup: o.warmup, customers: o.customers, aiDelayMs: o.aiDelayMs };
    for (const n of o.workerCounts) rounds.push(await throughputRound({ ...base, label: `${n} worker${n > 1 ? 's' : ''}, PostgreSQL`, backend: 'postgres', n }));
    if (o.asyncCommit) {
      rounds.push(await throughputRound({ ...base, label: '1 worker, PostgreSQL, synchronous_commit=off', backend: 'postgres', n: 1, dbSettings: ['synchronous_commit = off'] }));
    }
    if (o.sqlite) rounds.push(await throughputRound({ ...base, label: '1 worker, SQLite', backend: 'sqlite', n: 1 }));
    const failover: FailoverTrial[] = [];
    for (const leaseS of o.failoverLeases) {
      for (let t = 0; t < o.failoverTrials; t++) failover.push(await failoverTrial({ pg, leaseS, aiDelayMs: o.failoverDelayMs, trial: t }));
    }
    return { aiDelayMs: o.aiDelayMs, rounds, failover, fsyncUs, pgVersion };
  } finally {
    await pg.stop();
  }
}
