// State several workers share through one database: credit spent once, the demo budget's cap, the demo rate
// limit, the intake cursor that only moves forward, a value created once. Each rule is checked on SQLite and
// on PostgreSQL, there with two pools on one database (two workers) racing for it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freshPgDatabase } from '../helpers/pg.ts';
import { mulberry32, printSeedOnFailure, SEED } from '../helpers/seed.ts';
import { waitFor } from '../helpers/wait.ts';
import { openPgStore, type PgStore } from '../../src/store/pg/store.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import { CreditRaced } from '../../src/store/credits.ts';
import { CreditRaced as PgCreditRaced } from '../../src/store/pg/credits.ts';
import type { Store } from '../../src/store/store.ts';
import { intakeStore } from '../../src/daemon.ts';
import { StubPayments } from '../../src/payments/stub.ts';
import bolt11 from 'bolt11';
import type { CreditEntry, NewBookInvoice, NewJob } from '../../src/core/types.ts';

printSeedOnFailure();

const dir = mkdtempSync(join(tmpdir(), 'timmy-shared-state-'));
const cleanups: (() => Promise<void>)[] = [];
const P = 'p'.repeat(64); // the payer

// Each test's pools are closed after it: the run's server is shared by the files running meanwhile.
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Two workers' views of one store: one SQLite connection (one process), or two PostgreSQL pools on one database. */
type Workers = { a: Store; b: Store };

let sqliteN = 0;
function sqliteWorkers(): Workers {
  const s = openSqliteStore(join(dir, `s${++sqliteN}.db`));
  cleanups.push(() => s.close());
  return { a: s, b: s };
}

async function pgWorkers(): Promise<Workers> {
  const db = await freshPgDatabase();
  const a = await openPgStore(db.url);
  const b = await openPgStore(db.url);
  cleanups.push(async () => {
    await a.close();
    await b.close();
    await db.drop();
  });
  return { a, b };
}

const ENGINES: [string, () => Workers | Promise<Workers>][] = [['sqlite', sqliteWorkers], ['pg', pgWorkers]];

function newJob(id: string): NewJob {
  return {
    id, kind: 5050, source: 'nostr', customerPubkey: P, clientAddress: null, requestJson: null, encryption: 'none',
    input: `prompt ${id}`, params: {}, relays: [], bidMsats: null, requestCreatedAt: 1_900_000_000, expiresAt: null,
  };
}

const spend = (jobId: string, msats: number): CreditEntry => ({ account: P, deltaMsats: -msats, reason: 'spent on the eval', jobId, ref: `spend-eval:${jobId}` });

const invoice = (jobId: string, amountMsats: number): NewBookInvoice => ({
  paymentHash: `h-${jobId}`, subjectKind: 'job', subjectId: jobId, purpose: 'eval', account: P, amountMsats, bolt11: `lnbc-${jobId}`, expiresAt: 1_900_000_600,
});

/** A job created on its payer's credit (the part credit does not cover invoiced), as JobService.open commits it. */
function createOnCredit(s: Store, jobId: string, creditMsats: number, dueMsats = 0): Promise<boolean> {
  return s.jobs.createJob({
    job: newJob(jobId),
    state: dueMsats > 0 ? 'awaiting_eval_payment' : 'evaluating',
    patch: { evalCreditMsats: creditMsats, evalPaymentHash: dueMsats > 0 ? `h-${jobId}` : null },
    invoice: dueMsats > 0 ? invoice(jobId, dueMsats) : undefined,
    intents: [{ type: 'feedback', status: 'processing', message: 'paid from your credit' }],
    credits: [spend(jobId, creditMsats)],
  });
}

const seedCredit = (s: Store, msats: number) => s.credits.addCredit({ account: P, deltaMsats: msats, reason: 'refund', jobId: null, ref: `seed:${msats}` });

