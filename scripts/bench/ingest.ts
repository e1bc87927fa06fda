// Benchmark 1: ingest vs the crypto ceiling, in process. The daemon's own builders (buildBackends,
// buildCore, buildNostr: store on a temp file, stub payments, stub agent, the core, intake and outbox with
// the real event factory); only the outbox's way out is a transport that takes every event and acks it at
// once (no relay, no socket in the path). N pre-signed kind-5050 requests go through
// `intake.handle(relay, 'timmy-requests', event)`; the clock stops when N payment-required feedback
// events are signed, stored in the outbox and handed to the pool.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Event, EventTemplate } from 'nostr-tools';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import { StubPayments } from '../../src/payments/stub.ts';
import { buildBackends, buildCore, buildNostr, NostrPorts } from '../../src/daemon.ts';
import { REQUESTS_SUB } from '../../src/nostr/intake.ts';
import { initCrypto, finalizeEvent, verifyEvent, generateSecretKey, getPublicKey } from '../../src/nostr/crypto.ts';
import { progress, sleep, until } from './common.ts';

export interface IngestResult {
  mode: 'wasm' | 'purejs';
  relayInPath: false;
  n: number;
  elapsedMs: number;
  rate: number; // requests/s, intake -> signed + stored payment-required
  ceiling: { verifyUs: number; signUs: number; pairUs: number; rate: number };
  bolt11InvoiceUs: number; // StubPayments.createInvoice (encode + sign + insert), µs
  pureVerifyCalls: number; // calls that went through the pure-JS stand-in (0 in wasm mode)
  signedRows: number;
  accepted: number;
}

const CUSTOMERS = 100;

/** Fresh objects as a relay would hand them over (no cached verification flags). */
function wire(events: Event[]): Event[] {
  return events.map((e) => JSON.parse(JSON.stringify(e)) as Event);
}

function signRequests(count: number, timmy: string, keys: Uint8Array[], tag: string): Event[] {
  const now = Math.floor(Date.now() / 1000);
  const out: Event[] = [];
  for (let i = 0; i < count; i++) {
    const t: EventTemplate = {
      kind: 5050,
      created_at: now,
      tags: [
        ['i', `benchmark request ${tag} #${i}: summarise the history of the Lightning Network in three sentences`, 'text'],
        ['p', timmy],
        ['relays', 'wss://relay.example.com'],
      ],
      content: '',
    };
    out.push(finalizeEvent(t, keys[i % keys.length]!) as Event);
  }
  return wire(out);
}

/** One schnorr verify of a request + one sign of a payment-required feedback, per request. */
function measureCeiling(requests: Event[], sk: Uint8Array, bolt11: string): IngestResult['ceiling'] {
  const template = (req: Event): EventTemplate => ({
    kind: 7000,
    created_at: Math.floor(Date.now() / 1000),
    tags: [
      ['status', 'payment-required', 'Pay the evaluation fee of 10 sats to have your request reviewed.'],
      ['amount', '10000', bolt11],
      ['e', req.id],
      ['p', req.pubkey],
    ],
    content: '',
  });
  const run = (fn: (e: Event) => void): number => {
    const evs = wire(requests);
    const t0 = performance.now();
    for (const e of evs) fn(e);
    return ((performance.now() - t0) * 1000) / evs.length;
  };
  // Warm both paths, then measure each alone and the pair.
  run((e) => {
    if (!verifyEvent(e)) throw new Error('ceiling: a request did not verify');
    finalizeEvent(template(e), sk);
  });
  const verifyUs = run((e) => {
    if (!verifyEvent(e)) throw new Error('ceiling: a request did not verify');
  });
  const signUs = run((e) => void finalizeEvent(template(e), sk));
  const pairUs = run((e) => {
    if (!verifyEvent(e)) throw new Error('ceiling: a request did not verify');
    finalizeEvent(template(e), sk);
  });
  return { verifyUs, signUs, pairUs, rate: 1e6 / pairUs };
}

async function measureBolt11(dir: string, count: number): Promise<{ us: number; bolt11: string }> {
  const store = openSqliteStore(join(dir, 'bolt11.db'));
  const payments = new StubPayments(store);
  let bolt11 = '';
  for (let i = 0; i < 20; i++) bolt11 = (await payments.createInvoice({ amountMsats: 10_000, memo: 'warm-up', expirySecs: 600 })).bolt11;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await payments.createInvoice({ amountMsats: 10_000, memo: `Timmy: evaluation fee for job ${i}`, expirySecs: 600 });
  const us = ((performance.now() - t0) * 1000) / count;
  await store.close();
  return { us, bolt11 };
}

