// Fault injection on PostgreSQL: three workers serve one identity while a killer SIGKILLs a random one every
// few seconds and restarts it (a new process, so a new WORKER_ID). Paid Nostr jobs are paid through the dev
// route of whichever worker is up, session jobs are asked over HTTP. Afterwards every Nostr job is complete
// with one result, no step ran twice unless its worker died during it, every invoice was paid once, nothing
// was credited, and every session ledger adds up.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { freePort, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from '../helpers/procs.ts';
import { Customer, invoiceOf, paymentHash, payStub, queryRelay, status } from '../helpers/customer.ts';
import { freshPgDatabase } from '../helpers/pg.ts';
import { waitFor, waitForProgress, whileProgressing } from '../helpers/wait.ts';
import { SEED, mulberry32, printSeedOnFailure } from '../helpers/seed.ts';
import type { StubCall } from '../../src/ai/stub.ts';

const ROUNDS = Number(process.env.FAULT_ROUNDS ?? 6);
/** Paid Nostr jobs: 200 at the default FAULT_ROUNDS (6), fewer with fewer rounds. */
const JOBS = Math.max(10, Math.round((200 * ROUNDS) / 6));
/** Jobs in flight at once (each waits for its invoices, pays them, waits for its result). */
const CONCURRENCY = 12;
const CUSTOMERS = 8;
/** Session requests over HTTP, spread over the run, on two sessions. */
const SESSION_REQUESTS = Math.max(4, Math.round((12 * ROUNDS) / 6));
// Long enough that a live worker on a loaded 2-core machine renews in time (every LEASE_S/3): a step taken
// from a live worker would call the AI twice and fail the double-execution check.
const LEASE_S = 4;
const KILL_GAP_MS: [number, number] = [1500, 4000]; // between two kills
const RESTART_AFTER_MS: [number, number] = [200, 1500]; // from a kill to the restart of that worker
/** The waits fail once nothing moved for this long, not on a deadline; the test timeout is only a backstop. */
const STALL_MS = 30_000;
printSeedOnFailure();

// One stream of draws per concern, so the killer's choices do not depend on how the payers interleave.
const killDraw = mulberry32(SEED);
const payDraw = mulberry32(SEED ^ 0x5bd1e995);
const promptDraw = mulberry32(SEED ^ 0x1b873593);
const between = (draw: () => number, [lo, hi]: [number, number]) => lo + Math.floor(draw() * (hi - lo));
const pick = <T>(draw: () => number, xs: T[]): T => xs[Math.floor(draw() * xs.length)]!;

const env = { LEASE_S: String(LEASE_S), STUB_AI_DELAY_MS: '300', MAX_OPEN_UNPAID_PER_CLIENT: '50' };

/** One worker's place: its HTTP port stays, the process behind it changes at each restart. */
interface Slot {
  base: string;
  incarnation: number;
  httpPort: number;
  proc: DaemonProc | null; // null while down
  id: string;
}