describe.each(ENGINES)('credit is spent once (%s)', (engine, open) => {
  it('a spend the balance no longer covers rolls back its whole move: no job, no invoice, no entry', async () => {
    const w = await open();
    await seedCredit(w.a, 10_000);
    expect(await createOnCredit(w.a, 'j0', 10_000)).toBe(true);
    const raced = await createOnCredit(w.b, 'j1', 4_000, 6_000).catch((e: unknown) => e);
    expect(raced).toBeInstanceOf(CreditRaced);
    expect(raced).toMatchObject({ account: P, balanceMsats: 0, deltaMsats: -4_000 });
    expect(await w.a.jobs.getJob('j1')).toBeUndefined();
    expect(await w.a.invoices.getInvoice('h-j1')).toBeUndefined();
    expect(await w.a.invoices.openInvoiceCount('job')).toBe(0);
    expect((await w.a.credits.creditEntries(P)).map((e) => e.ref)).toEqual(['spend-eval:j0', 'seed:10000']);
    expect(await w.a.credits.creditBalanceMsats(P)).toBe(0);
    // Inside a larger transaction the refusal undoes the rest of it too.
    await expect(
      w.b.tx(async (t) => {
        await t.kv.setKv('written before the spend', '1');
        await t.credits.addCredit(spend('j2', 1));
      }),
    ).rejects.toBeInstanceOf(CreditRaced);
    expect(await w.a.kv.getKv('written before the spend')).toBeUndefined();
    // Credit coming in and a spend of what is there are untouched by the guard; a replayed spend writes nothing.
    await seedCredit(w.a, 3_000);
    expect(await w.a.credits.addCredit(spend('j3', 3_000))).toBe(true);
    expect(await w.a.credits.addCredit(spend('j3', 3_000))).toBe(false);
    expect(await w.a.credits.creditBalanceMsats(P)).toBe(0);
  });

  it.skipIf(engine !== 'pg')('two workers creating 40 jobs at once on the same 10 sats of credit: exactly one spends it', async () => {
    const ws = await open();
    expect(PgCreditRaced).toBe(CreditRaced);
    await seedCredit(ws.a, 10_000);
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        createOnCredit(i % 2 ? ws.b : ws.a, `job${i}`, 10_000).then(
          (created) => (created ? 'created' : 'duplicate'),
          (err: unknown) => (err instanceof CreditRaced ? 'raced' : Promise.reject(err)),
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'created')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'raced')).toHaveLength(39);
    expect(await ws.b.credits.creditBalanceMsats(P)).toBe(0);
    expect(await ws.b.jobs.countJobsByState()).toEqual({ evaluating: 1 });
    expect((await ws.b.credits.creditEntries(P)).filter((e) => e.deltaMsats < 0)).toHaveLength(1);
  });

  it.skipIf(engine !== 'pg')('spends of mixed sizes from two workers never take the balance below zero, at any point', async () => {
    const ws = await open();
    const rand = mulberry32(SEED);
    await seedCredit(ws.a, 50_000);
    const wants = Array.from({ length: 40 }, () => 1_000 * (1 + Math.floor(rand() * 4))); // 1 to 4 sats each, ~100 sats in all
    const outcomes = await Promise.all(
      wants.map((msats, i) =>
        createOnCredit(i % 2 ? ws.b : ws.a, `job${i}`, msats).then(
          () => 'created',
          (err: unknown) => (err instanceof CreditRaced ? 'raced' : Promise.reject(err)),
        ),
      ),
    );
    const spent = wants.filter((_, i) => outcomes[i] === 'created');
    const refused = wants.filter((_, i) => outcomes[i] === 'raced');
    const balance = await ws.a.credits.creditBalanceMsats(P);
    expect(balance).toBe(50_000 - spent.reduce((x, y) => x + y, 0));
    expect(balance).toBeGreaterThanOrEqual(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r).toBeGreaterThan(balance); // refused only when it no longer fitted
    // Spends commit one after another under the account lock, so entry order is commit order: every prefix is covered.
    let running = 0;
    for (const e of [...(await ws.a.credits.creditEntries(P))].reverse()) {
      running += e.deltaMsats;
      expect(running).toBeGreaterThanOrEqual(0);
    }
  });
});

