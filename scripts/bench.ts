// `npm run bench`: Timmy's benchmarks, side by side in one run. Figures only, never assertions:
// progress on stderr, a markdown table on stdout (machine facts first). Sizes scale with BENCH_SCALE
// (default 1, a run of about 7 minutes on 2 cores, 4½ of them benchmark 6) and each can be set alone
// (BENCH_INGEST_N, ...).
// BENCH_ONLY=ingest,latency,backlog,http,stream,workers runs a subset. Only 127.0.0.1 is ever a network target.
//
//   1. ingest    signed kind-5050 requests/s from intake.handle to a signed, stored payment-required
//                (in process, stub payments, no relay), against the crypto ceiling (1 verify + 1 sign),
//                with nostr-wasm and with the pure-JS verifier swapped in by a module hook
//   2. latency   LNbits-fake settlement -> `processing` at a subscriber of a real relay: websocket push,
//                and polling with the websocket refused; and the same over NWC notifications (fake wallet)
//   3. backlog   100,000 open jobs seeded into a fresh store: restart-to-serving, RSS, intake rate,
//                beside the same daemon on an empty store
//   4. http      GET /api/jobs/:id at concurrency 64 with autocannon, against the backlog daemon
//   5. stream    time to first token through POST /v1/chat/completions streamed, against the whole answer
//                without streaming, on the Anthropic fake at a fixed token rate
//   6. workers   paid jobs/s end to end with 1, 2 and 4 workers on one durable PostgreSQL (stub AI taking
//                BENCH_WORKERS_AI_MS per call), the ratio to 1 worker, 1 worker on SQLite; failover time
//                after a SIGKILL of the worker holding a work step's lease, at LEASE_S=5 and 30
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { initCrypto } from '../src/nostr/crypto.ts';
import { count, fmt, markdownTable, progress, runChild, seconds, SCALE, summary, type Row } from './bench/common.ts';
import type { IngestResult } from './bench/ingest.ts';
import { runLatency } from './bench/latency.ts';
import { runBacklog, type BacklogResult } from './bench/backlog.ts';
import { runHttp } from './bench/http.ts';
import { runStream } from './bench/stream.ts';
import { runWorkers } from './bench/workers.ts';

const SECTIONS = ['ingest', 'latency', 'backlog', 'http', 'stream', 'workers'] as const;
const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const enabled = (s: (typeof SECTIONS)[number]) => only.length === 0 || only.includes(s);

const sizes = {
  ingestN: count('INGEST_N', 3000, 200),
  ingestWarmup: count('INGEST_WARMUP', 300, 50),
  latencyJobs: count('LATENCY_JOBS', 1000, 20),
  nwcJobs: count('NWC_JOBS', 200, 10),
  pollJobs: count('POLL_JOBS', 50, 10),
  customers: Number(process.env.BENCH_CUSTOMERS ?? 10),
  pollIntervalS: seconds('POLL_INTERVAL_S', 2),
  backlogJobs: count('BACKLOG_JOBS', 100_000, 1000),
  backlogIntake: count('BACKLOG_INTAKE', 500, 50),
  idleS: seconds('IDLE_S', 30),
  httpS: seconds('HTTP_S', 10),
  httpConnections: Number(process.env.BENCH_HTTP_CONNECTIONS ?? 64),
  streamN: count('STREAM_N', 10, 3),
  streamTps: seconds('STREAM_TPS', 100), // tokens per second of the fake (not scaled)
  streamTokens: count('STREAM_TOKENS', 200, 20),
  workersJobs: count('WORKERS_JOBS', 500, 20),
  workersWarmup: count('WORKERS_WARMUP', 40, 4),
  workersCustomers: Number(process.env.BENCH_WORKERS_CUSTOMERS ?? 40),
  workersAiMs: seconds('WORKERS_AI_MS', 200), // ms per stub AI call (not scaled)
  workerCounts: (process.env.BENCH_WORKERS_COUNTS ?? '1,2,4').split(',').map(Number),
  failoverLeases: (process.env.BENCH_FAILOVER_LEASES ?? '5,30').split(',').filter(Boolean).map(Number),
  failoverTrials: count('FAILOVER_TRIALS', 2, 1),
  failoverAiMs: seconds('FAILOVER_AI_MS', 3000), // ms per stub AI call in the failover runs (not scaled)
};

