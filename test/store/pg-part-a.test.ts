// The PostgreSQL twins of the jobs, invoices, credits, sessions and outbox modules (src/store/pg/): one
// scripted run of every op on SQLite and on PostgreSQL gives the same answers and leaves the same rows; failed
// compare-and-sets write nothing; settlements move once; concurrent reservations never overdraw a session.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshPgDatabase } from '../helpers/pg.ts';
import { openPgStore, type PgStore } from '../../src/store/pg/store.ts';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import type { NewBookInvoice, NewJob, PublishIntent } from '../../src/core/types.ts';
import { UNPAID_JOB_STATES } from '../../src/core/job-machine.ts';

const T0 = Date.UTC(2030, 0, 1); // unix ms; the scenario's clock starts here and moves 1 ms per step

function newJob(id: string, over: Partial<NewJob> = {}): NewJob {
  return {
    id, kind: 5050, source: 'nostr', customerPubkey: 'p'.repeat(64), clientAddress: null, requestJson: '{"id":"x"}', encryption: 'none',
    input: `prompt ${id}`, params: { maxTokens: 10 }, relays: ['wss://r1'], bidMsats: null, requestCreatedAt: 1_900_000_000, expiresAt: null, ...over,
  };
}

function inv(paymentHash: string, subjectKind: NewBookInvoice['subjectKind'], subjectId: string, purpose: NewBookInvoice['purpose'], amountMsats: number, expiresAt = 1_900_000_600): NewBookInvoice {
  return { paymentHash, subjectKind, subjectId, purpose, account: `${subjectKind}:${subjectId}`, amountMsats, bolt11: `lnbc-${paymentHash}`, expiresAt };
}

const fb = (status: 'payment-required' | 'processing' | 'error' | 'success', message = status): PublishIntent => ({ type: 'feedback', status, message });

