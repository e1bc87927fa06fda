// Benchmark 2: payment -> status latency. A real relay process, the daemon as a child process on the
// LNbits fake (test/fakes/lnbits.ts, in this process), and one raw subscriber for all feedback.
// Websocket path: for each job in turn, `lnbits.pay(evalHash)` -> `processing` at the subscriber, then
// `lnbits.pay(workHash)` -> the second `processing`. Polling path: the fake refuses and drops the
// websocket, LNBITS_POLL_INTERVAL_S=2, and payments are spread over the poll period.
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { AddressInfo } from 'node:net';
import { decode } from 'light-bolt11-decoder';
import { startRelay, tempDir } from '../../test/helpers/procs.ts';
import { startFakeLnbits } from '../../test/fakes/lnbits.ts';
import { FakeNwcWallet } from '../../test/fakes/nwc-wallet.ts';
import { generateSecretKey, getPublicKey } from '../../src/nostr/crypto.ts';
import { spawnDaemon, type BenchDaemon } from './daemon.ts';
import { FeedbackWatch } from './relay-client.ts';
import { makeCustomers, intakeRun, type Customer, type IntakeRun } from './customers.ts';
import { progress, sleep, summary, until } from './common.ts';

export interface LatencyResult {
  wsEval: number[]; // ms, eval invoice paid -> `processing` at the subscriber
  wsWork: number[]; // ms, work invoice paid -> `processing`
  nwc: number[]; // ms, eval and work invoices paid at the fake NWC wallet -> `processing` (payment_received notifications)
  poll: number[]; // ms, eval invoice paid while the websocket is down -> `processing`
  pollIntervalS: number;
  customers: number;
  intake: IntakeRun; // creating the websocket jobs: requests in -> payment-required out, LNbits invoices
  wsClientsDuringPoll: number;
}

function paymentHash(bolt11: string): string {
  const s = decode(bolt11).sections.find((x) => x.name === 'payment_hash') as { value: string } | undefined;
  if (!s) throw new Error('invoice without a payment hash');
  return s.value;
}