const rows: Row[] = [];
const failed = (bench: string, err: unknown) => {
  progress(`${bench}: FAILED: ${(err as Error).stack ?? String(err)}`);
  rows.push({ bench, metric: 'benchmark failed', value: 'n/a', note: String((err as Error).message ?? err).slice(0, 200) });
};

async function ingest(): Promise<void> {
  const entry = join(import.meta.dirname, 'bench', 'ingest-child.ts');
  const env = { BENCH_INGEST_N: String(sizes.ingestN), BENCH_INGEST_WARMUP: String(sizes.ingestWarmup) };
  progress(`ingest: ${sizes.ingestN} requests (+${sizes.ingestWarmup} warm-up) per run, each run in its own process`);
  const wasm = await runChild<IngestResult>(entry, { ...env, BENCH_VERIFY: 'wasm' }, 600_000);
  const pure = await runChild<IngestResult>(entry, { ...env, BENCH_VERIFY: 'purejs' }, 600_000);
  if (pure.pureVerifyCalls < pure.signedRows) throw new Error(`the pure-JS verifier was not swapped in (${pure.pureVerifyCalls} calls)`);
  const where = 'in process, stub payments, no relay (stub pool acks at once)';
  const ratio = wasm.rate / wasm.ceiling.rate;
  rows.push(
    { bench: '1', metric: 'ingest: intake.handle -> signed + stored payment-required, nostr-wasm', value: fmt.rate(wasm.rate), note: `${wasm.n} requests in ${fmt.s(wasm.elapsedMs)}, ${where}` },
    {
      bench: '1',
      metric: 'crypto ceiling: 1 schnorr verify + 1 sign, nostr-wasm',
      value: fmt.rate(wasm.ceiling.rate),
      note: `verify ${fmt.us(wasm.ceiling.verifyUs)} + sign ${fmt.us(wasm.ceiling.signUs)} (pair ${fmt.us(wasm.ceiling.pairUs)})`,
    },
    { bench: '1', metric: 'ingest / ceiling, nostr-wasm', value: fmt.pct(ratio), target: '≥ 70 %', met: ratio >= 0.7, note: `pipeline cost per request ${fmt.us(1e6 / wasm.rate)} vs ${fmt.us(wasm.ceiling.pairUs)} of crypto` },
    {
      bench: '1',
      metric: 'ingest, pure-JS verify (nostr-tools/pure swapped in by a module hook)',
      value: fmt.rate(pure.rate),
      note: `${pure.n} requests in ${fmt.s(pure.elapsedMs)}; signing stays nostr-wasm; ${pure.pureVerifyCalls} pure-JS verify calls counted`,
    },
    {
      bench: '1',
      metric: 'crypto ceiling: 1 pure-JS verify + 1 nostr-wasm sign',
      value: fmt.rate(pure.ceiling.rate),
      note: `verify ${fmt.us(pure.ceiling.verifyUs)} + sign ${fmt.us(pure.ceiling.signUs)}`,
    },
    { bench: '1', metric: 'ingest / ceiling, pure-JS verify', value: fmt.pct(pure.rate / pure.ceiling.rate) },
    {
      bench: '1',
      metric: 'ingest speed-up of nostr-wasm over pure-JS verify',
      value: `× ${(wasm.rate / pure.rate).toFixed(2)}`,
      note: `verify alone: × ${(pure.ceiling.verifyUs / wasm.ceiling.verifyUs).toFixed(1)}`,
    },
    { bench: '1', metric: 'stub invoice (bolt11 encode + ECDSA sign + insert), per request', value: fmt.us(wasm.bolt11InvoiceUs), note: `${fmt.pct(wasm.bolt11InvoiceUs / (1e6 / wasm.rate))} of the per-request pipeline cost` },
  );
}