describe.each(ENGINES)('kv values several workers write (%s)', (_engine, open) => {
  it('addToNumber: a sum under its cap, or null and nothing changed', async () => {
    const w = await open();
    expect(await w.a.kv.addToNumber('budget', 30, 20)).toBeNull(); // the first add is checked too
    expect(await w.a.kv.getKv('budget')).toBe('0');
    expect(await w.a.kv.addToNumber('budget', 15, 20)).toBe(15);
    expect(await w.b.kv.addToNumber('budget', 6, 20)).toBeNull();
    expect(await w.b.kv.addToNumber('budget', 5, 20)).toBe(20);
    expect(await w.a.kv.addToNumber('budget', -12, 20)).toBe(8);
    expect(await w.a.kv.addToNumber('budget', 9_007_199_254_740_000, Number.MAX_SAFE_INTEGER)).toBe(9_007_199_254_740_008); // exact, as text
    expect(await w.a.kv.getKv('budget')).toBe('9007199254740008');
    await expect(w.a.kv.addToNumber('budget', 0.5, 20)).rejects.toThrow(RangeError);
  });

  it('addToNumber: 50 concurrent reservations on two workers fill the cap exactly, never past it', async () => {
    const w = await open();
    const outcomes = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? w.b : w.a).kv.addToNumber('reserve', 7, 200)));
    const taken = outcomes.filter((v) => v !== null);
    expect(taken).toHaveLength(28); // floor(200 / 7)
    expect(new Set(taken).size).toBe(28); // each saw the ones before it
    expect(Math.max(...(taken as number[]))).toBe(196);
    expect(await w.a.kv.getKv('reserve')).toBe('196');
  });

  it('setMaxNumber: the cursor only moves forward, whoever writes last', async () => {
    const w = await open();
    const rand = mulberry32(SEED);
    const values = Array.from({ length: 40 }, () => 1_700_000_000 + Math.floor(rand() * 1_000_000));
    await Promise.all(values.map((v, i) => (i % 2 ? w.b : w.a).kv.setMaxNumber('cursor', v)));
    expect(await w.a.kv.getKv('cursor')).toBe(String(Math.max(...values)));
    await w.b.kv.setMaxNumber('cursor', 1_600_000_000); // an older request seen late by another worker
    expect(await w.a.kv.getKv('cursor')).toBe(String(Math.max(...values)));
    await w.b.kv.setMaxNumber('cursor', 1_800_000_000);
    expect(await w.a.kv.getKv('cursor')).toBe('1800000000');
  });

  it('getOrCreate: workers proposing different values at once all get the first one stored', async () => {
    const w = await open();
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? w.b : w.a).kv.getOrCreate('node_key', `key-${i}`)));
    expect(new Set(got).size).toBe(1);
    expect(await w.a.kv.getKv('node_key')).toBe(got[0]);
    expect(await w.b.kv.getOrCreate('node_key', 'another')).toBe(got[0]);
  });
});

