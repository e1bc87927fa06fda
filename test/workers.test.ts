// Several workers, one identity (issue 11): three daemons with one NOSTR_SECRET_KEY, one DATABASE_URL and one
// DATA_DIR serve one relay together. A request seen by all is claimed by one, which invoices it: one job with
// one payment-required per stage;
// a payment made through any worker moves it once; a worker SIGKILLed mid-step is replaced by another after
// its lease (LEASE_S) ran out, and the customer still gets exactly one result. Each event Timmy publishes
// reaches the relay from one worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, queryRelay, status } from './helpers/customer.ts';
import { freshPgDatabase } from './helpers/pg.ts';
import { waitFor } from './helpers/wait.ts';
import { openPgStore, type PgStore } from '../src/store/pg/store.ts';

const LEASE_S = 3;
const AI_DELAY_MS = 6000; // each stub AI call: long enough to kill a worker in the middle of one
const OK_DELAY_MS = 2500; // the relay answers OK late: events wait unacked, so every worker sees them pending

let relay: RelayProc;
let database: Awaited<ReturnType<typeof freshPgDatabase>>;
let store: PgStore;
const workers: DaemonProc[] = [];
let customer: Customer;
let shared: { dataDir: string; env: Record<string, string> };

const start = (name: string, dataDir: string, env: Record<string, string>) =>
  startDaemon({ relays: [relay.url], dataDir, env: { ...env, WORKER_ID: name } });

beforeAll(async () => {
  relay = await startRelay({ traceEvents: true, okDelayMs: OK_DELAY_MS });
  database = await freshPgDatabase();
  const dataDir = tempDir('timmy-workers-');
  const env = { DATABASE_URL: database.url, NOSTR_SECRET_KEY: randomBytes(32).toString('hex'), LEASE_S: String(LEASE_S), STUB_AI_DELAY_MS: String(AI_DELAY_MS) };
  shared = { dataDir, env };
  workers.push(await start('w1', dataDir, env)); // first alone: it makes the shared keys in DATA_DIR
  workers.push(...(await Promise.all([start('w2', dataDir, env), start('w3', dataDir, env)])));
  store = await openPgStore(database.url);
  customer = await new Customer([relay.url], workers[0]!.pubkey).connect();
});

afterAll(async () => {
  if (process.env.DEBUG_WORKERS) for (const w of workers) console.log(w.logs.filter((l) => (l.level as number) >= 40 || /job|lease|invoice/.test(String(l.msg))).map((l) => `${l.worker ?? ''} ${l.msg} ${l.jobId ?? ''} ${l.err ? JSON.stringify(l.err).slice(0, 300) : ''}`).join('\n'));
  customer?.close();
  await Promise.all(workers.map((w) => w.kill()));
  await store?.close();
  await database?.drop();
  await relay?.stop();
});

const feedback = async (jobId: string, s: string) =>
  (await queryRelay(relay.url, { kinds: [7000], '#e': [jobId] })).filter((e) => status(e) === s);

/** Invoices the workers' stub payment backend made (every worker's, in the shared database). */
async function stubInvoiceCount(): Promise<number> {
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  const r = await db.query<{ n: string }>('select count(*) as n from stub_invoices').finally(() => db.end());
  return Number(r.rows[0]!.n);
}