interface Kill {
  worker: string;
  atMs: number; // unix ms
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function pgClient(url: string): Promise<pg.Client> {
  const [{ default: pgLib }, { pgTypes }] = await Promise.all([import('pg'), import('../../src/store/pg-types.ts')]);
  const client = new pgLib.Client({ connectionString: url, types: pgTypes });
  await client.connect();
  return client;
}

describe('three workers on PostgreSQL, SIGKILLed at random', () => {
  it(`${JOBS} paid jobs and ${SESSION_REQUESTS} session requests: none lost, none run twice, every sat accounted for`, async ({ onTestFailed }) => {
    const startedAt = Date.now();
    const relay: RelayProc = await startRelay();
    cleanups.push(() => relay.stop());
    const database = await freshPgDatabase();
    cleanups.push(() => database.drop());
    const db = await pgClient(database.url);
    cleanups.push(() => db.end());
    const dataDir = tempDir('timmy-fault-pg-');
    const callLog = join(dataDir, 'ai-calls.jsonl');
    const shared = { ...env, DATABASE_URL: database.url, NOSTR_SECRET_KEY: randomBytes(32).toString('hex'), STUB_AI_CALL_LOG: callLog };

    const everyProc: DaemonProc[] = []; // every process ever started, its logs kept after it died
    const slots: Slot[] = [];
    const kills: Kill[] = [];
    const launch = async (slot: Slot): Promise<void> => {
      slot.id = slot.incarnation === 1 ? slot.base : `${slot.base}-r${slot.incarnation}`;
      const proc = await startDaemon({ relays: [relay.url], dataDir, httpPort: slot.httpPort, env: { ...shared, WORKER_ID: slot.id } });
      everyProc.push(proc);
      slot.proc = proc;
    };
    cleanups.push(async () => {
      for (const p of everyProc) await p.kill();
    });
    onTestFailed(() => {
      const path = join(dataDir, 'workers.jsonl');
      writeFileSync(path, everyProc.flatMap((p) => p.logs.map((l) => JSON.stringify(l))).join('\n'));
      console.error(`workers-pg: every worker's log in ${path}, the AI calls in ${callLog}, the kills: ${JSON.stringify(kills)}`);
    });
    for (const base of ['w1', 'w2', 'w3']) slots.push({ base, incarnation: 1, httpPort: await freePort(), proc: null, id: base });
    await launch(slots[0]!); // alone first: it makes the shared keys in DATA_DIR
    await Promise.all(slots.slice(1).map(launch));
    const pubkey = slots[0]!.proc!.pubkey;
    const live = () => slots.filter((s) => s.proc !== null);

    const customers: Customer[] = [];
    for (let i = 0; i < CUSTOMERS; i++) customers.push(await new Customer([relay.url], pubkey).connect());
    cleanups.push(async () => customers.forEach((c) => c.close()));

    let failed: Error | null = null; // set when the run is given up: every loop stops
    let payments = 0;
    let payRetries = 0; // dev-route calls that failed (worker down or killed mid-call) and went to another worker
    const paidVia = new Map<string, string>(); // payment hash -> the worker whose dev route paid it
    /** Polls until `probe` answers; the run's progress guard, not a deadline, ends a wait that never comes. */
    const until = async <T>(probe: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T> => {
      for (;;) {
        if (failed) throw failed;
        const v = await probe();
        if (v) return v;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    /** Pays through a random live worker's dev route; a worker down (or killed mid-call): another one. */
    const pay = async (bolt11: string): Promise<void> => {
      for (;;) {
        if (failed) throw failed;
        const slot = live().length ? pick(payDraw, live()) : null;
        try {
          if (slot) {
            const via = slot.id;
            await payStub(slot.proc!.api, bolt11);
            payments++;
            paidVia.set(paymentHash(bolt11), via);
            return;
          }
        } catch {
          payRetries++; // killed meanwhile: the stub invoice may be marked paid already; paying again is harmless
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    // Two funded sessions for the HTTP requests.
    const sessions: { id: string; bearer: string }[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${slots[i]!.proc!.api}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amountSats: 5000 }) });
      const created = (await res.json()) as { sessionId: string; macaroon: string; depositInvoice: { paymentRequest: string } };
      await pay(created.depositInvoice.paymentRequest);
      sessions.push({ id: created.sessionId, bearer: `Bearer ${created.macaroon}` });
    }
    for (const s of sessions) {
      await waitFor(async () => {
        const res = await fetch(`${slots[0]!.proc!.api}/api/sessions/${s.id}`, { headers: { authorization: s.bearer } });
        return ((await res.json()) as { state: string }).state === 'active';
      }, 'session deposit heard');
    }

    // The killer: a random live worker every few seconds, never the last one up; restarted after a moment.
    let killing = true;
    const restarts: Promise<void>[] = [];
    /** SIGKILLs a worker and restarts it after a moment, as a new process; resolves once it is dead. */
    const kill = async (victim: Slot): Promise<void> => {
      if (!killing || !victim.proc || live().length < 2) return;
      const proc = victim.proc;
      victim.proc = null;
      kills.push({ worker: victim.id, atMs: Date.now() });
      const delayMs = between(killDraw, RESTART_AFTER_MS);
      const dead = proc.kill('SIGKILL');
      restarts.push(
        (async () => {
          await dead;
          await new Promise((r) => setTimeout(r, delayMs));
          victim.incarnation++;
          await launch(victim);
        })(),
      );
      await dead;
    };
    const killer = (async () => {
      while (killing && !failed) {
        await new Promise((r) => setTimeout(r, between(killDraw, KILL_GAP_MS)));
        if (live().length >= 2) await kill(pick(killDraw, live()));
      }
    })();

    // Paid Nostr jobs, CONCURRENCY at a time; session requests over HTTP among them.
    const jobs: { id: string; prompt: string }[] = [];
    const sessionOutcomes = { answered: 0, cut: 0, refused: 0 };
    /** Kills the worker running this session request once its job is executing there (unless it answered first). */
    const killWhileExecuting = async (slot: Slot, sessionId: string, prompt: string, asked: Promise<unknown>): Promise<void> => {
      let answered = false;
      void asked.finally(() => (answered = true)).catch(() => {});
      while (!answered && !failed && slot.proc) {
        const { rows } = await db.query(`select lease_owner from jobs where session_id = $1 and input = $2 and state = 'executing'`, [sessionId, prompt]);
        if (rows[0]?.lease_owner === slot.id) return kill(slot);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const sessionRequest = async (n: number): Promise<void> => {
      const doomed = n % 3 === 1; // its worker is killed under it: the job is failed `interrupted`
      const s = sessions[n % sessions.length]!;
      const prompt = `session request ${n} (seed ${SEED}): ${Math.floor(promptDraw() * 1e9)}`;
      for (;;) {
        if (failed) return; // the run was given up: its error is reported elsewhere
        const slot = live().length ? pick(payDraw, live()) : null;
        if (!slot) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        try {
          const asked = fetch(`${slot.proc!.api}/api/sessions/${s.id}/request`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: s.bearer },
            body: JSON.stringify({ request: prompt }),
          });
          if (doomed) void killWhileExecuting(slot, s.id, prompt, asked).catch(() => {}); // a missed chance is no failure
          const res = await asked;
          await res.text();
          if (res.status === 200) sessionOutcomes.answered++;
          else sessionOutcomes.refused++;
          return;
        } catch (err) {
          // Refused at the door (the worker was down): ask another. Cut mid-request: its job, if it was opened,
          // is failed `interrupted` by the worker that takes its lease over.
          if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') continue;
          sessionOutcomes.cut++;
          return;
        }
      }
    };
    const runJob = async (i: number): Promise<void> => {
      const c = customers[i % customers.length]!;
      const prompt = `fault job ${i} (seed ${SEED}): ${Math.floor(promptDraw() * 1e9)}`;
      const req = await c.request(prompt);
      jobs.push({ id: req.id, prompt });
      const evalFb = await until(() => c.feedback(req.id, 'payment-required')[0]);
      await pay(invoiceOf(evalFb).bolt11);
      const workFb = await until(() => c.feedback(req.id, 'payment-required').find((e) => e.id !== evalFb.id));
      await pay(invoiceOf(workFb).bolt11);
      await until(() => c.results(req.id)[0]);
    };
    let next = 0;
    const sessionEvery = Math.max(1, Math.floor(JOBS / SESSION_REQUESTS));
    const sessionRuns: Promise<void>[] = [];
    const lane = async (): Promise<void> => {
      while (next < JOBS) {
        const i = next++;
        if (i % sessionEvery === 0 && sessionRuns.length < SESSION_REQUESTS) sessionRuns.push(sessionRequest(sessionRuns.length));
        await runJob(i);
      }
    };
    const callLines = () => {
      try {
        return readFileSync(callLog, 'utf8').split('\n').filter(Boolean).length;
      } catch {
        return 0;
      }
    };
    const progress = () => [customers.reduce((n, c) => n + c.seen.length, 0), payments, callLines(), Object.values(sessionOutcomes)];
    try {
      await whileProgressing(Promise.all(Array.from({ length: CONCURRENCY }, lane)), progress, 'the jobs', { stallMs: STALL_MS });
      await whileProgressing(Promise.all(sessionRuns), progress, 'the session requests', { stallMs: STALL_MS });
    } catch (err) {
      failed = err as Error;
      throw err;
    } finally {
      killing = false;
      await killer;
      await Promise.all(restarts);
    }

    // Every worker up again: the interrupted session jobs are failed and the outbox drains.
    const dbProgress = async () => (await db.query('select state, count(*)::int n from jobs group by state order by state')).rows;
    await waitForProgress(
      async () => (await db.query(`select count(*)::int n from jobs where state in ('evaluating', 'executing')`)).rows[0].n === 0,
      dbProgress,
      'no step left running',
      { stallMs: STALL_MS, intervalMs: 200 },
    );
    await waitForProgress(
      async () => (await db.query('select count(*)::int n from outbox where acked_at is null')).rows[0].n === 0,
      async () => (await db.query('select count(acked_at)::int acked from outbox')).rows,
      'outbox drained',
      { stallMs: STALL_MS, intervalMs: 200 },
    );

    const ids = jobs.map((j) => j.id);
    const logs = everyProc.flatMap((p) => p.logs);

    // Every Nostr job complete (none lost), with exactly one result on the relay and one event per transition.
    const states = (await db.query('select id, state, error_message from jobs where id = any($1)', [ids])).rows as { id: string; state: string }[];
    expect(states).toHaveLength(JOBS);
    expect(states.filter((s) => s.state !== 'complete')).toEqual([]);
    const stored = [];
    for (let k = 0; k < ids.length; k += 25) stored.push(...(await queryRelay(relay.url, { authors: [pubkey], '#e': ids.slice(k, k + 25), limit: 1000 }))); // the relay answers at most a page per query
    const byJob = new Map<string, string[]>();
    for (const e of stored) {
      const id = e.tags.find((t) => t[0] === 'e')![1]!;
      byJob.set(id, [...(byJob.get(id) ?? []), e.kind === 6050 ? 'result' : status(e)!]);
    }
    for (const id of ids) expect(byJob.get(id)?.filter((l) => l === 'result'), `results of ${id}`).toHaveLength(1);
    for (const id of ids) expect(byJob.get(id)?.sort(), id).toEqual(['payment-required', 'payment-required', 'processing', 'processing', 'result', 'success']);

    // No double execution: a second AI call for one (input, stage) only after the worker of the call before it
    // was killed during that call (after it started, before the next one started).
    const calls = readFileSync(callLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as StubCall);
    const byStep = new Map<string, StubCall[]>();
    for (const c of calls) byStep.set(`${c.stage} ${c.input}`, [...(byStep.get(`${c.stage} ${c.input}`) ?? []), c]);
    const unexplained: string[] = [];
    let repeated = 0;
    for (const [step, cs] of byStep) {
      cs.sort((a, b) => a.atMs - b.atMs);
      for (let k = 1; k < cs.length; k++) {
        repeated++;
        const [before, after] = [cs[k - 1]!, cs[k]!];
        if (!kills.some((x) => x.worker === before.worker && x.atMs >= before.atMs && x.atMs <= after.atMs)) unexplained.push(`${step}: ${before.worker}@${before.atMs} then ${after.worker}@${after.atMs}`);
      }
    }
    for (const j of jobs) {
      expect(byStep.get(`eval ${j.prompt}`)?.length ?? 0, `eval calls of ${j.id}`).toBeGreaterThan(0);
      expect(byStep.get(`work ${j.prompt}`)?.length ?? 0, `work calls of ${j.id}`).toBeGreaterThan(0);
    }
    expect(unexplained).toEqual([]);

    // Money: two invoices per job, each paid; every invoice moved its subject at most once; nothing credited
    // (no job failed, no payment came late).
    const book = (await db.query(`select payment_hash, subject_id, purpose, status from invoice_book where subject_kind = 'job' and subject_id = any($1)`, [ids])).rows as { payment_hash: string; subject_id: string; purpose: string; status: string }[];
    expect(book).toHaveLength(2 * JOBS);
    expect(book.filter((b) => b.status !== 'paid')).toEqual([]);
    const sessionBook = (await db.query(`select status from invoice_book where subject_kind = 'session'`)).rows as { status: string }[];
    expect(sessionBook.map((b) => b.status)).toEqual(['paid', 'paid']);
    // A job invoice's settlement is the job's move out of waiting for it: logged by the one worker that made it.
    // (A session's handler also answers true to a second report of a payment it already counted.)
    const jobHashes = new Set(book.map((b) => b.payment_hash));
    const paidLines = new Map<string, string[]>();
    for (const l of logs) if (l.msg === 'invoice paid' && jobHashes.has(String(l.paymentHash))) paidLines.set(String(l.paymentHash), [...(paidLines.get(String(l.paymentHash)) ?? []), String(l.worker)]);
    expect([...paidLines].filter(([, by]) => by.length > 1)).toEqual([]);
    const heardElsewhere = [...paidLines].filter(([hash, by]) => by[0] !== paidVia.get(hash)).length; // by the stub payments poll
    expect((await db.query('select account, delta_msats, reason, ref from credits')).rows).toEqual([]);

    // Sessions: every HTTP session job answered or failed `interrupted` with its reservation released; each
    // ledger is the sum of its entries and never went below zero in id order.
    const sessionJobs = (await db.query(`select id, state, error_message from jobs where session_id is not null`)).rows as { id: string; state: string; error_message: string | null }[];
    expect(sessionJobs.filter((j) => !(j.state === 'complete' || (j.state === 'failed' && /interrupted/.test(j.error_message ?? ''))))).toEqual([]);
    const interrupted = sessionJobs.filter((j) => j.state === 'failed').length;
    expect(sessionJobs.filter((j) => j.state === 'complete').length).toBeGreaterThanOrEqual(sessionOutcomes.answered);
    expect(interrupted).toBeLessThanOrEqual(sessionOutcomes.cut); // only a request whose worker died under it
    expect(sessionOutcomes.refused).toBe(0);
    for (const s of sessions) {
      const entries = (await db.query('select id, kind, amount_msats, job_id from session_ledger where session_id = $1 order by id', [s.id])).rows as { kind: string; amount_msats: number; job_id: string | null }[];
      let running = 0;
      for (const e of entries) {
        running += e.amount_msats;
        expect(running, `${s.id} after a ${e.kind}`).toBeGreaterThanOrEqual(0);
      }
      const balance = Number((await db.query('select coalesce(sum(amount_msats), 0)::bigint b from session_ledger where session_id = $1', [s.id])).rows[0].b);
      expect(balance).toBe(running);
      const reserved = entries.filter((e) => e.kind === 'reserve').map((e) => e.job_id);
      const released = entries.filter((e) => e.kind === 'release').map((e) => e.job_id);
      expect(released.sort()).toEqual(reserved.sort()); // no reservation left open
      expect(entries.filter((e) => e.kind === 'deposit').map((e) => e.amount_msats)).toEqual([5_000_000]);
    }

    // The figures.
    const takeovers = logs.filter((l) => l.msg === 'lease taken over');
    const killedAt = new Map(kills.map((k) => [k.worker, k.atMs]));
    const afterKill = takeovers.map((t) => (killedAt.has(String(t.from)) ? Number(t.time) - killedAt.get(String(t.from))! : null));
    const fromLive = afterKill.filter((ms) => ms === null).length;
    const worst = Math.max(0, ...afterKill.filter((ms): ms is number => ms !== null));
    console.log(
      `workers-pg (seed ${SEED}): ${JOBS} jobs, ${SESSION_REQUESTS} session requests (${sessionOutcomes.answered} answered, ${sessionOutcomes.cut} cut, ${interrupted} jobs interrupted), ` +
        `${payments} payments (${payRetries} retried on another worker, ${heardElsewhere} settled by a worker that did not take them), ` +
        `${kills.length} kills, ${takeovers.length} takeovers (${fromLive} from a live worker), worst kill → takeover ${worst} ms (LEASE_S=${LEASE_S}), ` +
        `${calls.length} AI calls (${repeated} repeated after a kill), ${Math.round((Date.now() - startedAt) / 1000)} s`,
    );
  }, 15 * 60_000); // a backstop: the waits fail on a stall
});