/** Answers of ops whose order SQL leaves open, in one order. */
const sorted = <T>(rows: T[]): T[] => [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

/** Every row of the tables these modules write, in a fixed order: what "wrote nothing" compares. */
async function snapshot(s: Store): Promise<unknown> {
  return {
    jobs: await s.jobs.listJobs(),
    invoices: sorted(await s.invoices.liveInvoices('', 10_000)),
    counts: sorted(await s.invoices.countInvoices()),
    open: await Promise.all((['job', 'session', 'bootstrap', 'zap'] as const).map((k) => s.invoices.openInvoiceCount(k))),
    credits: await s.credits.creditEntries(undefined, 10_000),
    outboxDepth: await s.outbox.outboxDepth(),
    unsigned: await s.outbox.unsignedIntents(0, 10_000),
    reservations: sorted(await s.sessions.openReservations()),
  };
}

/**
 * Every op of the five groups at least once, in an order that exercises their edge cases; returns each
 * answer under a label. The clock is fixed per step, so both engines write the same timestamps.
 */
async function scenario(s: Store): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  let step = 0;
  const at = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
    vi.setSystemTime(T0 + ++step);
    const v = await f();
    out[label] = v;
    return v;
  };
  const P = 'p'.repeat(64);
  const now = () => T0 + step;

  // credits
  await at('addCredit', () => s.credits.addCredit({ account: P, deltaMsats: 5_000, reason: 'refund', jobId: null, ref: 'c1' }));
  await at('addCredit again', () => s.credits.addCredit({ account: P, deltaMsats: 9_999, reason: 'refund', jobId: null, ref: 'c1' }));
  await at('addCredit other', () => s.credits.addCredit({ account: 'q', deltaMsats: 3_000, reason: 'refund', jobId: null, ref: 'c0' }));
  await at('addCredit spend', () => s.credits.addCredit({ account: 'q', deltaMsats: -2_000, reason: 'spend', jobId: 'j1', ref: 'c2' }));
  await at('creditBalanceMsats', () => s.credits.creditBalanceMsats(P));
  await at('creditBalanceMsats none', () => s.credits.creditBalanceMsats('nobody'));
  await at('creditEntries P', () => s.credits.creditEntries(P));
  await at('creditEntries all', () => s.credits.creditEntries(undefined, 1));
  await at('creditBalances', async () => sorted(await s.credits.creditBalances()));

  // jobs and their invoices (hashes of mixed case: keyset paging must follow byte order, 'Z' < '_' < 'a')
  const j1 = newJob('j1');
  await at('createJob', () =>
    s.jobs.createJob({ job: j1, state: 'awaiting_eval_payment', patch: { evalPaymentHash: 'ah1' }, invoice: inv('ah1', 'job', 'j1', 'eval', 1_000), intents: [fb('payment-required')] }),
  );
  await at('createJob again', () =>
    s.jobs.createJob({ job: j1, state: 'awaiting_eval_payment', patch: { evalPaymentHash: 'ah1x' }, invoice: inv('ah1x', 'job', 'j1', 'eval', 1_000), intents: [fb('payment-required')] }),
  );
  await at('createJob j2', () =>
    s.jobs.createJob({ job: newJob('j2'), state: 'awaiting_eval_payment', patch: { evalPaymentHash: 'Zh2' }, invoice: inv('Zh2', 'job', 'j2', 'eval', 1_000, 1_900_000_100), intents: [fb('payment-required')] }),
  );
  await at('createJob j3 refused', () =>
    s.jobs.createJob({
      job: newJob('j3', { source: 'http', customerPubkey: null, clientAddress: '10.0.0.1', requestJson: null }), state: 'failed',
      patch: { errorMessage: 'too long' }, intents: [], credits: [{ account: 'job:j3', deltaMsats: 1, reason: 'x', jobId: 'j3', ref: 'c3' }],
    }),
  );
  await at('getJob', () => s.jobs.getJob('j1'));
  await at('getJob none', () => s.jobs.getJob('none'));
  await at('jobExists', async () => [await s.jobs.jobExists('j1'), await s.jobs.jobExists('none')]);
  await at('unpaidNostrJobIds', () => s.jobs.unpaidNostrJobIds(10));
  await at('unpaidNostrJobIds 1', () => s.jobs.unpaidNostrJobIds(1));
  await at('listJobs', () => s.jobs.listJobs());
  await at('listJobs failed', () => s.jobs.listJobs({ states: ['failed'], limit: 5 }));
  await at('countJobsOf', () => s.jobs.countJobsOf(UNPAID_JOB_STATES, { customerPubkey: P }, 10));
  await at('countJobsOf capped', () => s.jobs.countJobsOf(UNPAID_JOB_STATES, { customerPubkey: P }, 1));
  await at('countJobsOf address', () => s.jobs.countJobsOf(['failed', 'complete'], { clientAddress: '10.0.0.1' }, 5));
  await at('countJobsOf none', () => s.jobs.countJobsOf([], { clientAddress: '10.0.0.1' }, 5));
  await at('openInvoiceCount job', () => s.invoices.openInvoiceCount('job'));
  await at('getInvoice', () => s.invoices.getInvoice('ah1'));

  // compare-and-sets
  await at('transition wrong from', () => s.jobs.transitionJob({ jobId: 'j1', from: 'evaluating', to: 'executing', intents: [fb('processing')] }));
  await at('transition eval paid', () =>
    s.jobs.transitionJob({ jobId: 'j1', from: 'awaiting_eval_payment', to: 'evaluating', settle: { paymentHash: 'ah1', status: 'paid' }, intents: [fb('processing')] }),
  );
  await at('transition eval paid again', () =>
    s.jobs.transitionJob({ jobId: 'j1', from: 'awaiting_eval_payment', to: 'evaluating', settle: { paymentHash: 'ah1', status: 'paid' }, intents: [fb('processing')] }),
  );
  await at('markInvoice Zh2', () => s.invoices.markInvoice('Zh2', 'paid', now()));
  await at('markInvoice Zh2 again', () => s.invoices.markInvoice('Zh2', 'paid', now()));
  // the job moves only if this call marks the invoice: already paid, so j2 stays
  await at('transition j2 settled before', () =>
    s.jobs.transitionJob({ jobId: 'j2', from: 'awaiting_eval_payment', to: 'evaluating', settle: { paymentHash: 'Zh2', status: 'paid' }, intents: [fb('processing')] }),
  );
  await at('getJob j2', () => s.jobs.getJob('j2'));
  await at('transition accepted', () =>
    s.jobs.transitionJob({
      jobId: 'j1', from: 'evaluating', to: 'awaiting_work_payment', patch: { workPaymentHash: '_h3', reason: 'fine', pricingJson: '{"a":1}' },
      invoice: inv('_h3', 'job', 'j1', 'work', 7_000, 1_900_000_300), intents: [fb('payment-required')],
      credits: [{ account: P, deltaMsats: -500, reason: 'applied', jobId: 'j1', ref: 'apply:j1' }],
    }),
  );
  await at('openInvoiceCount job 2', () => s.invoices.openInvoiceCount('job'));

  // invoices on their own
  await at('recordInvoice', () => s.invoices.recordInvoice(inv('bh4', 'zap', 'z1', 'zap', 2_100, 1_900_000_050), now()));
  await at('recordInvoice 2', () => s.invoices.recordInvoice(inv('Ah5', 'zap', 'z2', 'zap', 2_200, 1_900_000_900), now()));
  await at('expireInvoice', () => s.invoices.expireInvoice('bh4', now()));
  await at('expireInvoice again', () => s.invoices.expireInvoice('bh4', now()));
  await at('settleLate', () =>
    s.invoices.settleLate({ paymentHash: 'bh4', credit: { account: 'zap:z1', deltaMsats: 2_100, reason: 'late', jobId: null, ref: 'late:bh4' }, subjectId: 'z1', intents: [fb('success')] }, now()),
  );
  await at('settleLate again', () =>
    s.invoices.settleLate({ paymentHash: 'bh4', credit: { account: 'zap:z1', deltaMsats: 2_100, reason: 'late', jobId: null, ref: 'late:bh4b' }, subjectId: 'z1', intents: [fb('success')] }, now()),
  );
  await at('withdraw', () => s.invoices.markInvoice('Ah5', 'withdrawn', now()));
  await at('dueInvoices', () => s.invoices.dueInvoices(1_900_000_400));
  await at('dueInvoices 1', () => s.invoices.dueInvoices(1_900_000_400, 1));
  await at('liveInvoices', () => s.invoices.liveInvoices());
  await at('liveInvoices page 1', () => s.invoices.liveInvoices('', 1));
  await at('liveInvoices page 2', () => s.invoices.liveInvoices('Ah5', 1));
  await at('liveInvoices page 3', () => s.invoices.liveInvoices('_h3', 1));
  await at('oldestOpen', () => s.invoices.oldestOpen('job', 'work', 5));
  await at('invoicesOf', () => s.invoices.invoicesOf('job', 'j1'));
  await at('countInvoices', async () => sorted(await s.invoices.countInvoices()));
  await at('recountOpenInvoices', () => s.invoices.recountOpenInvoices());
  await at('openInvoiceCounts', async () => Promise.all((['job', 'session', 'bootstrap', 'zap'] as const).map((k) => s.invoices.openInvoiceCount(k))));

  // sessions
  await at('createSession', () => s.sessions.createSession({ id: 's1', state: 'awaiting_deposit', pubkey: null, clientAddress: '10.0.0.1', origin: 'http' }, inv('sh1', 'session', 's1', 'deposit', 100_000)));
  await at('getSession', () => s.sessions.getSession('s1'));
  await at('countSessionsOf', () => s.sessions.countSessionsOf(['awaiting_deposit', 'active'], '10.0.0.1', 5));
  await at('moveSession wrong from', () =>
    s.sessions.moveSession({ sessionId: 's1', from: ['active'], to: 'depleted', ledger: [{ sessionId: 's1', kind: 'deposit', amountMsats: 5, ref: 'bad' }] }),
  );
  await at('moveSession deposit', () =>
    s.sessions.moveSession({
      sessionId: 's1', from: ['awaiting_deposit'], to: 'active', settle: { paymentHash: 'sh1', status: 'paid' }, touch: true,
      ledger: [{ sessionId: 's1', kind: 'deposit', amountMsats: 100_000, paymentHash: 'sh1', ref: 'deposit:sh1' }],
      credits: [{ account: 'session:s1', deltaMsats: 0, reason: 'noop', jobId: null, ref: 'c-s1' }],
    }),
  );
  await at('moveSession deposit again', () =>
    s.sessions.moveSession({ sessionId: 's1', from: ['awaiting_deposit', 'active'], to: 'active', settle: { paymentHash: 'sh1', status: 'paid' }, ledger: [{ sessionId: 's1', kind: 'deposit', amountMsats: 100_000, ref: 'deposit:sh1:again' }] }),
  );
  await at('balanceMsats', () => s.sessions.balanceMsats('s1'));
  await at('createSessionJob', () => s.jobs.createSessionJob({ job: newJob('j4'), state: 'executing', intents: [fb('processing')], sessionId: 's1', reserveMsats: 30_000 }));
  await at('createSessionJob duplicate', () => s.jobs.createSessionJob({ job: newJob('j4'), state: 'executing', intents: [fb('processing')], sessionId: 's1', reserveMsats: 30_000 }));
  await at('createSessionJob insufficient', () => s.jobs.createSessionJob({ job: newJob('j5'), state: 'executing', intents: [], sessionId: 's1', reserveMsats: 70_001 }));
  await at('createSessionJob unavailable', () => s.jobs.createSessionJob({ job: newJob('j6'), state: 'executing', intents: [], sessionId: 'nope', reserveMsats: 1 }));
  await at('openReservations', () => s.sessions.openReservations());
  await at('reservedFor', () => s.sessions.reservedFor('j4'));
  await at('debitedFor before', () => s.sessions.debitedFor('j4'));
  await at('transition complete on session', () =>
    s.jobs.transitionJob({
      jobId: 'j4', from: 'executing', to: 'complete', patch: { result: 'done', costLedgerJson: '{"usd":1}' }, intents: [{ type: 'result', balanceMsats: 88_000 }],
      sessionLedger: [
        { sessionId: 's1', kind: 'release', amountMsats: 30_000, jobId: 'j4', ref: 'release:j4' },
        { sessionId: 's1', kind: 'debit', amountMsats: -12_000, jobId: 'j4', ref: 'debit:j4' },
      ],
    }),
  );
  await at('debitedFor', () => s.sessions.debitedFor('j4'));
  await at('openReservations after', () => s.sessions.openReservations());
  await at('addLedger', () =>
    s.sessions.addLedger([
      { sessionId: 's1', kind: 'topup', amountMsats: 1, ref: 'dup' },
      { sessionId: 's1', kind: 'topup', amountMsats: 2, ref: 'dup' },
      { sessionId: 's1', kind: 'topup', amountMsats: 3, ref: 'debit:j4' },
    ]),
  );
  await at('ledger', () => s.sessions.ledger('s1'));
  await at('balanceMsats after', () => s.sessions.balanceMsats('s1'));
  await at('createSession s2', () => s.sessions.createSession({ id: 's2', state: 'awaiting_deposit', pubkey: P, clientAddress: null, origin: 'l402' }, inv('sh2', 'session', 's2', 'deposit', 5_000)));
  await at('purgeUnpaidSession paid one', () => s.sessions.purgeUnpaidSession('s1', 'sh1'));
  await at('purgeUnpaidSession', () => s.sessions.purgeUnpaidSession('s2', 'sh2'));
  await at('purgeUnpaidSession again', () => s.sessions.purgeUnpaidSession('s2', 'sh2'));
  await at('getSession s2', () => s.sessions.getSession('s2'));
  await at('getInvoice sh2', () => s.invoices.getInvoice('sh2'));
  await at('idleSessions', () => s.sessions.idleSessions(['active', 'depleted'], T0 + 1_000_000));
  await at('idleSessions none', () => s.sessions.idleSessions(['active'], T0));

  // outbox
  const unsigned = await at('unsignedIntents', () => s.outbox.unsignedIntents());
  await at('unsignedIntents after', () => s.outbox.unsignedIntents(unsigned[1]!.id, 2));
  const [o1, o2, o3] = unsigned;
  await at('storeSigned', () =>
    s.outbox.storeSigned([
      { id: o2!.id, eventId: 'e2', signedJson: '{"id":"e2"}' },
      { id: o1!.id, eventId: 'e1', signedJson: '{"id":"e1"}' },
      { id: o2!.id, eventId: 'e2x', signedJson: '{"id":"e2x"}' },
      { id: 999_999, eventId: 'e9', signedJson: '{}' },
    ]),
  );
  await at('storeSigned again', () => s.outbox.storeSigned([{ id: o1!.id, eventId: 'e1b', signedJson: '{"id":"e1b"}' }, { id: o3!.id, eventId: 'e3', signedJson: '{"id":"e3"}' }]));
  await at('storeSigned none', () => s.outbox.storeSigned([]));
  await at('unackedEvents', () => s.outbox.unackedEvents());
  await at('notAckedBy', () => s.outbox.notAckedBy('wss://r1', 0));
  await at('noteAttempt', () => s.outbox.noteAttempt(o1!.id));
  await at('recordAcks', () =>
    s.outbox.recordAcks([
      { eventId: 'e1', relay: 'wss://r1', ok: true, message: '' },
      { eventId: 'e1', relay: 'wss://r2', ok: false, message: 'blocked' },
      { eventId: 'unknown', relay: 'wss://r1', ok: true, message: '' },
      { eventId: 'e2', relay: 'wss://r2', ok: false, message: 'rate-limited' },
      { eventId: 'e1', relay: 'wss://r2', ok: true, message: 'duplicate:' },
    ]),
  );
  await at('recordAcks none', () => s.outbox.recordAcks([]));
  await at('notAckedBy r1', () => s.outbox.notAckedBy('wss://r1', 0));
  await at('notAckedBy r2', () => s.outbox.notAckedBy('wss://r2', 0));
  await at('unackedEvents after', () => s.outbox.unackedEvents(1));
  await at('outboxDepth', () => s.outbox.outboxDepth());
  await at('outboxForJob', () => s.outbox.outboxForJob('j1'));
  await at('dropIntent signed', () => s.outbox.dropIntent(o1!.id));
  await at('dropIntent unsigned', () => s.outbox.dropIntent(unsigned[3]!.id));
  await at('outboxDepth after', () => s.outbox.outboxDepth());

  // purging the never-served
  await at('transition j2 cancelled', () => s.jobs.transitionJob({ jobId: 'j2', from: 'awaiting_eval_payment', to: 'cancelled', intents: [fb('error')] }));
  await at('countJobsByState', () => s.jobs.countJobsByState());
  await at('purgeUnserved 1', () => s.jobs.purgeUnserved(T0 + 1_000_000, 1));
  await at('purgeUnserved', () => s.jobs.purgeUnserved(T0 + 1_000_000));
  await at('purgeUnserved none', () => s.jobs.purgeUnserved(T0 + 1_000_000));
  await at('jobs left', async () => (await s.jobs.listJobs()).map((j) => j.id));
  await at('outbox of j2', () => s.outbox.outboxForJob('j2'));
  await at('countJobsByState after', () => s.jobs.countJobsByState());
  await at('snapshot', () => snapshot(s));
  // Last: a refused insert still uses up a PostgreSQL sequence number (ids after it would differ from SQLite's).
  await at('addCredit overdraft', () => s.credits.addCredit({ account: 'q', deltaMsats: -1_001, reason: 'spend', jobId: 'j1', ref: 'c2b' }).catch((e: Error) => e.name));
  await at('creditBalanceMsats after overdraft', () => s.credits.creditBalanceMsats('q'));
  return out;
}