describe.each(ENGINES)('what the daemon keeps there (%s)', (_engine, open) => {
  it('the intake cursor saved by two workers out of order keeps the newest', async () => {
    const w = await open();
    const [a, b] = [intakeStore(w.a, { id: 'A', leaseMs: 60_000 }), intakeStore(w.b, { id: 'B', leaseMs: 60_000 })];
    await a.saveCursor(1_700_000_500);
    await b.saveCursor(1_700_000_100); // b saw an older request later
    expect(await a.cursor()).toBe(1_700_000_500);
    expect(await b.cursor()).toBe(1_700_000_500);
  });

  it('two stub payment backends starting together sign their invoices with one node key', async () => {
    const w = await open();
    const req = { amountMsats: 10_000, memo: 'test', expirySecs: 600 };
    const invoices = await Promise.all([new StubPayments(w.a).createInvoice(req), new StubPayments(w.b).createInvoice(req)]);
    const payees = invoices.map((i) => bolt11.decode(i.bolt11).payeeNodeKey);
    expect(payees[0]).toMatch(/^0[23][0-9a-f]{64}$/);
    expect(payees[1]).toBe(payees[0]);
  });

  it('stub invoices paid since a moment: oldest payment first, ties by payment hash, the moment itself excluded', async () => {
    const w = await open();
    const T = 1_900_000_000_000; // unix ms
    for (const h of ['c', 'a', 'b', 'd', 'e']) await w.a.stubInvoices.insertStubInvoice({ paymentHash: h, preimage: `p${h}`, bolt11: `lnbc-${h}`, amountMsats: 1_000, expiresAt: 1_900_003_600 });
    await w.a.stubInvoices.markStubInvoicePaid('c', T + 5);
    await w.b.stubInvoices.markStubInvoicePaid('b', T + 5);
    await w.a.stubInvoices.markStubInvoicePaid('a', T + 9);
    await w.b.stubInvoices.markStubInvoicePaid('d', T); // 'e' is never paid
    expect(await w.a.stubInvoices.paidSince(T - 1, 10)).toEqual([
      { paymentHash: 'd', paidAt: T },
      { paymentHash: 'b', paidAt: T + 5 },
      { paymentHash: 'c', paidAt: T + 5 },
      { paymentHash: 'a', paidAt: T + 9 },
    ]);
    expect((await w.b.stubInvoices.paidSince(T, 10)).map((r) => r.paymentHash)).toEqual(['b', 'c', 'a']);
    expect((await w.b.stubInvoices.paidSince(T, 2)).map((r) => r.paymentHash)).toEqual(['b', 'c']);
    expect(await w.a.stubInvoices.paidSince(T + 9, 10)).toEqual([]);
  });

  it('a payment made through one stub backend is heard by another on the same store, also one paid before it started', async () => {
    const w = await open();
    const req = { amountMsats: 10_000, memo: 'test', expirySecs: 600 };
    const [payer, follower] = [new StubPayments(w.a, { pollIntervalMs: 20 }), new StubPayments(w.b, { pollIntervalMs: 20 })];
    const heard: string[] = [];
    follower.onSettled((h) => heard.push(h));
    const early = await payer.createInvoice(req);
    await payer.pay(early.paymentHash); // before the follower started: still in its look-back
    follower.start();
    await waitFor(() => heard.includes(early.paymentHash), 'the follower hears the earlier payment');
    const later = await payer.createInvoice(req);
    await payer.pay(later.paymentHash);
    await payer.pay(later.paymentHash); // paid twice: one payment
    await waitFor(() => heard.includes(later.paymentHash), 'the follower hears the payment');
    const unpaid = await payer.createInvoice(req);
    const last = await payer.createInvoice(req);
    await payer.pay(last.paymentHash);
    await waitFor(() => heard.includes(last.paymentHash), 'the follower hears the last payment');
    await follower.close();
    expect(heard).toEqual([early.paymentHash, later.paymentHash, last.paymentHash]); // each once, never the unpaid one
    expect(heard).not.toContain(unpaid.paymentHash);
  });
});

describe.each(ENGINES)('rate limits shared by the workers (%s)', (_engine, open) => {
  const HOUR = 3_600_000; // ms
  const T = 1_900_000_000_000; // unix ms

  it('take: five hits in a sliding window, then the wait until the oldest leaves it; prune drops the old hits', async () => {
    const w = await open();
    for (let i = 0; i < 5; i++) expect(await (i % 2 ? w.b : w.a).limits.take('demo:a', 5, HOUR, T + i * 60_000)).toBeNull();
    expect(await w.a.limits.take('demo:a', 5, HOUR, T + 30 * 60_000)).toBe(30 * 60_000); // until T + 1 h
    expect(await w.b.limits.take('demo:b', 5, HOUR, T + 30 * 60_000)).toBeNull(); // another key is unaffected
    expect(await w.b.limits.take('demo:a', 5, HOUR, T + HOUR - 1)).toBe(1);
    expect(await w.b.limits.take('demo:a', 5, HOUR, T + HOUR)).toBeNull(); // the first hit has left the window
    expect(await w.a.limits.take('demo:a', 5, HOUR, T + HOUR + 1)).toBe(59_999); // refusals are not counted as hits
    expect(await w.a.limits.prune(T + 60_000)).toBe(1); // the hit at T only
    expect(await w.a.limits.prune(T + 60_000)).toBe(0);
    expect(await w.a.limits.take('demo:a', 5, HOUR, T + HOUR + 2)).toBe(59_998); // what was pruned was outside the window
  });

  it('take: 30 concurrent hits on one key from two workers let exactly the limit through', async () => {
    const w = await open();
    const taken = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? w.b : w.a).limits.take('demo:x', 5, HOUR, T + i)));
    expect(taken.filter((t) => t === null)).toHaveLength(5);
  });
});

