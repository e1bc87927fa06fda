// Benchmark 3: open work at scale. A fresh store is seeded with N open jobs (awaiting_eval_payment, each
// with its open stub invoice, its signed payment-required feedback acked by the relay) in one SQLite
// transaction; then the daemon (stub payments) starts on it. Measured side by side with the same daemon
// on an empty store: spawn -> /api/healthz 200, spawn -> payment-required of a request that was waiting
// on the relay, RSS after startup and after idling, and the intake rate with that backlog.
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Event } from 'nostr-tools';
import { startRelay, tempDir, type RelayProc } from '../../test/helpers/procs.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import { countJobsOf, getJob, jobExists, unpaidNostrJobIds } from '../../src/store/jobs.ts';
import { openInvoiceCount, liveInvoices } from '../../src/store/invoices.ts';
import { creditBalanceMsats } from '../../src/store/credits.ts';
import { UNPAID_JOB_STATES } from '../../src/core/job-machine.ts';
import { StubPayments } from '../../src/payments/stub.ts';
import { finalizeEvent, generateSecretKey, getPublicKey } from '../../src/nostr/crypto.ts';
import { spawnDaemon, type BenchDaemon } from './daemon.ts';
import { FeedbackWatch } from './relay-client.ts';
import { makeCustomers, intakeRun, signRequest, type Customer, type IntakeRun } from './customers.ts';
import { progress, sleep } from './common.ts';

export interface StartFigures {
  label: string;
  openJobs: number;
  healthyMs: number; // spawn -> first /api/healthz 200
  firstFeedbackMs: number; // spawn -> payment-required of a request already waiting on the relay
  rssStartKb: number; // right after that first payment-required
  rssIdleKb: number | null; // after idling
  intake: IntakeRun;
}

export interface BacklogResult {
  seeded: number;
  seedMs: number;
  probes: { capTotalMs: number; capCustomerMs: number; jobExistsMs: number; creditMs: number; unpaidIdsMs: number; getJobMs: number; openInvoicePageMs: number };
  idleS: number;
  empty: StartFigures;
  backlog: StartFigures;
  /** The backlog daemon, left running for the HTTP benchmark; call `stop()` when done. */
  api: string;
  daemonPid: number;
  sampleJobIds: string[];
  stop(): Promise<void>;
}

const DAEMON_ENV = {
  MAX_OPEN_UNPAID_PER_CLIENT: '100000000',
  MAX_OPEN_UNPAID_TOTAL: '100000000',
  INVOICE_EXPIRY_S: '86400',
};

