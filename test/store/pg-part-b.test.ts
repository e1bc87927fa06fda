// The PostgreSQL store's bootstrap, zaps, kv, stub-invoices and money ops against their SQLite twins: each
// scenario runs on both engines with the same clock (only Date is faked) and must give the same answers, plus
// the answers asserted outright.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshPgDatabase } from '../helpers/pg.ts';
import { mulberry32, printSeedOnFailure, SEED } from '../helpers/seed.ts';
import { openPgStore } from '../../src/store/pg/store.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import type { bootstrapJobs } from '../../schema/tables.ts';
import type { JobState } from '../../src/core/job-machine.ts';
import type { InvoicePurpose, NewBookInvoice, NewJob, PublishIntent, SubjectKind } from '../../src/core/types.ts';

printSeedOnFailure();

const T0 = 1_760_000_000_000; // unix ms: every scenario starts its clock here
const dir = mkdtempSync(join(tmpdir(), 'timmy-pg-part-b-'));
const cleanups: (() => Promise<void>)[] = [];

/** A SQLite store and a PostgreSQL store, both empty. */
async function pair(name: string): Promise<{ sqlite: Store; pg: Store }> {
  const sqlite = openSqliteStore(join(dir, `${name}.db`));
  const db = await freshPgDatabase();
  const pg = await openPgStore(db.url);
  cleanups.push(async () => {
    await sqlite.close();
    await pg.close();
    await db.drop();
  });
  return { sqlite, pg };
}

function tick(ms = 1): void {
  vi.setSystemTime(Date.now() + ms);
}

/** Runs `scenario` on both stores from the same clock; its results must agree. Returns PostgreSQL's. */
async function onBoth<T>(s: { sqlite: Store; pg: Store }, scenario: (store: Store) => Promise<T>): Promise<T> {
  vi.setSystemTime(T0);
  const a = await scenario(s.sqlite);
  vi.setSystemTime(T0);
  const b = await scenario(s.pg);
  expect(b).toEqual(a);
  return b;
}

const invoice = (paymentHash: string, subjectKind: SubjectKind, subjectId: string, purpose: InvoicePurpose, amountMsats: number): NewBookInvoice => ({
  paymentHash,
  subjectKind,
  subjectId,
  purpose,
  account: `${subjectKind}:${subjectId}`,
  amountMsats,
  bolt11: `lnbc${paymentHash}`,
  expiresAt: Math.floor(T0 / 1000) + 3600,
});

const newJob = (id: string, over: Partial<NewJob> = {}): NewJob => ({
  id,
  kind: 5050,
  source: 'nostr',
  customerPubkey: 'pk-customer',
  clientAddress: null,
  requestJson: null,
  encryption: 'none',
  input: 'hello',
  params: {},
  relays: ['wss://r1'],
  bidMsats: null,
  requestCreatedAt: Math.floor(T0 / 1000),
  expiresAt: null,
  ...over,
});

const feedback = (status: 'processing' | 'success' | 'error' | 'payment-required'): PublishIntent => ({ type: 'feedback', status, message: status });

const bootstrapRow = (id: string, over: Partial<typeof bootstrapJobs.$inferInsert> = {}): typeof bootstrapJobs.$inferInsert => ({
  id,
  source: 'http',
  state: 'awaiting_payment',
  customerPubkey: 'pk-node',
  clientAddress: '10.0.0.1',
  requestJson: null,
  relaysJson: JSON.stringify(['wss://r1', 'wss://r2']),
  size: 's-1vcpu-1gb',
  region: 'ams3',
  customerSshKey: null,
  amountMsats: 50_000_000,
  claimTokenHash: 'claim-hash',
  createdAt: Date.now(),
  updatedAt: Date.now(),
  ...over,
});

beforeAll(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
});

afterEach(() => {
  vi.setSystemTime(T0);
});

afterAll(async () => {
  vi.useRealTimers();
  for (const c of cleanups) await c();
  rmSync(dir, { recursive: true, force: true });
});