async function latency(): Promise<void> {
  progress(`latency: ${sizes.latencyJobs} jobs over the websocket, ${sizes.pollJobs} while polling every ${sizes.pollIntervalS} s, ${sizes.customers} customers`);
  const r = await runLatency({ jobs: sizes.latencyJobs, nwcJobs: sizes.nwcJobs, pollJobs: sizes.pollJobs, customers: sizes.customers, pollIntervalS: sizes.pollIntervalS });
  const nwc = summary(r.nwc);
  const ws = summary([...r.wsEval, ...r.wsWork]);
  const ev = summary(r.wsEval);
  const wk = summary(r.wsWork);
  const poll = summary(r.poll);
  const path = 'LNbits fake -> daemon -> real relay process -> raw subscriber';
  rows.push(
    {
      bench: '2',
      metric: `pay -> processing, LNbits websocket, p50 (${ws.n} payments)`,
      value: fmt.ms(ws.p50),
      target: '≤ 50 ms',
      met: ws.p50 <= 50,
      note: `eval ${fmt.ms(ev.p50)}, work ${fmt.ms(wk.p50)}; ${path}`,
    },
    {
      bench: '2',
      metric: 'pay -> processing, LNbits websocket, p99',
      value: fmt.ms(ws.p99),
      target: '≤ 250 ms',
      met: ws.p99 <= 250,
      note: `eval ${fmt.ms(ev.p99)}, work ${fmt.ms(wk.p99)}, max ${fmt.ms(ws.max)}`,
    },
    {
      bench: '2',
      metric: `pay -> processing, NWC payment_received notifications, p50 / p99 (${nwc.n} payments)`,
      value: `${fmt.ms(nwc.p50)} / ${fmt.ms(nwc.p99)}`,
      note: `fake NIP-47 wallet service -> relay -> daemon (NIP-44 decrypt) -> relay -> subscriber; beside the LNbits websocket's ${fmt.ms(ws.p50)} / ${fmt.ms(ws.p99)}`,
    },
    {
      bench: '2',
      metric: `pay -> processing, websocket refused, polling every ${r.pollIntervalS} s, p50 (${poll.n} payments)`,
      value: fmt.ms(poll.p50),
      target: '≤ 50 ms',
      met: poll.p50 <= 50,
      note: `bound by the poll interval (expected ≈ ${r.pollIntervalS * 500} ms); × ${(poll.p50 / ws.p50).toFixed(0)} the websocket p50`,
    },
    {
      bench: '2',
      metric: 'pay -> processing, polling, p99',
      value: fmt.ms(poll.p99),
      target: '≤ 250 ms',
      met: poll.p99 <= 250,
      note: `max ${fmt.ms(poll.max)}; websocket clients during the polling run: ${r.wsClientsDuringPoll}`,
    },
    {
      bench: '2',
      metric: `intake via relay, LNbits fake invoices (burst of ${r.intake.n} from ${r.customers} customers)`,
      value: fmt.rate(r.intake.rate),
      note: `${fmt.s(r.intake.elapsedMs)}; CPU daemon ${fmt.s(r.intake.daemonCpuMs)}, relay ${fmt.s(r.intake.relayCpuMs)}`,
    },
  );
}