describe('three workers on one PostgreSQL', () => {
  it('serve one identity: one job and one payment-required per stage, paid through any worker, one result', async () => {
    expect(new Set(workers.map((w) => w.pubkey)).size).toBe(1);
    const req = await customer.request('Explain a Lightning invoice in one sentence.');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    await payStub(workers[1]!.api, invoiceOf(evalFb!).bolt11); // through w2
    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2, 60_000);
    const work = quotes.find((e) => e.id !== evalFb!.id)!;
    await payStub(workers[2]!.api, invoiceOf(work).bolt11); // through w3
    await customer.waitForResult(req.id, 60_000);

    expect(await feedback(req.id, 'payment-required')).toHaveLength(2);
    // One worker claimed the request: one eval invoice and one work invoice were made, not one per worker.
    expect(await stubInvoiceCount()).toBe(2);
    expect(await queryRelay(relay.url, { kinds: [6050], '#e': [req.id] })).toHaveLength(1);
    for (const w of workers) {
      const job = (await (await fetch(`${w.api}/api/jobs/${req.id}`)).json()) as { state: string };
      expect(job.state).toBe('complete'); // the same answer from every worker
    }
    // Each of Timmy's events about the job reached the relay from one worker (the outbox rows are leased),
    // though each waited seconds for its OK while the other workers' outboxes ran.
    const ours = [...(await queryRelay(relay.url, { kinds: [7000], '#e': [req.id] })), ...(await queryRelay(relay.url, { kinds: [6050], '#e': [req.id] }))];
    expect(ours.length).toBeGreaterThanOrEqual(5); // 2 × payment-required, processing ×2, the result
    const senders = relay.senders();
    for (const e of ours) expect([...(senders.get(e.id) ?? [])], `kind ${e.kind} ${status(e) ?? ''}`).toHaveLength(1);
    // Each 6 s AI call outlived the 3 s lease: the running worker's renewals kept it, nobody took it over.
    expect(workers.flatMap((w) => w.logs).filter((l) => l.msg === 'lease taken over' || l.msg === 'lease lost')).toEqual([]);
  });

  it('a worker killed in the middle of a step is replaced after its lease ran out; one result', async () => {
    const req = await customer.request('What does a payment hash commit to?');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    const victim = workers[0]!; // the payment goes through w1's dev route, so w1 settles it and runs the evaluation
    await payStub(victim.api, invoiceOf(evalFb!).bolt11);
    await waitFor(async () => {
      const job = await store.jobs.getJob(req.id);
      return job?.state === 'evaluating' && job.leaseOwner === 'w1';
    }, 'w1 evaluating under its lease');
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    const survivors = workers.slice(1);
    const takeover = await waitFor(
      () => survivors.flatMap((w) => w.logs).find((l) => l.msg === 'lease taken over' && l.jobId === req.id && l.from === 'w1'),
      'a survivor takes the evaluation over',
      60_000,
    );
    const takenAfterMs = Date.now() - killedAt;
    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2, 60_000);
    const work = quotes.find((e) => e.id !== evalFb!.id)!;
    await payStub(survivors[0]!.api, invoiceOf(work).bolt11);
    await customer.waitForResult(req.id, 60_000);
    expect(await queryRelay(relay.url, { kinds: [6050], '#e': [req.id] })).toHaveLength(1);
    expect(await feedback(req.id, 'payment-required')).toHaveLength(2);
    const job = await store.jobs.getJob(req.id);
    expect(job?.state).toBe('complete');
    expect(['w2', 'w3']).toContain(takeover.to);
    // Not before the lease could have run out (it was renewed every LEASE_S/3 until the kill).
    expect(takenAfterMs).toBeGreaterThanOrEqual(((LEASE_S * 2) / 3) * 1000 - 200);
    console.log(`takeover ${takenAfterMs} ms after the SIGKILL (LEASE_S=${LEASE_S})`);
  });

  it('a request claimed by a worker that died before invoicing it is answered by another once the claim ran out', async () => {
    const ev = customer.sign([['i', 'Who answers a request whose worker died?', 'text'], ['p', workers[0]!.pubkey]]);
    const invoicesBefore = await stubInvoiceCount();
    expect(await store.leases.claimRequest(ev.id, 'w-dead', LEASE_S * 1000)).toBe(true); // claimed, then that worker died
    const claimedAt = Date.now();
    await customer.publish(ev);
    await customer.waitForFeedback(ev.id, 'payment-required', 1, 60_000);
    expect(Date.now() - claimedAt).toBeGreaterThanOrEqual(LEASE_S * 1000 - 100); // not while the claim ran
    expect(await feedback(ev.id, 'payment-required')).toHaveLength(1);
    expect(await stubInvoiceCount()).toBe(invoicesBefore + 1);
  });

  it('a worker that reaches no relay claims no outbox row: what it commits is sent by the others', async () => {
    const cutOff = await startDaemon({ relays: [`ws://127.0.0.1:${await freePort()}`], dataDir: shared.dataDir, env: { ...shared.env, WORKER_ID: 'w4' }, waitForRelay: false });
    workers.push(cutOff);
    const req = await customer.request('Who sends what a worker without relays commits?');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required', 1, 60_000);
    await payStub(cutOff.api, invoiceOf(evalFb!).bolt11); // w4 settles it and runs the evaluation
    await customer.waitForFeedback(req.id, 'processing', 1, 60_000);
    await customer.waitForFeedback(req.id, 'payment-required', 2, 60_000); // w4's quote, sent by another worker
    expect((await store.jobs.getJob(req.id))?.state).toBe('awaiting_work_payment');
    // Everything reaches the relay (its OKs come 2.5 s late): a read, no lease is taken.
    await waitFor(async () => (await store.outbox.claimOutbox('probe', 1, { rows: 'missed', relay: relay.url, sinceMs: 0, limit: 500 })).length === 0, 'every event acked');
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const held = await db.query("select count(*) as n from outbox where lease_owner = 'w4'").finally(() => db.end());
    expect(Number(held.rows[0]!.n)).toBe(0);
  });
});