describe('outbox and work leases shared by the workers', () => {
  const intents = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'feedback' as const, status: 'processing' as const, message: `step ${i}` }));
  const ids = (rows: { id: number }[]) => rows.map((r) => r.id);
  const unsigned = (s: Store, owner: string, limit = 100) => s.outbox.claimOutbox(owner, 60_000, { rows: 'unsigned', afterId: 0, limit });
  const unacked = (s: Store, owner: string, ms = 60_000) => s.outbox.claimOutbox(owner, ms, { rows: 'unacked', sinceMs: 0, limit: 100 });

  it('pg: each row is held by one worker at a time, renewed by its holder, taken over once its lease ran out, given up at a stop', async () => {
    const { a, b } = await pgWorkers();
    await a.outbox.insertIntents(null, intents(40), Date.now());
    // Two workers claiming at once, 20 rows each at most: each gets 20 (what the other is locking is skipped).
    const [byA, byB] = await Promise.all([unsigned(a, 'A', 20), unsigned(b, 'B', 20)]);
    expect(ids(byA).filter((id) => ids(byB).includes(id))).toEqual([]);
    expect([byA.length, byB.length]).toEqual([20, 20]);
    expect(ids(await unsigned(b, 'B'))).toEqual(ids(byB)); // renewing: its own rows, none of A's
    expect(ids(await unsigned(a, 'A'))).toEqual(ids(byA));

    // A signs everything it holds; B cannot send those while A's lease runs.
    const signedByA = await a.outbox.storeSigned(byA.map((r) => ({ id: r.id, eventId: `e${r.id}`.padEnd(64, '0'), signedJson: `{"id":"e${r.id}"}` })));
    expect(signedByA).toEqual(ids(byA));
    expect(await unacked(b, 'B')).toEqual([]);
    expect(await b.outbox.holdsUnacked('B')).toBe(true); // its own intents, still to sign
    expect(ids(await unacked(a, 'A'))).toEqual(ids(byA));
    expect(await a.outbox.holdsUnacked('A')).toBe(true);

    // While over two thirds of its lease is left, the holder reads its rows again without writing; past that,
    // its claim renews them.
    const sql = (text: string, ...params: unknown[]) => (a as PgStore).db.$client.query(text, params).then((r) => r.rows as { id: number; until: number }[]);
    const leases = () => sql("select id, lease_until as until from outbox where lease_owner = 'A' and acked_at is null order by id");
    const before = await leases();
    expect(ids(await unacked(a, 'A'))).toEqual(ids(byA));
    expect(await leases()).toEqual(before);
    await sql("update outbox set lease_until = lease_until - 30000 where lease_owner = 'A'"); // 30 s of 60 s left
    expect(ids(await unacked(a, 'A'))).toEqual(ids(byA));
    for (const [i, l] of (await leases()).entries()) expect(l.until).toBeGreaterThan(before[i]!.until - 30000 + 20_000);

    // A stops renewing (it died): once the lease ran out, B takes the rows and A no longer holds them.
    await sql("update outbox set lease_until = 0 where lease_owner = 'A'");
    const taken = await waitFor(async () => {
      const rows = await unacked(b, 'B'); // what B took before is its own now: renewed
      return rows.length === byA.length ? rows : null;
    }, 'B takes the rows over');
    expect(ids(taken)).toEqual(ids(byA));
    expect(await unacked(a, 'A')).toEqual([]);
    expect(await a.outbox.holdsUnacked('A')).toBe(false);

    // B stops gracefully: it gives the rows up and A has them at once.
    expect(await b.outbox.releaseOutbox('B')).toBe(byA.length + byB.length); // its unsigned ones too
    expect(ids(await unacked(a, 'A'))).toEqual(ids(byA));

    // Acked by one relay: no longer unacked; another relay that missed it can still be caught up.
    const first = byA[0]!;
    expect(await a.outbox.recordAcks([{ eventId: `e${first.id}`.padEnd(64, '0'), relay: 'wss://r1', ok: true, message: '' }])).toEqual([first.id]);
    expect(ids(await unacked(a, 'A'))).not.toContain(first.id);
    const missed = (s: Store, owner: string, relay: string) => s.outbox.claimOutbox(owner, 60_000, { rows: 'missed', relay, sinceMs: 0, limit: 500 });
    expect(ids(await missed(a, 'A', 'wss://r1'))).not.toContain(first.id);
    expect(ids(await missed(a, 'A', 'wss://r2'))).toContain(first.id);
    // Catching a relay up leases nothing: B sends r2 the acked event too, not the ones A is sending.
    expect(ids(await missed(b, 'B', 'wss://r2'))).toEqual([first.id]);
    expect(ids(await unacked(a, 'A'))).toEqual(ids(byA).slice(1));
  });

  it('sqlite: one process holds the data directory, so every row is its own (claims are reads)', async () => {
    const { a } = sqliteWorkers();
    await a.outbox.insertIntents(null, intents(3), Date.now());
    const all = ids(await unsigned(a, 'A'));
    expect(all).toHaveLength(3);
    expect(ids(await unsigned(a, 'B'))).toEqual(all);
    expect(await a.outbox.releaseOutbox('A')).toBe(0);
  });

  it.each(ENGINES)('%s: work leases given up at a graceful stop are taken over at once', async (_engine, open) => {
    const w = await open();
    expect(await w.a.jobs.createJob({ job: newJob('leased'), state: 'evaluating', patch: {}, intents: [], lease: { owner: 'A', ms: 3_600_000 } })).toBe(true);
    expect(await w.b.leases.claimLeases('jobs', 'B', 60_000, { limit: 10 })).toEqual([]); // A's lease runs for an hour
    expect(await w.a.leases.releaseLeases('jobs', 'A')).toBe(1);
    expect(await w.b.leases.claimLeases('jobs', 'B', 60_000, { limit: 10 })).toEqual([{ id: 'leased', epoch: 2, previousOwner: 'A' }]);
    expect(await w.a.leases.releaseLeases('jobs', 'A')).toBe(0); // B holds it now
  });
});