async function backlogAndHttp(): Promise<void> {
  let b: BacklogResult | null = null;
  try {
    if (enabled('backlog') || enabled('http')) {
      progress(`backlog: ${sizes.backlogJobs.toLocaleString('en-US')} open jobs, ${sizes.backlogIntake} new requests, ${sizes.idleS} s idle`);
      b = await runBacklog({
        jobs: enabled('backlog') ? sizes.backlogJobs : Math.min(sizes.backlogJobs, 10_000),
        intakeN: sizes.backlogIntake,
        idleS: enabled('backlog') ? sizes.idleS : 0,
        customers: sizes.customers,
      });
    }
    if (b && enabled('backlog')) {
      const { empty: e, backlog: k } = b;
      const n = b.seeded.toLocaleString('en-US');
      rows.push(
        { bench: '3', metric: `seed ${n} open jobs (job + invoice + stub invoice + acked feedback), one transaction`, value: fmt.s(b.seedMs) },
        {
          bench: '3',
          metric: `spawn -> /api/healthz 200, ${n} open jobs`,
          value: fmt.s(k.healthyMs),
          target: '≤ 5 s',
          met: k.healthyMs <= 5000,
          note: `empty store ${fmt.s(e.healthyMs)} (× ${(k.healthyMs / e.healthyMs).toFixed(1)})`,
        },
        {
          bench: '3',
          metric: `spawn -> payment-required of a waiting request, ${n} open jobs`,
          value: fmt.s(k.firstFeedbackMs),
          target: '≤ 5 s',
          met: k.firstFeedbackMs <= 5000,
          note: `empty store ${fmt.s(e.firstFeedbackMs)} (× ${(k.firstFeedbackMs / e.firstFeedbackMs).toFixed(1)})`,
        },
        {
          bench: '3',
          metric: 'daemon RSS (VmRSS) after startup',
          value: fmt.mib(k.rssStartKb),
          target: '≤ 150 MiB',
          met: k.rssStartKb <= 150 * 1024,
          note: `empty store ${fmt.mib(e.rssStartKb)}`,
        },
        {
          bench: '3',
          metric: `daemon RSS (VmRSS) after ${b.idleS} s idle`,
          value: k.rssIdleKb === null ? 'n/a' : fmt.mib(k.rssIdleKb),
          target: '≤ 150 MiB',
          met: k.rssIdleKb === null ? undefined : k.rssIdleKb <= 150 * 1024,
        },
        {
          bench: '3',
          metric: `intake via relay with ${n} open jobs (best of 2 bursts of ${k.intake.n})`,
          value: fmt.rate(k.intake.rate),
          note: `empty store ${fmt.rate(e.intake.rate)} (ratio ${fmt.pct(k.intake.rate / e.intake.rate)}); CPU daemon ${fmt.s(k.intake.daemonCpuMs)} / relay ${fmt.s(k.intake.relayCpuMs)} (empty: ${fmt.s(e.intake.daemonCpuMs)} / ${fmt.s(e.intake.relayCpuMs)})`,
        },
        {
          bench: '3',
          metric: `store probes on ${n} open jobs (queries the daemon runs)`,
          value: fmt.ms(b.probes.capTotalMs + b.probes.capCustomerMs + b.probes.jobExistsMs + b.probes.creditMs),
          note: `per request (target <= 0.1 ms): open-invoice counter ${fmt.ms(b.probes.capTotalMs)}, customer cap ${fmt.ms(b.probes.capCustomerMs)}, dedupe ${fmt.ms(b.probes.jobExistsMs)}, credit ${fmt.ms(b.probes.creditMs)}; unpaidNostrJobIds(500) per deletion refresh ${fmt.ms(b.probes.unpaidIdsMs)}; getJob ${fmt.ms(b.probes.getJobMs)}; openInvoices page of 500 ${fmt.ms(b.probes.openInvoicePageMs)}`,
        },
      );
    }
    if (b && enabled('http')) {
      try {
        const h = await runHttp({ api: b.api, ids: b.sampleJobIds, connections: sizes.httpConnections, durationS: sizes.httpS, daemonPid: b.daemonPid });
        rows.push(
          {
            bench: '4',
            metric: `GET /api/jobs/:id, ${h.connections} connections, ${h.durationS} s (autocannon)`,
            value: fmt.rate(h.rate),
            note: `${fmt.int(h.requests)} 2xx over ${h.ids} job ids awaiting payment, store of ${b.seeded.toLocaleString('en-US')} open jobs; non-2xx ${h.non2xx}, errors ${h.errors}; daemon CPU ${fmt.pct(h.daemonCpuMs / (h.durationS * 1000))} of one core`,
          },
          { bench: '4', metric: 'GET /api/jobs/:id latency p50 / p99', value: `${fmt.ms(h.p50)} / ${fmt.ms(h.p99)}`, note: `max ${fmt.ms(h.max)}; autocannon shares the 2 cores with the daemon and the relay` },
        );
      } catch (err) {
        failed('4', err);
      }
    }
  } finally {
    await b?.stop();
  }
}

