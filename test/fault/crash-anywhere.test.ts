// Fault injection: paid jobs and session jobs in flight while the daemon is SIGKILLed at random moments
// and restarted on the same data. Afterwards every paid job is complete, nothing was delivered, charged
// or announced twice, and no invoice or sat went missing.
import { describe, expect, it } from 'vitest';
import { freePort, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from '../helpers/procs.ts';
import { Customer, invoiceOf, paymentHash, queryRelay, status } from '../helpers/customer.ts';
import { readDb } from '../helpers/store.ts';
import { waitForProgress } from '../helpers/wait.ts';
import { SEED, mulberry32, printSeedOnFailure } from '../helpers/seed.ts';
import * as nip17 from 'nostr-tools/nip17';
import { FakeNwcWallet } from '../fakes/nwc-wallet.ts';

const ROUNDS = Number(process.env.FAULT_ROUNDS ?? 6);
const NWC_ROUNDS = Number(process.env.FAULT_NWC_ROUNDS ?? 3);
const JOBS_PER_CUSTOMER = Number(process.env.FAULT_JOBS ?? 4);
/** The kill moments come from the run's seed (TEST_SEED, printed on failure). */
const random = mulberry32(SEED);
/** The waits fail once nothing moved for this long, not on a deadline; the test timeout is only a backstop. */
const STALL_MS = 30_000;
printSeedOnFailure();

/** How a run pays: the stub's dev route, or a fake NWC wallet (whose notifications are lost while the daemon is down). */
interface Rail {
  name: string;
  env: Record<string, string>;
  /** Pays an invoice; false when it cannot be paid right now (the daemon down, the invoice unknown yet). */
  pay(paymentHash: string): Promise<boolean>;
  close(): Promise<void>;
}

const stubRail = (api: () => string): Rail => ({
  name: 'stub',
  env: {},
  async pay(hash) {
    try {
      return (await fetch(`${api()}/api/dev/stub/pay/${hash}`, { method: 'POST' })).status === 200;
    } catch {
      return false; // daemon down right now: next pass
    }
  },
  close: async () => {},
});

async function nwcRail(): Promise<Rail> {
  const walletRelay = await startRelay();
  const wallet = await new FakeNwcWallet({ relayUrl: walletRelay.url }).start();
  return {
    name: 'NWC',
    env: { NWC_URL: wallet.url, NWC_POLL_INTERVAL_S: '0.5' },
    pay: async (hash) => wallet.pay(hash) || wallet.invoices.get(hash)?.settledAt != null,
    async close() {
      await wallet.close();
      await walletRelay.stop();
    },
  };
}

const env = { STUB_AI_DELAY_MS: '150', STUB_PROVISION_DELAY_MS: '400', MAX_OPEN_UNPAID_PER_CLIENT: '50' };

async function crashRun(makeRail: (api: () => string) => Promise<Rail>, rounds: number): Promise<void> {
  const relay = await startRelay();
  const httpPort = await freePort();
  const api = () => `http://127.0.0.1:${httpPort}`;
  const rail = await makeRail(api);
  const dataDir = tempDir('timmy-crash-');
  const customers: Customer[] = [];
  let daemon: DaemonProc | null = null;
  const start = async (): Promise<DaemonProc> => {
    daemon = await startDaemon({ relays: [relay.url], dataDir, httpPort, env: { ...env, ...rail.env } });
    return daemon;
  };
  /** Pays every invoice the customers have seen, whenever it can; retries what failed. */
  const payer = (): { stop: () => void; paid: Set<string> } => {
    const paid = new Set<string>();
    let running = true;
    const loop = async () => {
      while (running) {
        for (const c of customers) {
          for (const s of c.seen) {
            if (status(s.event) !== 'payment-required') continue;
            const { bolt11 } = invoiceOf(s.event);
            if (paid.has(bolt11)) continue;
            if (await rail.pay(paymentHash(bolt11))) paid.add(bolt11);
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    void loop();
    return { stop: () => (running = false), paid };
  };
  try {
    await start();
    for (let i = 0; i < 3; i++) customers.push(await new Customer([relay.url], daemon!.pubkey).connect());
    const sessionOwner = await new Customer([relay.url], daemon!.pubkey).connect();
    customers.push(sessionOwner);
    // A funded session bound to one customer, spent over Nostr during the crashes.
    const created = await (await fetch(`${api()}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amountSats: 500, pubkey: sessionOwner.pubkey }) })).json() as { sessionId: string; depositInvoice: { paymentHash: string } };
    expect(await rail.pay(created.depositInvoice.paymentHash)).toBe(true);

    const pay = payer();
    const requests: string[] = [];
    const sessionRequests: string[] = [];
    const orders: string[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const c of customers.slice(0, 3)) {
        const req = await c.request(`round ${round} question from ${c.pubkey.slice(0, 6)}`);
        requests.push(req.id);
      }
      const sreq = await sessionOwner.request(`session round ${round}`, [['param', 'session', created.sessionId]]);
      sessionRequests.push(sreq.id);
      if (round % 2 === 0) {
        const order = customers[0]!.sign([['p', daemon!.pubkey]], { kind: 5960 });
        await customers[0]!.publish(order);
        orders.push(order.id);
      }
      // Let some work happen, then kill at a random moment.
      await new Promise((r) => setTimeout(r, 100 + Math.floor(random() * 700)));
      await daemon!.kill('SIGKILL');
      await start();
    }
    for (let j = 0; j < JOBS_PER_CUSTOMER - 1; j++) {
      for (const c of customers.slice(0, 3)) requests.push((await c.request(`tail question ${j}`)).id);
    }

    // Everything settles on the last daemon, however long that takes here, while something moves: job states,
    // outbox rows written and acked, payments, events seen by the customers.
    const settling = () => [
      readDb(dataDir, (db) => [db.prepare('select state, count(*) n from jobs group by state').all(), db.prepare('select max(id) last, count(acked_at) acked from outbox').get()]),
      pay.paid.size,
      customers.map((c) => c.seen.length),
    ];
    await waitForProgress(
      () =>
        readDb(dataDir, (db) => {
          const open = db
            .prepare(`select count(*) n from jobs where id in (${[...requests, ...sessionRequests].map(() => '?').join(',')}) and state not in ('complete','failed')`)
            .get(...requests, ...sessionRequests) as { n: number };
          return open.n === 0;
        }),
      settling,
      'all jobs finished',
      { stallMs: STALL_MS, intervalMs: 200 },
    );
    await waitForProgress(
      () =>
        readDb(dataDir, (db) =>
          (db.prepare(`select state from bootstrap_jobs where id in (${orders.map(() => '?').join(',')})`).all(...orders) as { state: string }[]).every((o) => o.state === 'ready'),
        ),
      settling,
      'all nodes ready',
      { stallMs: STALL_MS, intervalMs: 200 },
    );
    pay.stop();
    await waitForProgress(() => readDb(dataDir, (db) => (db.prepare('select count(*) n from outbox where acked_at is null').get() as { n: number }).n === 0), settling, 'outbox drained', { stallMs: STALL_MS });

    // Node orders: one public result, one credentials DM each, and the same node after every restart.
    const nodeEvents = await queryRelay(relay.url, { authors: [daemon!.pubkey], '#e': orders });
    for (const id of orders) {
      const labels = nodeEvents.filter((e) => e.tags.some((t) => t[0] === 'e' && t[1] === id)).map((e) => (e.kind === 6960 ? 'result' : status(e))).sort();
      expect(labels, id).toEqual(['payment-required', 'processing', 'result', 'success']);
    }
    const wraps = await queryRelay(relay.url, { kinds: [1059], '#p': [customers[0]!.pubkey] });
    const dmFor = wraps.map((w) => nip17.unwrapEvent(w, customers[0]!.sk).tags.find((t) => t[0] === 'e')?.[1]);
    for (const id of orders) expect(dmFor.filter((x) => x === id), `DMs for ${id}`).toHaveLength(1);

    const states = readDb(dataDir, (db) => db.prepare(`select id, state, error_message from jobs where id in (${requests.map(() => '?').join(',')})`).all(...requests)) as { id: string; state: string }[];
    expect(states.filter((s) => s.state !== 'complete')).toEqual([]);

    // On the relay: one result and exactly one event per transition, for every job.
    const stored = await queryRelay(relay.url, { authors: [daemon!.pubkey], '#e': [...requests, ...sessionRequests], limit: 10_000 });
    const byJob = new Map<string, string[]>();
    for (const e of stored) {
      const id = e.tags.find((t) => t[0] === 'e')![1]!;
      byJob.set(id, [...(byJob.get(id) ?? []), e.kind === 6050 ? 'result' : status(e)!]);
    }
    for (const id of requests) {
      expect(byJob.get(id)?.sort(), id).toEqual(['payment-required', 'payment-required', 'processing', 'processing', 'result', 'success']);
    }
    for (const id of sessionRequests) {
      const labels = byJob.get(id)?.sort();
      expect(labels, id).toEqual(['processing', 'result', 'success']);
    }

    // Money: two invoices per paid job, each paid at most once; nothing credited (nothing failed).
    readDb(dataDir, (db) => {
      const perJob = db.prepare(`select subject_id as job_id, count(*) n, sum(status = 'paid') paid from invoice_book where subject_kind = 'job' and subject_id in (${requests.map(() => '?').join(',')}) group by subject_id`).all(...requests) as { n: number; paid: number }[];
      expect(perJob.every((r) => r.n === 2 && r.paid === 2)).toBe(true);
      expect((db.prepare('select count(*) n from credits').get() as { n: number }).n).toBe(0);
      const ledger = db.prepare('select kind, count(*) n, sum(amount_msats) s from session_ledger where session_id = ? group by kind').all(created.sessionId) as { kind: string; n: number; s: number }[];
      const k = (kind: string) => ledger.find((l) => l.kind === kind) ?? { n: 0, s: 0 };
      expect(k('deposit').s).toBe(500_000);
      expect(k('reserve').n).toBe(k('release').n); // no reservation left open
      const balance = ledger.reduce((sum, l) => sum + l.s, 0);
      expect(balance).toBe(500_000 + k('debit').s);
      expect(balance).toBeGreaterThanOrEqual(0);
    });
  } finally {
    for (const c of customers) c.close();
    await (daemon as DaemonProc | null)?.kill();
    await rail.close();
    await relay.stop();
  }
}

describe('crash anywhere', () => {
  it(`${ROUNDS} random SIGKILLs during paid, session and node jobs: every job completes once, nobody pays twice`, () => crashRun(async (api) => stubRail(api), ROUNDS), 10 * 60_000); // a backstop: the waits fail on a stall
  it(`the same over NWC (${NWC_ROUNDS} SIGKILLs): notifications lost while the daemon is down are found by lookup`, () => crashRun(() => nwcRail(), NWC_ROUNDS), 10 * 60_000);
});
