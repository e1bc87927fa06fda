// A store written by the code before the invoice book (commit 3a142c7: job invoices, session invoices and
// node-order invoice columns in three places), with jobs, sessions and node orders in every state, opens
// after the migration and every open one finishes correctly. The fixture and how it was made:
// test/fixtures/v0-store (manifest.json lists every item; make-fixture.ts.txt is the generator).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { queryRelay } from './helpers/customer.ts';
import { readDb } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';

interface FixtureInvoice {
  hash: string;
  purpose: string;
  status: 'open' | 'paid' | 'expired';
  amountMsats: number;
  stubPayable: boolean;
}
interface FixtureItem {
  kind: 'job' | 'session' | 'bootstrap';
  label: string;
  id: string;
  state: string;
  source: 'nostr' | 'http';
  customerPubkey: string | null;
  creditAccount?: string;
  claimToken?: string;
  macaroons?: { macaroon: string; purpose: string }[];
  balanceMsats?: number;
  paymentHashes: FixtureInvoice[];
}

const FIXTURE = join(ROOT, 'test/fixtures/v0-store');
const manifest = JSON.parse(readFileSync(join(FIXTURE, 'manifest.json'), 'utf8')) as { daemonEnv: Record<string, string>; items: FixtureItem[] };
const byLabel = (label: string) => manifest.items.find((i) => i.label === label) ?? fail(`no fixture item ${label}`);
const fail = (m: string): never => {
  throw new Error(m);
};

let relay: RelayProc;
let daemon: DaemonProc;
let startedAt: number; // unix ms: invoices newer than this were issued by the new code (resumed work)

beforeAll(async () => {
  const dataDir = tempDir();
  cpSync(join(FIXTURE, 'data'), dataDir, { recursive: true });
  relay = await startRelay();
  startedAt = Date.now();
  daemon = await startDaemon({
    relays: [relay.url],
    dataDir,
    env: { SESSION_TTL_S: manifest.daemonEnv.SESSION_TTL_S!, CREDENTIAL_TTL_S: manifest.daemonEnv.CREDENTIAL_TTL_S!, STUB_PROVISION_DELAY_MS: '0' },
  });
});
afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await relay?.stop();
});

const db = <T>(fn: (d: import('better-sqlite3').Database) => T) => readDb(daemon.dataDir, fn);
const pay = async (hash: string) => {
  const res = await fetch(`${daemon.api}/api/dev/stub/pay/${hash}`, { method: 'POST' });
  expect(res.status, `paying ${hash}`).toBe(200);
};
const jobView = async (id: string) => (await (await fetch(`${daemon.api}/api/jobs/${id}`)).json()) as { state: string; workInvoice?: { paymentHash: string } };
const jobReaches = (id: string, state: string) =>
  waitFor(async () => {
    const v = await jobView(id);
    return v.state === state ? v : null;
  }, `job ${id.slice(0, 8)} ${state}`);