describe('request claims: every worker hears a request, one answers it', () => {
  it('pg: one of two workers claiming at once gets it; the holder keeps it; another takes it once it ran out; pruned after', async () => {
    const { a, b } = await pgWorkers();
    const rounds = await Promise.all(Array.from({ length: 20 }, (_, i) => Promise.all([a.leases.claimRequest(`r${i}`, 'A', 60_000), b.leases.claimRequest(`r${i}`, 'B', 60_000)])));
    for (const [byA, byB] of rounds) expect(byA !== byB).toBe(true); // exactly one of the two
    const heldByA = rounds.findIndex(([byA]) => byA);
    const id = `r${heldByA}`;
    expect(await a.leases.claimRequest(id, 'A', 1)).toBe(true); // its holder renews it (here: to run out at once)
    await waitFor(() => b.leases.claimRequest(id, 'B', 60_000), 'B claims it once it ran out');
    expect(await a.leases.claimRequest(id, 'A', 60_000)).toBe(false);
    await a.leases.releaseRequest(id, 'A'); // not A's any more: nothing given up
    expect(await a.leases.claimRequest(id, 'A', 60_000)).toBe(false);
    await b.leases.releaseRequest(id, 'B'); // B stopped before recording it: A may answer at once
    expect(await a.leases.claimRequest(id, 'A', 60_000)).toBe(true);
    expect(await a.leases.pruneRequestClaims(Date.now() + 120_000)).toBe(20);
  });

  it('sqlite: one process holds the data directory, so every request is its own', async () => {
    const { a } = sqliteWorkers();
    expect(await a.leases.claimRequest('r', 'A', 60_000)).toBe(true);
    expect(await a.leases.claimRequest('r', 'B', 60_000)).toBe(true);
  });
});