async function stream(): Promise<void> {
  const r = await runStream({ n: sizes.streamN, tokensPerSecond: sizes.streamTps, answerTokens: sizes.streamTokens });
  const ttft = summary(r.ttft);
  const total = summary(r.streamTotal);
  const whole = summary(r.whole);
  const fake = `Anthropic fake at ${r.tokensPerSecond} tokens/s, ${r.answerTokens}-token answers, ${r.n} requests per mode, alternating, one session`;
  rows.push(
    { bench: '5', metric: 'POST /v1/chat/completions, stream: true: time to first token, p50', value: fmt.ms(ttft.p50), note: `p90 ${fmt.ms(ttft.p90)}, max ${fmt.ms(ttft.max)}; ${fake}` },
    { bench: '5', metric: 'POST /v1/chat/completions, not streamed: the whole answer, p50', value: fmt.ms(whole.p50), note: `p90 ${fmt.ms(whole.p90)}, max ${fmt.ms(whole.max)}; × ${(whole.p50 / ttft.p50).toFixed(0)} the streamed time to first token` },
    { bench: '5', metric: 'POST /v1/chat/completions, stream: true: to data: [DONE], p50', value: fmt.ms(total.p50), note: `the model's own pace: ${fmt.ms((1000 * r.answerTokens) / r.tokensPerSecond)} for the answer` },
  );
}