const credit = (account: string) => db((d) => (d.prepare('select coalesce(sum(delta_msats), 0) n from credits where account = ?').get(account) as { n: number }).n);
const lateCredits = (hash: string) => db((d) => (d.prepare('select count(*) n from credits where ref = ?').get(`late:${hash}`) as { n: number }).n);
const session = async (item: FixtureItem) => {
  const res = await fetch(`${daemon.api}/api/sessions/${item.id}`, { headers: { authorization: `Bearer ${item.macaroons![0]!.macaroon}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { state: string; balanceSats: number };
};

describe('a store from before the invoice book', () => {
  it('moves every invoice into the one book, with its subject, purpose, status and payer account', () => {
    const rows = db((d) => d.prepare('select * from invoice_book').all()) as {
      payment_hash: string; subject_kind: string; subject_id: string; purpose: string; account: string; status: string; amount_msats: number; created_at: number;
    }[];
    const book = new Map(rows.map((r) => [r.payment_hash, r]));
    let expected = 0;
    for (const item of manifest.items) {
      for (const inv of item.paymentHashes) {
        expected++;
        const row = book.get(inv.hash) ?? fail(`${item.label}: invoice ${inv.hash} missing from the book`);
        expect(row.subject_kind, item.label).toBe(item.kind);
        expect(row.subject_id, item.label).toBe(item.id);
        expect(row.purpose, item.label).toBe(item.kind === 'bootstrap' ? 'order' : inv.purpose);
        expect(row.status, item.label).toBe(inv.status);
        expect(row.amount_msats, item.label).toBe(inv.amountMsats);
        expect(row.account, item.label).toBe(item.customerPubkey ?? `${item.kind}:${item.id}`);
      }
    }
    // Every other row is new: a work invoice of an evaluation that ran again on resume.
    const fromFixture = new Set(manifest.items.flatMap((i) => i.paymentHashes.map((p) => p.hash)));
    const newer = rows.filter((r) => !fromFixture.has(r.payment_hash));
    expect(rows.length - newer.length).toBe(expected);
    for (const r of newer) expect(r.created_at >= startedAt && r.purpose === 'work', `unexpected invoice ${r.payment_hash}`).toBe(true);
    // The old invoice stores are gone.
    const tables = db((d) => (d.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map((t) => t.name));
    expect(tables).not.toContain('invoices');
    expect(tables).not.toContain('session_invoices');
  });

  it('finishes every open text job: pending payments, interrupted evaluations and work', async () => {
    for (const label of ['job-nostr-awaiting-eval', 'job-http-awaiting-eval']) {
      const item = byLabel(label);
      await pay(item.paymentHashes[0]!.hash);
      const v = await jobReaches(item.id, 'awaiting_work_payment');
      await pay(v.workInvoice!.paymentHash);
      await jobReaches(item.id, 'complete');
    }
    for (const label of ['job-nostr-awaiting-work', 'job-http-awaiting-work', 'job-nostr-eval-paid-from-credit']) {
      const item = byLabel(label);
      await pay(item.paymentHashes.find((p) => p.purpose === 'work')!.hash);
      await jobReaches(item.id, 'complete');
    }
    for (const label of ['job-nostr-evaluating', 'job-http-evaluating']) {
      const item = byLabel(label);
      const v = await jobReaches(item.id, 'awaiting_work_payment'); // the evaluation ran again on resume
      await pay(v.workInvoice!.paymentHash);
      await jobReaches(item.id, 'complete');
    }
    for (const label of ['job-nostr-executing', 'job-http-executing', 'job-nostr-session-executing']) await jobReaches(byLabel(label).id, 'complete');
    await jobReaches(byLabel('job-http-session-executing').id, 'failed'); // its HTTP caller is gone: released

    // One result per Nostr job on the relay.
    for (const label of ['job-nostr-awaiting-eval', 'job-nostr-evaluating', 'job-nostr-executing']) {
      const id = byLabel(label).id;
      await waitFor(async () => (await queryRelay(relay.url, { kinds: [6050], '#e': [id] })).length === 1, `one result for ${label}`);
    }
    // No reservation is left open.
    const open = db((d) => d.prepare("select count(*) n from session_ledger r where r.kind = 'reserve' and not exists (select 1 from session_ledger x where x.kind = 'release' and x.job_id = r.job_id)").get()) as { n: number };
    expect(open.n).toBe(0);
  });

  it('credits late money once: expired and cancelled jobs, expired node orders', async () => {
    const late = ['job-nostr-expired-eval-late-payable', 'job-http-expired-eval-late-payable', 'job-nostr-cancelled-at-eval', 'job-nostr-cancelled-at-work', 'bootstrap-nostr-expired-late-payable', 'bootstrap-http-expired-late-payable'];
    for (const label of late) {
      const item = byLabel(label);
      const inv = item.paymentHashes.find((p) => p.stubPayable) ?? fail(`${label} has no payable invoice`);
      const account = item.customerPubkey ?? `${item.kind}:${item.id}`;
      const before = credit(account);
      await pay(inv.hash);
      await pay(inv.hash); // reported twice: credited once
      await waitFor(() => lateCredits(inv.hash) === 1, `${label} credited`);
      expect(credit(account) - before, label).toBe(inv.amountMsats);
    }
  });

  it('funds sessions from their deposits and top-ups; a closed one credits its pubkey', async () => {
    for (const label of ['session-awaiting-deposit-http', 'session-awaiting-deposit-l402']) {
      const item = byLabel(label);
      await pay(item.paymentHashes[0]!.hash);
      await waitFor(async () => (await session(item)).state === 'active', `${label} active`);
      expect((await session(item)).balanceSats).toBe(item.paymentHashes[0]!.amountMsats / 1000);
    }
    for (const label of ['session-active-with-open-topup', 'session-depleted-with-open-topup', 'session-expired-idle-with-open-topup']) {
      const item = byLabel(label);
      const topup = item.paymentHashes.find((p) => p.purpose === 'topup' && p.status === 'open')!;
      const before = label.includes('expired') ? 0 : (await session(item)).balanceSats;
      await pay(topup.hash);
      await waitFor(async () => (await session(item)).state === 'active', `${label} active`);
      expect((await session(item)).balanceSats, label).toBe(before + topup.amountMsats / 1000);
    }
    const closed = byLabel('session-closed-with-open-topup');
    const topup = closed.paymentHashes.find((p) => p.status === 'open')!;
    const before = credit(closed.customerPubkey!);
    await pay(topup.hash);
    await waitFor(() => lateCredits(topup.hash) === 1, 'closed session payment credited');
    expect(credit(closed.customerPubkey!) - before).toBe(topup.amountMsats);
  });

  it('provisions paid and interrupted node orders; the claim works once', async () => {
    const order = async (id: string) => (await (await fetch(`${daemon.api}/api/bootstrap/${id}`)).json()) as { state: string };
    for (const label of ['bootstrap-nostr-awaiting-payment', 'bootstrap-http-awaiting-payment']) await pay(byLabel(label).paymentHashes[0]!.hash);
    for (const label of ['bootstrap-nostr-awaiting-payment', 'bootstrap-http-awaiting-payment', 'bootstrap-nostr-provisioning', 'bootstrap-http-provisioning']) {
      const id = byLabel(label).id;
      await waitFor(async () => ['ready', 'delivered'].includes((await order(id)).state), `${label} ready`);
    }
    const claim = (item: FixtureItem) => fetch(`${daemon.api}/api/bootstrap/${item.id}/claim`, { method: 'POST', headers: { authorization: `Bearer ${item.claimToken}` } });
    for (const label of ['bootstrap-http-provisioning', 'bootstrap-http-ready']) {
      expect((await claim(byLabel(label))).status, label).toBe(200);
      expect((await claim(byLabel(label))).status, label).toBe(410);
    }
    expect((await claim(byLabel('bootstrap-http-delivered'))).status).toBe(410);
  });

  it('leaves no open invoice behind, and the open-invoice counters agree with the rows', async () => {
    const counts = () =>
      db((d) => ({
        open: (d.prepare("select subject_kind k, count(*) n from invoice_book where status = 'open' group by subject_kind").all() as { k: string; n: number }[]),
        counters: (d.prepare('select name, value from counters').all() as { name: string; value: number }[]),
      }));
    const c = counts();
    expect(c.open).toEqual([]);
    for (const row of c.counters.filter((r) => r.name.startsWith('open_invoices:'))) expect(row.value, row.name).toBe(0);
  });
});