describe('kv, stub invoices, zaps, bootstrap on PostgreSQL', () => {
  let s: { sqlite: Store; pg: Store };
  beforeAll(async () => {
    s = await pair('ops');
  });

  it('kv: absent, set, overwritten', async () => {
    const out = await onBoth(s, async (st) => {
      const before = await st.kv.getKv('cursor');
      await st.kv.setKv('cursor', '1');
      const first = await st.kv.getKv('cursor');
      await st.kv.setKv('cursor', '2');
      await st.kv.setKv('other', 'x');
      return { before, first, second: await st.kv.getKv('cursor'), other: await st.kv.getKv('other') };
    });
    expect(out).toEqual({ before: undefined, first: '1', second: '2', other: 'x' });
  });

  it('stub invoices: insert, read, paid once', async () => {
    const out = await onBoth(s, async (st) => {
      await st.stubInvoices.insertStubInvoice({ paymentHash: 'h1', preimage: 'p1', bolt11: 'lnbc1', amountMsats: 21_000, expiresAt: 1_760_003_600 });
      const fresh = await st.stubInvoices.getStubInvoice('h1');
      const paid = await st.stubInvoices.markStubInvoicePaid('h1', T0 + 5);
      const again = await st.stubInvoices.markStubInvoicePaid('h1', T0 + 9);
      const unknown = await st.stubInvoices.markStubInvoicePaid('nope', T0);
      return { fresh, paid, again, unknown, after: await st.stubInvoices.getStubInvoice('h1'), missing: await st.stubInvoices.getStubInvoice('nope') };
    });
    expect(out).toEqual({
      fresh: { paymentHash: 'h1', preimage: 'p1', bolt11: 'lnbc1', amountMsats: 21_000, expiresAt: 1_760_003_600, paidAt: null },
      paid: true,
      again: false,
      unknown: false,
      after: { paymentHash: 'h1', preimage: 'p1', bolt11: 'lnbc1', amountMsats: 21_000, expiresAt: 1_760_003_600, paidAt: T0 + 5 },
      missing: undefined,
    });
  });

  it('zaps: recorded, settled once, targets found', async () => {
    const out = await onBoth(s, async (st) => {
      const zap = {
        id: 'zap1', paymentHash: 'zh1', senderPubkey: 'pk-zapper', targetEventId: 'job-z', targetJobId: 'job-z', targetSessionId: null,
        targetPaymentHash: null, amountMsats: 21_000, requestJson: '{"kind":9734}', relays: ['wss://a', 'wss://b'], createdAt: Date.now(),
      };
      await st.zaps.insertZap(zap);
      const fresh = await st.zaps.getZap('zap1');
      const settled = await st.zaps.settleZap('zap1', 'tip', T0 + 10);
      const twice = await st.zaps.settleZap('zap1', 'credited', T0 + 11);
      const unknown = await st.zaps.settleZap('nope', 'tip', T0);
      const after = await st.zaps.getZap('zap1');

      tick();
      await st.jobs.createJob({ job: newJob('job-z'), state: 'awaiting_eval_payment', intents: [feedback('payment-required')] });
      await st.outbox.insertIntents(null, [feedback('success')], Date.now());
      const rows = await st.outbox.unsignedIntents();
      await st.outbox.storeSigned(rows.map((r) => ({ id: r.id, eventId: r.jobId ? 'ev-of-job' : 'ev-of-none', signedJson: '{}' })));
      const events = {
        job: await st.zaps.jobOfEvent('job-z'),
        published: await st.zaps.jobOfEvent('ev-of-job'),
        unowned: await st.zaps.jobOfEvent('ev-of-none'),
        unknown: await st.zaps.jobOfEvent('nope'),
      };

      const none = await st.zaps.openSessionInvoiceOf('pk-s');
      tick();
      await st.sessions.createSession({ id: 'sess-z', state: 'active', pubkey: 'pk-s', clientAddress: null, origin: 'http' }, invoice('dep-z', 'session', 'sess-z', 'deposit', 1000));
      tick();
      await st.invoices.recordInvoice(invoice('top-z1', 'session', 'sess-z', 'topup', 2000), Date.now() - 100); // older than the deposit
      tick();
      await st.invoices.recordInvoice(invoice('top-z2', 'session', 'sess-z', 'topup', 2000), Date.now());
      const deposit = await st.zaps.openSessionInvoiceOf('pk-s');
      await st.invoices.markInvoice('dep-z', 'paid', Date.now());
      const oldestTopup = await st.zaps.openSessionInvoiceOf('pk-s');
      await st.sessions.moveSession({ sessionId: 'sess-z', from: ['active'], to: 'closed' });
      const closed = await st.zaps.openSessionInvoiceOf('pk-s');
      return { fresh, settled, twice, unknown, after, missing: await st.zaps.getZap('nope'), events, none, deposit, oldestTopup, closed };
    });
    expect(out.fresh).toEqual({
      id: 'zap1', paymentHash: 'zh1', senderPubkey: 'pk-zapper', targetEventId: 'job-z', targetJobId: 'job-z', targetSessionId: null,
      targetPaymentHash: null, amountMsats: 21_000, requestJson: '{"kind":9734}', relays: ['wss://a', 'wss://b'], outcome: null, createdAt: T0, paidAt: null,
    });
    expect([out.settled, out.twice, out.unknown]).toEqual([true, false, false]);
    expect(out.after).toMatchObject({ outcome: 'tip', paidAt: T0 + 10 });
    expect(out.missing).toBeUndefined();
    expect(out.events).toEqual({ job: 'job-z', published: 'job-z', unowned: null, unknown: null });
    expect(out.none).toBeNull();
    expect(out.deposit).toEqual({ sessionId: 'sess-z', paymentHash: 'dep-z' });
    expect(out.oldestTopup).toEqual({ sessionId: 'sess-z', paymentHash: 'top-z1' });
    expect(out.closed).toBeNull();
  });

  it('bootstrap: created once, moved by compare-and-set, listed, counted, erased', async () => {
    const out = await onBoth(s, async (st) => {
      const b = st.bootstrap;
      const created = await b.createBootstrap(bootstrapRow('b1'), invoice('inv-b1', 'bootstrap', 'b1', 'order', 50_000_000), [feedback('payment-required')]);
      tick();
      const duplicate = await b.createBootstrap(bootstrapRow('b1'), invoice('inv-b1x', 'bootstrap', 'b1', 'order', 1), [feedback('payment-required')]);
      const dupInvoice = await st.invoices.getInvoice('inv-b1x');
      tick();
      await b.createBootstrap(bootstrapRow('b2', { customerPubkey: null, clientAddress: '10.0.0.2' }), invoice('inv-b2', 'bootstrap', 'b2', 'order', 1), []);
      tick();
      await b.createBootstrap(bootstrapRow('b3', { claimTokenHash: null }), invoice('inv-b3', 'bootstrap', 'b3', 'order', 1), []);
      const first = await b.getBootstrap('b1');
      const exists = [await b.bootstrapExists('b1'), await b.bootstrapExists('nope')];
      const unpaid = [
        await b.countUnpaidBootstraps({ customerPubkey: 'pk-node' }, 10),
        await b.countUnpaidBootstraps({ customerPubkey: 'pk-node' }, 1),
        await b.countUnpaidBootstraps({ clientAddress: '10.0.0.2' }, 10),
        await b.countUnpaidBootstraps({ clientAddress: '10.9.9.9' }, 10),
      ];

      tick();
      const wrongFrom = await b.moveBootstrap({ id: 'b1', from: 'provisioning', to: 'ready', patch: { progress: 'nope' }, intents: [feedback('success')] });
      const afterWrong = await b.getBootstrap('b1');
      tick();
      const paid = await b.moveBootstrap({
        id: 'b1', from: 'awaiting_payment', to: 'provisioning', patch: { progress: 'creating droplet' },
        intents: [feedback('processing')], credits: [{ account: 'pk-node', deltaMsats: 5, reason: 'bonus', jobId: 'b1', ref: 'bonus:b1' }],
        settle: { paymentHash: 'inv-b1', status: 'paid' },
      });
      const b1Invoice = await st.invoices.getInvoice('inv-b1');
      // The invoice moved already: this call does not mark it, so nothing of the move is written.
      await st.invoices.markInvoice('inv-b2', 'paid', Date.now());
      tick();
      const unmarked = await b.moveBootstrap({
        id: 'b2', from: 'awaiting_payment', to: 'provisioning', patch: { progress: 'x' }, intents: [feedback('processing')],
        credits: [{ account: 'pk-x', deltaMsats: 7, reason: 'r', jobId: 'b2', ref: 'r:b2' }], settle: { paymentHash: 'inv-b2', status: 'paid' },
      });
      const afterUnmarked = await b.getBootstrap('b2');
      const b2Outbox = (await st.outbox.outboxForJob('b2')).length;
      const pkXCredit = await st.credits.creditBalanceMsats('pk-x');
      tick();
      const stay = await b.moveBootstrap({ id: 'b1', from: 'provisioning', to: null, patch: { progress: 'booting' } });
      tick();
      const readyAt = Date.now();
      const ready = await b.moveBootstrap({ id: 'b1', from: 'provisioning', to: 'ready', patch: { secretsEnc: 'sealed', readyAt, ip: '192.0.2.1', nodeNpub: 'npub1' } });
      const listed = {
        ready: (await b.listBootstraps(['ready'])).map((j) => j.id),
        some: (await b.listBootstraps(['awaiting_payment', 'ready'])).map((j) => j.id).sort(),
        none: await b.listBootstraps([]),
        newest: (await b.listNodeOrders({ limit: 10 })).map((j) => j.id),
        newestOne: (await b.listNodeOrders({ limit: 1 })).map((j) => j.id),
        unpaidOnly: (await b.listNodeOrders({ states: ['awaiting_payment'], limit: 10 })).map((j) => j.id),
        emptyStates: (await b.listNodeOrders({ states: [], limit: 10 })).map((j) => j.id),
      };
      const stale = { due: (await b.staleCredentials(readyAt)).map((j) => j.id), early: (await b.staleCredentials(readyAt - 1)).map((j) => j.id) };
      tick();
      const erased = await b.eraseCredentials('b1', 'delivered');
      const erasedTwice = await b.eraseCredentials('b1', 'expired');
      const noSecrets = await b.eraseCredentials('b3', null);
      const afterErase = await b.getBootstrap('b1');
      const outbox = (await st.outbox.outboxForJob('b1')).map((r) => r.intent);
      const credits = await st.credits.creditBalanceMsats('pk-node');
      const missing = await b.getBootstrap('nope');
      return {
        created, duplicate, dupInvoice, first, exists, unpaid, wrongFrom, afterWrong, paid, b1Status: b1Invoice?.status, unmarked, afterUnmarked, b2Outbox,
        pkXCredit, stay, ready, listed, stale, erased, erasedTwice, noSecrets, afterErase, outbox, credits, missing,
      };
    });
    expect(out.created).toBe(true);
    expect(out.duplicate).toBe(false);
    expect(out.dupInvoice).toBeUndefined();
    expect(out.first).toMatchObject({ id: 'b1', state: 'awaiting_payment', relays: ['wss://r1', 'wss://r2'], secretsEnc: null, createdAt: T0, updatedAt: T0 });
    expect(out.exists).toEqual([true, false]);
    expect(out.unpaid).toEqual([2, 1, 1, 0]);
    expect(out.wrongFrom).toBe(false);
    expect(out.afterWrong).toEqual(out.first);
    expect(out.paid).toBe(true);
    expect(out.b1Status).toBe('paid');
    expect(out.unmarked).toBe(false);
    expect(out.afterUnmarked).toMatchObject({ state: 'awaiting_payment', progress: null, updatedAt: T0 + 2 });
    expect(out.b2Outbox).toBe(0);
    expect(out.pkXCredit).toBe(0);
    expect(out.stay).toBe(true);
    expect(out.ready).toBe(true);
    expect(out.listed).toEqual({
      ready: ['b1'], some: ['b1', 'b2', 'b3'], none: [], newest: ['b3', 'b2', 'b1'], newestOne: ['b3'], unpaidOnly: ['b3', 'b2'], emptyStates: ['b3', 'b2', 'b1'],
    });
    expect(out.stale).toEqual({ due: ['b1'], early: [] });
    expect([out.erased, out.erasedTwice, out.noSecrets]).toEqual([true, false, false]);
    expect(out.afterErase).toMatchObject({ state: 'delivered', secretsEnc: null, claimTokenHash: null, ip: '192.0.2.1', progress: 'booting' });
    expect(out.afterErase?.erasedAt).toBe(out.afterErase?.updatedAt);
    expect(out.outbox).toEqual([feedback('payment-required'), feedback('processing')]);
    expect(out.credits).toBe(5);
    expect(out.missing).toBeUndefined();
  });

  it('a failed move inside a transaction rolls back only itself (a savepoint)', async () => {
    const out = await onBoth(s, async (st) => {
      await st.bootstrap.createBootstrap(bootstrapRow('bt'), invoice('inv-bt', 'bootstrap', 'bt', 'order', 1), []);
      const inner = await st.tx(async (t) => {
        await t.kv.setKv('in-tx', 'kept');
        return t.bootstrap.moveBootstrap({ id: 'bt', from: 'ready', to: 'delivered', intents: [feedback('success')] });
      });
      const undone = await st.txIf(async (t) => {
        const moved = await t.bootstrap.moveBootstrap({ id: 'bt', from: 'awaiting_payment', to: 'expired', intents: [feedback('error')] });
        await t.kv.setKv('in-txif', 'undone');
        return !moved; // moved: roll the whole transaction back
      });
      return {
        inner, kept: await st.kv.getKv('in-tx'), undone, gone: await st.kv.getKv('in-txif'),
        state: (await st.bootstrap.getBootstrap('bt'))?.state, outbox: (await st.outbox.outboxForJob('bt')).length,
      };
    });
    expect(out).toEqual({ inner: false, kept: 'kept', undone: false, gone: undefined, state: 'awaiting_payment', outbox: 0 });
  });
});