async function workers(): Promise<void> {
  const r = await runWorkers({
    jobs: sizes.workersJobs,
    warmup: sizes.workersWarmup,
    customers: sizes.workersCustomers,
    aiDelayMs: sizes.workersAiMs,
    workerCounts: sizes.workerCounts,
    sqlite: true,
    asyncCommit: process.env.BENCH_WORKERS_ASYNC_COMMIT !== '0',
    failoverLeases: sizes.failoverLeases,
    failoverTrials: sizes.failoverTrials,
    failoverDelayMs: sizes.failoverAiMs,
  });
  const one = r.rounds.find((x) => x.backend === 'postgres' && x.workers === 1 && !x.label.includes('synchronous_commit'));
  const sqlite = r.rounds.find((x) => x.backend === 'sqlite');
  const cpuNote = (x: (typeof r.rounds)[number]) => {
    const per = (ms: number) => (ms / x.jobs).toFixed(1);
    const total = x.cpuMs.workers.reduce((a, b) => a + b, 0) + x.cpuMs.relay + x.cpuMs.postgres + x.cpuMs.bench;
    return `CPU ms per job: workers ${per(x.cpuMs.workers.reduce((a, b) => a + b, 0))}, relay ${per(x.cpuMs.relay)}, PostgreSQL ${per(x.cpuMs.postgres)}, load generator ${per(x.cpuMs.bench)} (${fmt.pct(total / x.elapsedMs / availableParallelism())} of ${availableParallelism()} cores)`;
  };
  for (const x of r.rounds) {
    const l = summary(x.latencies);
    const ratio = one && x.backend === 'postgres' && x !== one ? `; × ${(x.rate / one.rate).toFixed(2)} of 1 worker (durable)` : '';
    const vs = x.backend === 'sqlite' && one ? `; PostgreSQL 1 worker / SQLite: ${fmt.pct(one.rate / x.rate)}` : '';
    rows.push(
      {
        bench: '6',
        metric: `paid jobs/s, ${x.label} (${x.jobs} jobs, ${x.customers} customers in a closed loop)`,
        value: fmt.rate(x.rate),
        note: `${fmt.s(x.elapsedMs)}${ratio}${vs}; ${cpuNote(x)}${x.warnings.length ? `; ${x.warnings.length} warnings in the logs, e.g. ${x.warnings[0]}` : ''}`,
      },
      {
        bench: '6',
        metric: `request -> result, ${x.label}, p50 / p99`,
        value: `${fmt.ms(l.p50)} / ${fmt.ms(l.p99)}`,
        note: `max ${fmt.ms(l.max)}; p50 of the stages: request -> payment-required ${fmt.ms(summary(x.stages.intake).p50)}, eval paid -> quote ${fmt.ms(summary(x.stages.evaluation).p50)}, work paid -> result ${fmt.ms(summary(x.stages.work).p50)} (each with a stub AI call of ${r.aiDelayMs} ms), dev-route pay call ${fmt.ms(summary(x.stages.payCall).p50)}`,
      },
    );
    const idle = `idle (no open job, 4 s): workers ${x.idle.workersPct.toFixed(1)} % of a core, PostgreSQL ${x.idle.postgresPct.toFixed(1)} %, relay ${x.idle.relayPct.toFixed(1)} %`;
    if (x.writeTxPerJob !== null && x.walKbPerJob !== null && x.invoicesPerJob !== null) {
      rows.push({
        bench: '6',
        metric: `PostgreSQL per job, ${x.label}: write transactions / WAL`,
        value: `${x.writeTxPerJob.toFixed(1)} / ${x.walKbPerJob.toFixed(1)} KiB`,
        note: `stub invoices made per job ${x.invoicesPerJob.toFixed(2)} (2 shown; the rest by the workers that lost the intake race); ${idle}`,
      });
    } else {
      rows.push({ bench: '6', metric: `idle, ${x.label}`, value: `${x.idle.workersPct.toFixed(1)} %`, note: idle });
    }
  }
  for (const x of r.rounds) {
    if (x.backend === 'postgres' && x.workers > 1 && one && !x.label.includes('synchronous_commit')) rows.push({ bench: '6', metric: `ratio to 1 worker, ${x.workers} workers`, value: `× ${(x.rate / one.rate).toFixed(2)}` });
  }
  if (one && sqlite) rows.push({ bench: '6', metric: '1 worker: PostgreSQL / SQLite', value: fmt.pct(one.rate / sqlite.rate), note: `${fmt.rate(one.rate)} vs ${fmt.rate(sqlite.rate)}; PostgreSQL ${r.pgVersion} fsyncs every commit (8 KiB write + fdatasync here: ${fmt.us(r.fsyncUs)} median), SQLite WAL + synchronous=NORMAL does not` });
  for (const leaseS of [...new Set(r.failover.map((f) => f.leaseS))]) {
    const trials = r.failover.filter((f) => f.leaseS === leaseS);
    const list = (k: 'takeoverMs' | 'resultMs' | 'leaseLeftMs') => trials.map((f) => fmt.s(f[k])).join(', ');
    rows.push(
      {
        bench: '6',
        metric: `failover, LEASE_S=${leaseS}: SIGKILL of the lease holder -> survivor's 'lease taken over'`,
        value: list('takeoverMs'),
        note: `${trials.length} trial(s), 2 workers, work step in flight; lease left at the kill ${list('leaseLeftMs')} (renewed every LEASE_S/3; the sweep runs every second)`,
      },
      {
        bench: '6',
        metric: `failover, LEASE_S=${leaseS}: SIGKILL -> the result on the relay`,
        value: list('resultMs'),
        note: `includes the work step run again (stub AI ${trials[0]!.aiDelayMs} ms); results per job: ${trials.map((f) => f.results).join(', ')}`,
      },
    );
  }
}

async function main(): Promise<void> {
  await initCrypto();
  const t0 = performance.now();
  progress(`BENCH_SCALE=${SCALE}; sizes ${JSON.stringify(sizes)}`);
  if (enabled('ingest')) await ingest().catch((err) => failed('1', err));
  if (enabled('latency')) await latency().catch((err) => failed('2', err));
  if (enabled('backlog') || enabled('http')) await backlogAndHttp().catch((err) => failed('3', err));
  if (enabled('stream')) await stream().catch((err) => failed('5', err));
  if (enabled('workers')) await workers().catch((err) => failed('6', err));
  const totalS = (performance.now() - t0) / 1000;
  progress(`done in ${totalS.toFixed(0)} s`);

  const facts = [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory, Linux ${release()}`,
    `- node ${process.version}; BENCH_SCALE=${SCALE}; whole run ${totalS.toFixed(0)} s`,
  ];
  process.stdout.write(`${facts.join('\n')}\n\n${markdownTable(rows)}\n`);
}

await main();
process.exit(0);