describe('src/store/pg: jobs, invoices, credits, sessions, outbox', () => {
  let dir: string;
  let sqlite: SqliteStore;
  let pgDbs: { url: string; drop(): Promise<void> }[] = [];
  let pgStores: PgStore[] = [];

  async function freshPg(): Promise<PgStore> {
    const db = await freshPgDatabase();
    pgDbs.push(db);
    const store = await openPgStore(db.url);
    pgStores.push(store);
    return store;
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'timmy-pg-part-a-'));
    sqlite = openSqliteStore(join(dir, 'timmy.db'));
  });

  afterAll(async () => {
    for (const s of pgStores) await s.close();
    for (const d of pgDbs) await d.drop();
    await sqlite?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    pgDbs = [];
    pgStores = [];
  });

  it('every op answers and writes as the SQLite one does', async () => {
    const pg = await freshPg();
    vi.useFakeTimers({ toFake: ['Date'] });
    let onSqlite: Record<string, unknown>;
    let onPg: Record<string, unknown>;
    try {
      onSqlite = await scenario(sqlite);
      onPg = await scenario(pg);
    } finally {
      vi.useRealTimers();
    }
    expect(Object.keys(onPg)).toEqual(Object.keys(onSqlite));
    for (const label of Object.keys(onSqlite)) expect([label, onPg[label]]).toEqual([label, onSqlite[label]]);

    // A few answers spelled out, so the two engines cannot agree on something wrong.
    expect(onPg['addCredit']).toBe(true);
    expect(onPg['addCredit again']).toBe(false);
    expect(onPg['creditBalanceMsats']).toBe(5_000);
    expect([onPg['addCredit overdraft'], onPg['creditBalanceMsats after overdraft']]).toEqual(['CreditRaced', 1_000]); // never below zero
    expect(onPg['creditBalances']).toEqual([{ account: 'p'.repeat(64), balanceMsats: 5_000 }, { account: 'q', balanceMsats: 1_000 }]);
    expect(onPg['createJob again']).toBe(false);
    expect(onPg['countJobsOf']).toBe(2);
    expect(onPg['countJobsOf capped']).toBe(1); // both wait for their evaluation: one state, counted up to 1
    expect(onPg['transition wrong from']).toBe(false);
    expect(onPg['transition eval paid']).toBe(true);
    expect(onPg['transition eval paid again']).toBe(false);
    expect([onPg['markInvoice Zh2'], onPg['markInvoice Zh2 again'], onPg['transition j2 settled before']]).toEqual([true, false, false]);
    expect((onPg['getJob j2'] as { state: string }).state).toBe('awaiting_eval_payment');
    expect(onPg['openInvoiceCount job 2']).toBe(1);
    expect([onPg['settleLate'], onPg['settleLate again']]).toEqual([true, false]);
    expect((onPg['liveInvoices'] as { paymentHash: string }[]).map((i) => i.paymentHash)).toEqual(['Ah5', '_h3']);
    expect(onPg['openInvoiceCounts']).toEqual([1, 0, 0, 0]);
    expect([onPg['moveSession wrong from'], onPg['moveSession deposit'], onPg['moveSession deposit again']]).toEqual([false, true, false]);
    expect(onPg['balanceMsats']).toBe(100_000);
    expect([onPg['createSessionJob'], onPg['createSessionJob duplicate'], onPg['createSessionJob insufficient'], onPg['createSessionJob unavailable']]).toEqual([
      'created', 'duplicate', 'insufficient', 'unavailable',
    ]);
    expect(onPg['openReservations']).toEqual([{ sessionId: 's1', jobId: 'j4', amountMsats: 30_000 }]);
    expect([onPg['reservedFor'], onPg['debitedFor']]).toEqual([30_000, 12_000]);
    expect(onPg['balanceMsats after']).toBe(100_000 - 12_000 + 1);
    expect((onPg['ledger'] as { ref: string; amountMsats: number }[]).map((e) => [e.ref, e.amountMsats])).toEqual([
      ['deposit:sh1', 100_000], ['reserve:j4', -30_000], ['release:j4', 30_000], ['debit:j4', -12_000], ['dup', 1],
    ]);
    expect([onPg['purgeUnpaidSession paid one'], onPg['purgeUnpaidSession'], onPg['purgeUnpaidSession again'], onPg['getSession s2']]).toEqual([false, true, false, undefined]);
    expect((onPg['getInvoice sh2'] as { status: string }).status).toBe('expired');
    const [o1, o2] = (onPg['unsignedIntents'] as { id: number }[]).map((r) => r.id);
    expect(onPg['storeSigned']).toEqual([o2, o1]);
    expect(onPg['storeSigned again']).toEqual([(onPg['unsignedIntents'] as { id: number }[])[2]!.id]);
    expect(onPg['recordAcks']).toEqual([o1, o1]);
    expect((onPg['notAckedBy r1'] as { id: number }[]).map((r) => r.id)).toEqual([o2, (onPg['unsignedIntents'] as { id: number }[])[2]!.id]);
    expect(onPg['purgeUnserved 1']).toBe(1);
    expect(onPg['purgeUnserved']).toBe(1);
    expect(onPg['jobs left']).toEqual(['j4', 'j1']);
  });

  it('a failed compare-and-set writes nothing, also when its first statement matched', async () => {
    const pg = await freshPg();
    await pg.jobs.createJob({ job: newJob('j1'), state: 'awaiting_eval_payment', invoice: inv('h1', 'job', 'j1', 'eval', 1_000), intents: [fb('payment-required')] });
    await pg.sessions.createSession({ id: 's1', state: 'awaiting_deposit', pubkey: null, clientAddress: null, origin: 'http' }, inv('sh1', 'session', 's1', 'deposit', 9_000));
    await pg.invoices.markInvoice('h1', 'expired', Date.now());
    await pg.invoices.markInvoice('sh1', 'paid', Date.now());
    const before = await snapshot(pg);
    const sessionBefore = await pg.sessions.getSession('s1');
    // The job is in `from` (its update matches) but the invoice was already settled: all of it rolls back.
    expect(
      await pg.jobs.transitionJob({
        jobId: 'j1', from: 'awaiting_eval_payment', to: 'evaluating', settle: { paymentHash: 'h1', status: 'expired' }, intents: [fb('processing')],
        invoice: inv('h2', 'job', 'j1', 'work', 5), credits: [{ account: 'a', deltaMsats: 1, reason: 'r', jobId: 'j1', ref: 'r1' }],
      }),
    ).toBe(false);
    expect(
      await pg.sessions.moveSession({
        sessionId: 's1', from: ['awaiting_deposit'], to: 'active', settle: { paymentHash: 'sh1', status: 'paid' }, touch: true,
        ledger: [{ sessionId: 's1', kind: 'deposit', amountMsats: 9_000, ref: 'deposit:sh1' }],
      }),
    ).toBe(false);
    expect(await pg.jobs.transitionJob({ jobId: 'j1', from: 'executing', to: 'complete', intents: [fb('success')] })).toBe(false);
    expect(await pg.sessions.purgeUnpaidSession('s1', 'sh1')).toBe(false); // the session row matched, the invoice did not
    expect(await snapshot(pg)).toEqual(before);
    expect(await pg.sessions.getSession('s1')).toEqual(sessionBefore);
    expect(await pg.sessions.ledger('s1')).toEqual([]);
    // Inside an outer transaction a failed move rolls back its savepoint only.
    const moved = await pg.tx(async (t) => {
      const a = await t.jobs.transitionJob({ jobId: 'j1', from: 'awaiting_eval_payment', to: 'evaluating', settle: { paymentHash: 'h1', status: 'expired' }, intents: [fb('processing')] });
      const b = await t.credits.addCredit({ account: 'a', deltaMsats: 7, reason: 'r', jobId: null, ref: 'kept' });
      return [a, b];
    });
    expect(moved).toEqual([false, true]);
    expect(await pg.credits.creditBalanceMsats('a')).toBe(7);
    expect((await pg.jobs.getJob('j1'))!.state).toBe('awaiting_eval_payment');
  });

  it('a settlement reported many times at once moves its subject once', async () => {
    const pg = await freshPg();
    await pg.jobs.createJob({ job: newJob('j1'), state: 'awaiting_eval_payment', invoice: inv('h1', 'job', 'j1', 'eval', 1_000), intents: [] });
    await pg.jobs.createJob({ job: newJob('j2'), state: 'awaiting_eval_payment', invoice: inv('h2', 'job', 'j2', 'eval', 1_000), intents: [] });
    expect(await pg.invoices.openInvoiceCount('job')).toBe(2);
    const moves = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        i % 2 === 0
          ? pg.jobs.transitionJob({ jobId: 'j1', from: 'awaiting_eval_payment', to: 'evaluating', settle: { paymentHash: 'h1', status: 'paid' }, intents: [fb('processing')] })
          : pg.invoices.settleLate({ paymentHash: 'h2', credit: { account: 'late', deltaMsats: 1_000, reason: 'late', jobId: 'j2', ref: `late:${i}` }, subjectId: 'j2', intents: [fb('success')] }, Date.now()),
      ),
    );
    expect(moves.filter((m, i) => m && i % 2 === 0)).toHaveLength(1);
    expect(moves.filter((m, i) => m && i % 2 === 1)).toHaveLength(1);
    expect(await pg.outbox.outboxForJob('j1')).toHaveLength(1);
    expect(await pg.outbox.outboxForJob('j2')).toHaveLength(1);
    expect(await pg.credits.creditBalanceMsats('late')).toBe(1_000);
    expect(await pg.invoices.openInvoiceCount('job')).toBe(0);
    // A counter bent out of step is put right by the recount.
    await pg.db.$client.query(`update counters set value = 41 where name = 'open_invoices:job'`);
    await pg.invoices.recountOpenInvoices();
    expect(await pg.invoices.openInvoiceCount('job')).toBe(0);
  });

  it('30 concurrent session jobs never overdraw the session', async () => {
    const pg = await freshPg();
    const deposit = 1_000_000;
    await pg.sessions.createSession({ id: 's1', state: 'awaiting_deposit', pubkey: null, clientAddress: null, origin: 'http' }, inv('sh1', 'session', 's1', 'deposit', deposit));
    expect(
      await pg.sessions.moveSession({
        sessionId: 's1', from: ['awaiting_deposit'], to: 'active', settle: { paymentHash: 'sh1', status: 'paid' },
        ledger: [{ sessionId: 's1', kind: 'deposit', amountMsats: deposit, paymentHash: 'sh1', ref: 'deposit:sh1' }],
      }),
    ).toBe(true);
    let seed = 0x5eed; // mulberry32: reserves between 20k and 80k msats, about twice the deposit in all
    const rand = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
    const reserves = Array.from({ length: 30 }, () => 20_000 + Math.floor(rand() * 60_000));
    const results = await Promise.all(
      reserves.map((reserveMsats, i) => pg.jobs.createSessionJob({ job: newJob(`j${i}`), state: 'executing', intents: [fb('processing')], sessionId: 's1', reserveMsats })),
    );
    const created = reserves.filter((_, i) => results[i] === 'created');
    const refused = reserves.filter((_, i) => results[i] === 'insufficient');
    expect(created.length + refused.length).toBe(30);
    expect(refused.length).toBeGreaterThan(0);
    const balance = await pg.sessions.balanceMsats('s1');
    expect(balance).toBe(deposit - created.reduce((a, b) => a + b, 0));
    expect(balance).toBeGreaterThanOrEqual(0);
    // Each refusal saw a balance below its reserve, and the balance only went down after it.
    for (const r of refused) expect(balance).toBeLessThan(r);
    const ledger = await pg.sessions.ledger('s1');
    expect(ledger.reduce((a, e) => a + e.amountMsats, 0)).toBe(balance);
    expect(ledger.filter((e) => e.kind === 'reserve')).toHaveLength(created.length);
    expect(sorted((await pg.sessions.openReservations()).map((r) => r.amountMsats))).toEqual(sorted(created));
    expect(await pg.jobs.countJobsByState()).toEqual({ executing: created.length });
    expect((await pg.sessions.getSession('s1'))!.state).toBe('active');
  });

  it('a balance read inside a transaction holds the session: a close moves out exactly what is left', async () => {
    const pg = await freshPg();
    const deposit = 500_000;
    await pg.sessions.createSession({ id: 's1', state: 'awaiting_deposit', pubkey: 'p'.repeat(64), clientAddress: null, origin: 'http' }, inv('sh1', 'session', 's1', 'deposit', deposit));
    await pg.sessions.moveSession({
      sessionId: 's1', from: ['awaiting_deposit'], to: 'active', settle: { paymentHash: 'sh1', status: 'paid' },
      ledger: [{ sessionId: 's1', kind: 'deposit', amountMsats: deposit, ref: 'deposit:sh1' }],
    });
    // core/sessions.ts `close`: read the session and its balance, move the balance out, in one transaction.
    const close = () =>
      pg.tx(async (t) => {
        const s = (await t.sessions.getSession('s1'))!;
        const balance = await t.sessions.balanceMsats('s1');
        const moved = await t.sessions.moveSession({
          sessionId: 's1', from: [s.state], to: 'closed',
          ledger: [{ sessionId: 's1', kind: 'close', amountMsats: -balance, ref: 'close:s1' }],
          credits: [{ account: s.pubkey!, deltaMsats: balance, reason: 'closed', jobId: null, ref: 'session-close:s1' }],
        });
        return { moved, balance };
      });
    const reserve = (i: number) => pg.jobs.createSessionJob({ job: newJob(`j${i}`), state: 'executing', intents: [], sessionId: 's1', reserveMsats: 10_000 });
    const [before, closed, after] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, (_, i) => reserve(i))),
      close(),
      Promise.all(Array.from({ length: 10 }, (_, i) => reserve(10 + i))),
    ]);
    const created = [...before, ...after].filter((r) => r === 'created').length;
    expect([...before, ...after].every((r) => r === 'created' || r === 'unavailable')).toBe(true);
    expect(closed.moved).toBe(true);
    expect(closed.balance).toBe(deposit - created * 10_000);
    expect(await pg.sessions.balanceMsats('s1')).toBe(0);
    expect(await pg.credits.creditBalanceMsats('p'.repeat(64))).toBe(closed.balance);
  });
});