describe('money on PostgreSQL gives what it gives on SQLite', () => {
  it('every money op agrees on the same seeded rows', async () => {
    const s = await pair('money');
    const rand = mulberry32(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

    // The plan is drawn once (no draw inside a step), then played on both stores: every op at its own (strictly
    // later) millisecond.
    const STATES: JobState[] = ['complete', 'failed', 'rejected', 'expired', 'cancelled', 'executing', 'awaiting_eval_payment'];
    const RELAYS = ['wss://c', 'wss://a', 'wss://b'];
    type Step = (st: Store) => Promise<unknown>;
    const plan: { gap: number; step: Step }[] = [];
    const at = (gap: number, step: Step) => plan.push({ gap, step });
    const jobIds: string[] = [];
    for (let i = 0; i < 14; i++) {
      const id = `job${i}`;
      jobIds.push(id);
      const ledger = rand() < 0.7 ? JSON.stringify({ actualInputTokens: int(0, 5000), actualOutputTokens: int(0, 9000), note: 'x' }) : undefined;
      const errorMessage = rand() < 0.4 ? `boom ${i}` : undefined;
      const state = pick(STATES);
      const encryption = pick(['none', 'nip04', 'nip44'] as const);
      const purpose = pick(['eval', 'work'] as const);
      const amount = int(1, 2_000_000);
      at(int(1, 20 * 60_000), (st) =>
        st.jobs.createJob({
          job: newJob(id, { encryption }), state, patch: { ...(ledger ? { costLedgerJson: ledger } : {}), ...(errorMessage ? { errorMessage } : {}) },
          invoice: invoice(`inv-${id}`, 'job', id, purpose, amount), intents: [feedback('payment-required')],
        }),
      );
      if (rand() < 0.7) at(int(1, 10 * 60_000), (st) => st.invoices.markInvoice(`inv-${id}`, 'paid', Date.now()));
      if (rand() < 0.5) {
        at(int(1, 1000), (st) => st.outbox.insertIntents(id, [feedback('processing'), { type: 'result' }], Date.now()));
        at(int(1, 1000), async (st) => {
          const rows = (await st.outbox.outboxForJob(id)).filter((r) => r.eventId === null);
          await st.outbox.storeSigned(rows.map((r) => ({ id: r.id, eventId: `ev-${r.id}`, signedJson: '{}' })));
        });
        // One ack batch per event (relays out of order; a batch shares its time), some refusals.
        for (const k of [0, 1, 2]) {
          const answers = RELAYS.filter(() => rand() < 0.8).map((relay) => ({ relay, ok: rand() < 0.7, message: rand() < 0.5 ? 'blocked: spam' : 'rate-limited' }));
          at(int(1, 5000), async (st) => {
            const rows = await st.outbox.outboxForJob(id);
            const row = rows[k];
            if (row?.eventId) await st.outbox.recordAcks(answers.map((a) => ({ eventId: row.eventId!, ...a })));
          });
        }
      }
      if (rand() < 0.5) {
        const ref = `credit:${id}`;
        const account = pick(['pk-a', 'pk-b', 'pk-c']);
        const delta = int(-3000, 9000);
        // A spend the balance does not cover is refused on both engines alike (CreditRaced).
        at(int(1, 1000), (st) =>
          st.credits.addCredit({ account, deltaMsats: delta, reason: 'refund', jobId: id, ref }).catch((e: Error) => {
            if (e.name !== 'CreditRaced') throw e;
          }),
        );
      }
    }
    for (let i = 0; i < 5; i++) {
      const id = `sess${i}`;
      const session = { id, state: pick(['active', 'depleted', 'awaiting_deposit'] as const), pubkey: rand() < 0.5 ? `pk-s${i}` : null, clientAddress: null, origin: pick(['http', 'l402'] as const) };
      at(int(1, 30 * 60_000), (st) => st.sessions.createSession(session, invoice(`dep-${id}`, 'session', id, 'deposit', 100_000)));
      const entries = Array.from({ length: int(0, 4) }, (_, k) => ({
        kind: pick(['deposit', 'debit', 'reserve', 'release'] as const),
        amount: int(1, 60_000),
        jobId: rand() < 0.5 ? pick(jobIds) : null,
        k,
      }));
      for (const e of entries) {
        at(int(1, 60_000), (st) =>
          st.sessions.addLedger([
            { sessionId: id, kind: e.kind, amountMsats: e.kind === 'deposit' || e.kind === 'release' ? e.amount : -e.amount, jobId: e.jobId, ref: `${id}:${e.k}` },
          ]),
        );
      }
      if (rand() < 0.6) at(int(1, 60_000), (st) => st.invoices.markInvoice(`dep-${id}`, 'paid', Date.now()));
    }
    for (let i = 0; i < 4; i++) {
      const id = `node${i}`;
      at(int(1, 30 * 60_000), (st) => st.bootstrap.createBootstrap(bootstrapRow(id), invoice(`inv-${id}`, 'bootstrap', id, 'order', 7_000_000), []));
      if (rand() < 0.6) {
        at(int(1, 60_000), (st) => st.bootstrap.moveBootstrap({ id, from: 'awaiting_payment', to: 'provisioning', settle: { paymentHash: `inv-${id}`, status: 'paid' } }));
        if (rand() < 0.6) at(int(1, 60_000), (st) => st.bootstrap.moveBootstrap({ id, from: 'provisioning', to: 'failed', patch: { errorMessage: `droplet ${i} failed` } }));
      }
    }
    // Rows every seed has: a finished job with usage, a processing event acked by three relays in one batch
    // (listed out of order: ties on `at`), a refusal, credits and session entries of the job, a failed node.
    at(1000, (st) =>
      st.jobs.createJob({
        job: newJob('jobD', { encryption: 'nip44' }), state: 'failed',
        patch: { costLedgerJson: JSON.stringify({ actualInputTokens: 1234, actualOutputTokens: 5678 }), errorMessage: 'model down' },
        invoice: invoice('inv-jobD', 'job', 'jobD', 'work', 777_000), intents: [feedback('processing')],
      }),
    );
    at(1000, (st) => st.invoices.markInvoice('inv-jobD', 'paid', Date.now()));
    at(1000, async (st) => {
      const rows = await st.outbox.outboxForJob('jobD');
      await st.outbox.storeSigned(rows.map((r) => ({ id: r.id, eventId: `ev-${r.id}`, signedJson: '{}' })));
    });
    at(1000, async (st) => {
      const [row] = await st.outbox.outboxForJob('jobD');
      await st.outbox.recordAcks(
        [['wss://c', true], ['wss://a', false], ['wss://b', true]].map(([relay, ok]) => ({ eventId: row!.eventId!, relay: relay as string, ok: ok as boolean, message: ok ? '' : 'blocked: jobD' })),
      );
    });
    at(1000, (st) => st.credits.addCredit({ account: 'pk-d', deltaMsats: 4321, reason: 'refund', jobId: 'jobD', ref: 'refund:jobD' }));
    at(1000, (st) => st.sessions.addLedger([{ sessionId: 'sess0', kind: 'debit', amountMsats: -999, jobId: 'jobD', ref: 'debit:jobD' }]));
    at(1000, (st) => st.bootstrap.createBootstrap(bootstrapRow('nodeD'), invoice('inv-nodeD', 'bootstrap', 'nodeD', 'order', 1), []));
    at(1000, (st) => st.bootstrap.moveBootstrap({ id: 'nodeD', from: 'awaiting_payment', to: 'provisioning', settle: { paymentHash: 'inv-nodeD', status: 'paid' } }));
    at(1000, (st) => st.bootstrap.moveBootstrap({ id: 'nodeD', from: 'provisioning', to: 'failed', patch: { errorMessage: 'no droplet' } }));
    jobIds.push('jobD');
    // A paid zap invoice counts under its own purpose besides the five.
    at(1000, (st) => st.invoices.recordInvoice(invoice('inv-zap', 'zap', 'zap1', 'zap', 4242), Date.now()));
    at(1000, (st) => st.invoices.markInvoice('inv-zap', 'paid', Date.now()));
    // plan played in order, time advancing
    const play = async (st: Store) => {
      for (const p of plan) {
        tick(p.gap);
        await p.step(st);
      }
    };

    const now = T0 + plan.reduce((n, p) => n + p.gap, 0) + 1;
    const mid = T0 + Math.floor((now - T0) / 2);
    const results = await onBoth(s, async (st) => {
      await play(st);
      const acked = (await Promise.all(jobIds.map((id) => st.outbox.outboxForJob(id)))).flat().filter((r) => r.ackedAt !== null);
      return {
        received: await st.money.receivedMsats(),
        receivedSince: await st.money.receivedMsats(mid),
        debits: await st.money.sessionDebitsMsats(),
        debitsSince: await st.money.sessionDebitsMsats(mid),
        usage: await st.money.modelUsage(),
        usageSince: await st.money.modelUsage(mid),
        held: await st.money.sessionsHeldMsats(),
        owed: await st.money.creditsOwedMsats(),
        nodes: await st.money.countNodeOrdersByState(),
        errors: await st.money.recentErrors(),
        errors3: await st.money.recentErrors(3),
        errorsAll: await st.money.recentErrors(100),
        series: await st.money.moneySeries(T0, 15 * 60_000, now),
        seriesSince: await st.money.moneySeries(mid, 3_600_000, now),
        latencies: await st.money.processingLatencies({}),
        latencies2: await st.money.processingLatencies({ limit: 2 }),
        latenciesOf: await st.money.processingLatencies({ ids: acked.map((r) => r.id), ackedSince: mid }),
        latenciesOfAll: await st.money.processingLatencies({ ids: acked.map((r) => r.id) }),
        latenciesNone: await st.money.processingLatencies({ ids: [] }),
        relays: await st.money.relayAcks(),
        sessions: await st.money.listSessionSummaries(),
        sessions2: await st.money.listSessionSummaries(2),
        events: await Promise.all([...jobIds, 'node0', 'nope'].map((id) => st.money.eventsWithAcks(id))),
        ledgers: await Promise.all([...jobIds, 'nope'].map((id) => st.money.ledgersOfJob(id))),
      };
    });

    // The comparison above is worth something only if the rows gave the queries something to do.
    const sumAll = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    expect(sumAll(results.received)).toBeGreaterThan(0);
    expect(results.received.zap).toBe(4242);
    expect(Object.keys(results.received).slice(0, 5)).toEqual(['eval', 'work', 'deposit', 'topup', 'order']);
    expect(results.usage.jobs).toBeGreaterThan(0);
    expect(results.usage.inputTokens).toBeGreaterThan(0);
    expect(results.sessions).toHaveLength(5);
    expect(results.sessions2).toHaveLength(2);
    expect(results.events.flat().length).toBeGreaterThan(0);
    expect(results.events.flat().some((e) => e.acks.length > 1)).toBe(true);
    expect(results.relays.map((r) => r.relay)).toEqual(['wss://a', 'wss://b', 'wss://c']);
    expect(results.series.length).toBeGreaterThan(2);
    expect(results.latencies.length).toBeGreaterThan(0);
    expect(results.latencies2.length).toBe(Math.min(2, results.latencies.length));
    expect(results.latenciesNone).toEqual([]);
    expect(results.ledgers.some((l) => l.credits.length + l.session.length > 0)).toBe(true);
    expect(results.errorsAll.length).toBeGreaterThan(0);
    expect(results.errorsAll.find((e) => e.id === 'jobD')).toMatchObject({ subject: 'job', state: 'failed', message: 'model down', encrypted: true });
    expect(results.errorsAll.find((e) => e.id === 'nodeD')).toMatchObject({ subject: 'node', state: 'failed', message: 'no droplet', encrypted: false });
    expect(results.relays.find((r) => r.relay === 'wss://a')?.refused).toBeGreaterThan(0);
    expect(results.events[jobIds.indexOf('jobD')]![0]!.acks.map((a) => a.relay)).toEqual(['wss://a', 'wss://b', 'wss://c']);
    expect(results.ledgers[jobIds.indexOf('jobD')]).toEqual({
      credits: [{ account: 'pk-d', deltaMsats: 4321, reason: 'refund', createdAt: expect.any(Number) }],
      session: [{ sessionId: 'sess0', kind: 'debit', amountMsats: -999, createdAt: expect.any(Number) }],
    });
    for (const e of results.errorsAll) expect(typeof e.encrypted).toBe('boolean');

    // changeCount: a fingerprint that moves with a write (not comparable across engines).
    for (const st of [s.sqlite, s.pg]) {
      const before = await st.money.changeCount();
      expect(Number.isSafeInteger(before)).toBe(true);
      if (st === s.sqlite) expect(await st.money.changeCount()).toBe(before); // PG's moves with the whole cluster's writes too
      await st.kv.setKv('touch', String(before));
      const after = await st.money.changeCount();
      expect(after).not.toBe(before);
      await st.tx(async (t) => t.kv.setKv('touch', 'again'));
      expect(await st.money.changeCount()).not.toBe(after);
    }
  });
});