function timeIt(fn: () => unknown, reps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

/** Seeds `n` open jobs into a fresh store in one transaction; returns a few of their ids. */
async function seed(dataDir: string, n: number, timmySk: Uint8Array, relayUrl: string): Promise<{ ms: number; ids: string[]; probes: BacklogResult['probes'] }> {
  const t0 = performance.now();
  const store = openSqliteStore(join(dataDir, 'timmy.db'));
  const db = store.db;
  // One real stub invoice and one real signed request / feedback: their text is reused for every row.
  const sample = await new StubPayments(store).createInvoice({ amountMsats: 10_000, memo: 'Timmy: evaluation fee for job 0123456789ab', expirySecs: 86_400 });
  const customers = Array.from({ length: Math.max(1, Math.ceil(n / 100)) }, () => randomBytes(32).toString('hex'));
  const customerSk = generateSecretKey();
  const requestJson = JSON.stringify(signRequest(customerSk, getPublicKey(timmySk), 'a backlog request: summarise the history of the Lightning Network in three sentences'));
  const feedback = finalizeEvent(
    {
      kind: 7000,
      created_at: Math.floor(Date.now() / 1000),
      tags: [['status', 'payment-required', 'Pay the evaluation fee of 10 sats to have your request reviewed.'], ['amount', '10000', sample.bolt11], ['e', '0'.repeat(64)], ['p', getPublicKey(customerSk)]],
      content: '',
    },
    timmySk,
  ) as Event;
  const signedJson = JSON.stringify(feedback);
  const intentJson = JSON.stringify({
    type: 'feedback',
    status: 'payment-required',
    message: 'Pay the evaluation fee of 10 sats to have your request reviewed.',
    amountMsats: 10_000,
    bolt11: sample.bolt11,
  });

  const raw = db.$client;
  const insJob = raw.prepare(
    `insert into jobs (id, kind, source, state, customer_pubkey, request_json, encryption, input, params_json, relays_json,
       eval_payment_hash, request_created_at, created_at, updated_at)
     values (?, 5050, 'nostr', 'awaiting_eval_payment', ?, ?, 'none', ?, '{}', '[]', ?, ?, ?, ?)`,
  );
  const insInvoice = raw.prepare(
    `insert into invoice_book (payment_hash, subject_kind, subject_id, purpose, account, amount_msats, bolt11, status, expires_at, created_at)
     values (?, 'job', ?, 'eval', ?, 10000, ?, 'open', ?, ?)`,
  );
  const insStub = raw.prepare(`insert into stub_invoices (payment_hash, preimage, bolt11, amount_msats, expires_at) values (?, ?, ?, 10000, ?)`);
  const insOutbox = raw.prepare(
    `insert into outbox (job_id, intent_json, event_id, signed_json, created_at, signed_at, acked_at, attempts) values (?, ?, ?, ?, ?, ?, ?, 1)`,
  );
  const insAck = raw.prepare(`insert into outbox_acks (outbox_id, relay, ok, message, at) values (?, ?, 1, '', ?)`);
  const now = Date.now();
  const expiresAt = Math.floor(now / 1000) + 86_400;
  const ids: string[] = [];
  raw.transaction(() => {
    for (let i = 0; i < n; i++) {
      const id = randomBytes(32).toString('hex');
      const preimage = randomBytes(32);
      const hash = createHash('sha256').update(preimage).digest('hex');
      const createdAt = now - 600_000 + Math.floor((i / n) * 600_000); // spread over the last 10 minutes
      insJob.run(id, customers[i % customers.length], requestJson, `backlog request #${i}: summarise the history of the Lightning Network`, hash, Math.floor(createdAt / 1000), createdAt, createdAt);
      insInvoice.run(hash, id, customers[i % customers.length], sample.bolt11, expiresAt, createdAt);
      insStub.run(hash, preimage.toString('hex'), sample.bolt11, expiresAt);
      const r = insOutbox.run(id, intentJson, randomBytes(32).toString('hex'), signedJson, createdAt, createdAt, createdAt + 5);
      insAck.run(r.lastInsertRowid, relayUrl, createdAt + 5);
      if (ids.length < 1000 && i % Math.max(1, Math.floor(n / 1000)) === 0) ids.push(id);
    }
    // The open-invoice counter the invoice book keeps in step with its rows (seeded here in bulk).
    raw.prepare(`insert into counters (name, value) values ('open_invoices:job', ?) on conflict(name) do update set value = value + excluded.value`).run(n);
  })();
  const ms = performance.now() - t0;
  // The queries the daemon runs per request / per tick, on this store, in this process.
  const probes = {
    // Per request: the total cap (one counter row), the customer's cap (bounded index range), dedupe, credit.
    capTotalMs: timeIt(() => openInvoiceCount(db, 'job'), 200),
    capCustomerMs: timeIt(() => countJobsOf(db, UNPAID_JOB_STATES, { customerPubkey: customers[0]! }, 5), 200),
    jobExistsMs: timeIt(() => jobExists(db, ids[1]!), 200),
    creditMs: timeIt(() => creditBalanceMsats(db, customers[0]!), 200),
    unpaidIdsMs: timeIt(() => unpaidNostrJobIds(db, 500), 5),
    getJobMs: timeIt(() => getJob(db, ids[0]!), 200),
    openInvoicePageMs: timeIt(() => liveInvoices(db, '', 500), 5),
  };
  await store.close();
  return { ms, ids, probes };
}

async function startAndMeasure(o: {
  label: string;
  dataDir: string;
  openJobs: number;
  relay: RelayProc;
  watch: FeedbackWatch;
  customers: Customer[];
  timmySk: Uint8Array;
  intakeN: number;
  idleS: number;
}): Promise<{ figures: StartFigures; daemon: BenchDaemon }> {
  const timmy = getPublicKey(o.timmySk);
  // A request already waiting on the relay when the daemon starts.
  const waiting = signRequest(o.customers[0]!.sk, timmy, `${o.label}: the first request after the restart`);
  await o.customers[0]!.conn.publish(waiting);
  progress(`backlog: starting the daemon on the ${o.label} store`);
  const daemon = await spawnDaemon({
    relays: [o.relay.url],
    dataDir: o.dataDir,
    env: { ...DAEMON_ENV, NOSTR_SECRET_KEY: Buffer.from(o.timmySk).toString('hex') },
    timeoutMs: 120_000,
  });
  try {
    const firstAt = await o.watch.waitFor(waiting.id, 'payment-required', 1, 120_000);
    const healthyMs = daemon.healthyAt - daemon.spawnedAt;
    const firstFeedbackMs = firstAt - daemon.spawnedAt;
    await sleep(200);
    const rssStartKb = daemon.rssKb();
    progress(`backlog (${o.label}): healthy after ${healthyMs.toFixed(0)} ms, first payment-required after ${firstFeedbackMs.toFixed(0)} ms, RSS ${(rssStartKb / 1024).toFixed(0)} MB`);
    let rssIdleKb: number | null = null;
    if (o.idleS > 0) {
      progress(`backlog (${o.label}): idling ${o.idleS} s`);
      await sleep(o.idleS * 1000);
      rssIdleKb = daemon.rssKb();
    }
    // Two bursts, the faster one reported: the rate is bound by the relay process, and a single burst
    // varied by ±20 % from run to run (JIT warm-up, the relay's own store growing).
    const bursts: IntakeRun[] = [];
    for (const k of [1, 2]) {
      progress(`backlog (${o.label}): ${o.intakeN} new requests through the relay (burst ${k} of 2)`);
      bursts.push(
        await intakeRun({
          customers: o.customers, watch: o.watch, timmy, n: o.intakeN, label: `${o.label} intake ${k}`, daemonPid: daemon.pid, relayPid: o.relay.child.pid!,
        }),
      );
    }
    const intake = bursts.reduce((a, b) => (b.rate > a.rate ? b : a));
    progress(`backlog (${o.label}): intake ${intake.rate.toFixed(0)} requests/s (daemon CPU ${intake.daemonCpuMs} ms, relay CPU ${intake.relayCpuMs} ms)`);
    return { figures: { label: o.label, openJobs: o.openJobs, healthyMs, firstFeedbackMs, rssStartKb, rssIdleKb, intake }, daemon };
  } catch (err) {
    await daemon.kill();
    throw err;
  }
}

export async function runBacklog(o: { jobs: number; intakeN: number; idleS: number; customers: number }): Promise<BacklogResult> {
  const relay = await startRelay();
  const timmySk = generateSecretKey();
  const watch = await FeedbackWatch.start(relay.url, getPublicKey(timmySk));
  const customers = await makeCustomers(relay.url, o.customers);
  let daemon: BenchDaemon | null = null;
  const dirs = [dirname(relay.dbPath)];
  const stop = async () => {
    for (const c of customers) c.conn.close();
    watch.close();
    await daemon?.kill();
    await relay.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    // Baseline: the same daemon on an empty store (the schema is created at start).
    const emptyDir = tempDir('timmy-bench-empty-');
    dirs.push(emptyDir);
    const emptyRun = await startAndMeasure({ label: 'empty', dataDir: emptyDir, openJobs: 0, relay, watch, customers, timmySk, intakeN: o.intakeN, idleS: 0 });
    await emptyRun.daemon.kill();

    progress(`backlog: seeding ${o.jobs.toLocaleString('en-US')} open jobs`);
    const dataDir = tempDir('timmy-bench-backlog-');
    dirs.push(dataDir);
    const seeded = await seed(dataDir, o.jobs, timmySk, relay.url);
    progress(`backlog: seeded in ${(seeded.ms / 1000).toFixed(1)} s; per-request probes ${(seeded.probes.capTotalMs + seeded.probes.capCustomerMs + seeded.probes.jobExistsMs + seeded.probes.creditMs).toFixed(3)} ms, unpaidNostrJobIds(500) ${seeded.probes.unpaidIdsMs.toFixed(1)} ms`);
    const backlogRun = await startAndMeasure({ label: 'backlog', dataDir, openJobs: o.jobs, relay, watch, customers, timmySk, intakeN: o.intakeN, idleS: o.idleS });
    daemon = backlogRun.daemon;
    return {
      seeded: o.jobs,
      seedMs: seeded.ms,
      probes: seeded.probes,
      idleS: o.idleS,
      empty: emptyRun.figures,
      backlog: backlogRun.figures,
      api: backlogRun.daemon.api,
      daemonPid: backlogRun.daemon.pid,
      sampleJobIds: seeded.ids,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