export async function runIngest(opts: { mode: 'wasm' | 'purejs'; n: number; warmup: number }): Promise<IngestResult> {
  await initCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'timmy-bench-ingest-'));
  try {
    const config = loadConfig({
      DATA_DIR: dir,
      EMBEDDED_RELAY_PORT: 'off',
      RELAYS: 'ws://127.0.0.1:9',
      LOG_LEVEL: 'info',
      MAX_OPEN_UNPAID_PER_CLIENT: '1000000000',
      MAX_OPEN_UNPAID_TOTAL: '1000000000',
    });
    // The daemon logs JSON lines to stdout at `info`; here the same lines go to /dev/null.
    const log = createLogger(config.LOG_LEVEL, pino.destination({ dest: '/dev/null', sync: true }));
    const secretKey = generateSecretKey();
    const pubkey = getPublicKey(secretKey);
    const customerKeys = Array.from({ length: CUSTOMERS }, () => generateSecretKey());

    const store = openSqliteStore(config.databasePath);
    const db = store.db;
    // The daemon's own builders: stub backends, the core, the Nostr side; only the way out differs.
    const backends = await buildBackends(config, store, log);
    const link = new NostrPorts();
    const core = buildCore(config, store, backends, { publisher: link, inbox: link }, log);
    await core.book.start();
    // A transport that takes every event and acks it at once, as a fast relay would (no socket).
    let published = 0;
    const transport = {
      publish(event: Event): string[] {
        published++;
        const id = event.id;
        setImmediate(() => nostr.outbox.onOk('stub://relay', id, true, ''));
        return ['stub://relay'];
      },
      connectedCount: 1,
    };
    const nostr = buildNostr(config, store, { secretKey, pubkey }, core, backends, { link, transport }, log);
    const intake = nostr.intake;
    await intake.load();
    nostr.outbox.start();
    const expiryTimer = setInterval(() => {
      core.book.expireDue().catch(() => {});
      nostr.refreshDeletions().catch(() => {});
    }, 2000);

    const feed = async (events: Event[]) => {
      const CHUNK = 64; // events handed over per event-loop turn, as a socket would deliver them
      for (let i = 0; i < events.length; i += CHUNK) {
        for (const ev of events.slice(i, i + CHUNK)) intake.handle('wss://bench.invalid', REQUESTS_SUB, ev);
        await new Promise<void>((r) => setImmediate(r));
      }
    };

    // Warm-up (JIT, SQLite page cache), then the measured run.
    const warm = signRequests(opts.warmup, pubkey, customerKeys, 'warm-up');
    const requests = signRequests(opts.n, pubkey, customerKeys, 'measured');
    await feed(warm);
    await until(() => published >= opts.warmup, 'warm-up feedback', 120_000);
    await sleep(50);
    const before = published;
    progress(`ingest (${opts.mode}): ${opts.n} requests through intake.handle`);
    const t0 = performance.now();
    await feed(requests);
    await until(() => published >= before + opts.n, `${opts.n} payment-required feedback events`, 600_000, 2);
    const elapsedMs = performance.now() - t0;
    clearInterval(expiryTimer);

    const signedRows = (
      db.$client.prepare(`select count(*) as n from outbox where signed_json is not null and intent_json like '%payment-required%'`).get() as { n: number }
    ).n;
    const accepted = intake.counters.accepted;
    if (signedRows < opts.warmup + opts.n) throw new Error(`only ${signedRows} payment-required events were signed and stored`);

    progress(`ingest (${opts.mode}): measuring the crypto ceiling and the stub invoice cost`);
    const bolt = await measureBolt11(dir, 300);
    const ceiling = measureCeiling(signRequests(Math.min(opts.n, 2000), pubkey, customerKeys, 'ceiling'), secretKey, bolt.bolt11);

    nostr.outbox.stop();
    core.jobs.stop();
    await core.runner.stop(1000);
    await store.close();
    return {
      mode: opts.mode,
      relayInPath: false,
      n: opts.n,
      elapsedMs,
      rate: (opts.n / elapsedMs) * 1000,
      ceiling,
      bolt11InvoiceUs: bolt.us,
      pureVerifyCalls: (globalThis as { __benchPureVerifyCalls?: number }).__benchPureVerifyCalls ?? 0,
      signedRows,
      accepted,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