/** A CoinGecko-shaped price on loopback, so the oracle neither reaches out nor waits for a timeout. */
async function priceServer(): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ bitcoin: { usd: 100_000 } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/simple/price?ids=bitcoin&vs_currencies=usd`, server };
}

/**
 * The same payments over NWC, in the same run: a second daemon (its own key and store) whose backend is the
 * fake NWC wallet service on the same relay; `wallet.pay(hash)` -> `processing` at the subscriber.
 */
async function nwcLatency(o: { relayUrl: string; customers: Customer[]; watch: FeedbackWatch; jobs: number; priceUrl: string; relayPid: number }): Promise<number[]> {
  const wallet = await new FakeNwcWallet({ relayUrl: o.relayUrl }).start();
  const sk = generateSecretKey();
  const timmy = getPublicKey(sk);
  const dataDir = tempDir('timmy-bench-nwc-');
  const feed = await FeedbackWatch.start(o.relayUrl, timmy);
  let daemon: BenchDaemon | null = null;
  try {
    daemon = await spawnDaemon({
      relays: [o.relayUrl],
      dataDir,
      env: {
        NOSTR_SECRET_KEY: Buffer.from(sk).toString('hex'),
        NWC_URL: wallet.url,
        BTC_PRICE_URL: o.priceUrl,
        INVOICE_EXPIRY_S: '3600',
        MAX_OPEN_UNPAID_PER_CLIENT: '1000000',
        MAX_OPEN_UNPAID_TOTAL: '1000000',
      },
    });
    progress(`latency: NWC: creating ${o.jobs} jobs (invoices made by the fake NWC wallet)`);
    const intake = await intakeRun({ customers: o.customers, watch: feed, timmy, n: o.jobs, label: 'nwc', daemonPid: daemon.pid, relayPid: o.relayPid, timeoutMs: 120_000 });
    const out: number[] = [];
    for (const id of intake.ids) {
      let t0 = performance.now();
      wallet.pay(paymentHash(feed.nth(id, 'payment-required', 1)!.bolt11!));
      out.push((await feed.waitFor(id, 'processing', 1)) - t0);
      await feed.waitFor(id, 'payment-required', 2);
      t0 = performance.now();
      wallet.pay(paymentHash(feed.nth(id, 'payment-required', 2)!.bolt11!));
      out.push((await feed.waitFor(id, 'processing', 2)) - t0);
    }
    progress(`latency: NWC notification p50 ${summary(out).p50.toFixed(1)} ms over ${out.length} payments`);
    return out;
  } finally {
    feed.close();
    await daemon?.kill();
    await wallet.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function runLatency(o: { jobs: number; nwcJobs: number; pollJobs: number; customers: number; pollIntervalS: number }): Promise<LatencyResult> {
  const price = await priceServer();
  const relay = await startRelay();
  const lnbits = await startFakeLnbits();
  const sk = generateSecretKey();
  const timmy = getPublicKey(sk);
  const dataDir = tempDir('timmy-bench-latency-');
  let watch: FeedbackWatch | null = null;
  let daemon: BenchDaemon | null = null;
  let customers: Customer[] = [];
  try {
    const feed = await FeedbackWatch.start(relay.url, timmy);
    watch = feed;
    daemon = await spawnDaemon({
      relays: [relay.url],
      dataDir,
      env: {
        NOSTR_SECRET_KEY: Buffer.from(sk).toString('hex'),
        LNBITS_URL: lnbits.url,
        LNBITS_API_KEY: lnbits.invoiceKey,
        LNBITS_POLL_INTERVAL_S: String(o.pollIntervalS),
        BTC_PRICE_URL: price.url,
        INVOICE_EXPIRY_S: '3600',
        MAX_OPEN_UNPAID_PER_CLIENT: '1000000',
        MAX_OPEN_UNPAID_TOTAL: '1000000',
      },
    });
    customers = await makeCustomers(relay.url, o.customers);
    await until(() => lnbits.wsClients >= 1, 'the daemon on the LNbits websocket', 15_000);

    // --- websocket path ---
    progress(`latency: creating ${o.jobs} jobs from ${o.customers} customers (LNbits invoices)`);
    const intake = await intakeRun({
      customers, watch: feed, timmy, n: o.jobs, label: 'latency', daemonPid: daemon.pid, relayPid: relay.child.pid!,
    });
    progress(`latency: ${o.jobs} jobs invoiced in ${(intake.elapsedMs / 1000).toFixed(1)} s; paying them one by one over the websocket`);
    const wsEval: number[] = [];
    const wsWork: number[] = [];
    for (const [i, id] of intake.ids.entries()) {
      const evalInvoice = feed.nth(id, 'payment-required', 1)!.bolt11!;
      let t0 = performance.now();
      lnbits.pay(paymentHash(evalInvoice));
      wsEval.push((await feed.waitFor(id, 'processing', 1)) - t0);
      await feed.waitFor(id, 'payment-required', 2); // the quote, with the work invoice
      const workInvoice = feed.nth(id, 'payment-required', 2)!.bolt11!;
      t0 = performance.now();
      lnbits.pay(paymentHash(workInvoice));
      wsWork.push((await feed.waitFor(id, 'processing', 2)) - t0);
      if ((i + 1) % 250 === 0) progress(`latency: ${i + 1}/${o.jobs} paid`);
    }
    // Let the last results go out before the websocket is cut.
    await sleep(300);

    // --- polling path ---
    progress(`latency: LNbits websocket refused and dropped; polling every ${o.pollIntervalS} s`);
    lnbits.refuseWebsockets(true);
    lnbits.dropWebsockets();
    await until(() => lnbits.wsClients === 0, 'the websocket to close', 5_000);
    await sleep(200);
    const pollIntake = await intakeRun({
      customers, watch: feed, timmy, n: o.pollJobs, label: 'polling', daemonPid: daemon.pid, relayPid: relay.child.pid!,
    });
    const gapMs = Math.max(20, Math.round((o.pollIntervalS * 1000 * 3.37) / o.pollJobs)); // spread over ~3 poll periods
    progress(`latency: paying ${o.pollJobs} jobs, one every ${gapMs} ms, while polling`);
    const poll = await Promise.all(
      pollIntake.ids.map(async (id, i) => {
        await sleep(i * gapMs);
        const t0 = performance.now();
        lnbits.pay(paymentHash(feed.nth(id, 'payment-required', 1)!.bolt11!));
        return (await feed.waitFor(id, 'processing', 1, o.pollIntervalS * 1000 * 10)) - t0;
      }),
    );
    const wsClientsDuringPoll = lnbits.wsClients;
    progress(
      `latency: websocket eval p50 ${summary(wsEval).p50.toFixed(1)} ms, work p50 ${summary(wsWork).p50.toFixed(1)} ms, polling p50 ${summary(poll).p50.toFixed(0)} ms`,
    );
    const nwc = await nwcLatency({ relayUrl: relay.url, customers, watch: feed, jobs: o.nwcJobs, priceUrl: price.url, relayPid: relay.child.pid! });
    return { wsEval, wsWork, nwc, poll, pollIntervalS: o.pollIntervalS, customers: o.customers, intake, wsClientsDuringPoll };
  } finally {
    for (const c of customers) c.conn.close();
    watch?.close();
    await daemon?.kill();
    await relay.stop();
    await lnbits.close();
    await new Promise<void>((r) => price.server.close(() => r()));
    for (const d of [dataDir, dirname(relay.dbPath)]) rmSync(d, { recursive: true, force: true });
  }
}
