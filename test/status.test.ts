// The money an operator sees without a browser: /metrics money lines, the console's status route behind the
// operator token, and `timmy status` from the running daemon and, once it is gone, from its store.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, payStub } from './helpers/customer.ts';
import { consoleToken, paidJob } from './helpers/console.ts';
import { waitFor } from './helpers/wait.ts';

let relay: RelayProc;
let daemon: DaemonProc;
let customer: Customer;
let job: { id: string; paidSats: number };
let privateJob: { id: string; paidSats: number };
const DEPOSIT_SATS = 100;

beforeAll(async () => {
  relay = await startRelay();
  daemon = await startDaemon({ relays: [relay.url] });
  customer = await new Customer([relay.url], daemon.pubkey).connect();
  job = await paidJob(customer, daemon, 'what is a sat?');
  privateJob = await paidJob(customer, daemon, 'my secret plan: buy the dip', { private: true });
  const s = (await (await fetch(`${daemon.api}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amountSats: DEPOSIT_SATS }) })).json()) as {
    depositInvoice: { paymentRequest: string };
  };
  await payStub(daemon.api, s.depositInvoice.paymentRequest);
});
afterAll(async () => {
  customer?.close();
  await daemon?.kill();
  await relay?.stop();
});

/** A series' value, its `worker` label (on every series) left out of `line`. */
const metric = (text: string, line: string) =>
  Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text.replace(/,?worker="[^"]*"/g, '').replace(/\{\}/g, ''))?.[1] ?? NaN);
const timmy = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, ['src/bin.js', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, encoding: 'utf8' });

describe('money in /metrics', () => {
  it('counts sats received by purpose, every invoice by status, model cost and the payment -> processing latency', async () => {
    const expected = job.paidSats + privateJob.paidSats + DEPOSIT_SATS;
    // The session's deposit settles in the background: wait until it is counted.
    const text = await waitFor(async () => {
      const t = await (await fetch(`${daemon.api}/metrics`)).text();
      return metric(t, 'timmy_received_sats{purpose="deposit"}') === DEPOSIT_SATS && t;
    }, 'the deposit counted');
    expect(metric(text, 'timmy_received_sats{purpose="eval"}')).toBe(20); // two jobs, 10 sats each
    expect(metric(text, 'timmy_received_sats{purpose="eval"}') + metric(text, 'timmy_received_sats{purpose="work"}') + DEPOSIT_SATS).toBe(expected);
    expect(metric(text, 'timmy_invoices{status="paid"}')).toBe(5); // 2 evals, 2 works, 1 deposit: every purpose
    expect(metric(text, 'timmy_invoice_book{subject="session",purpose="deposit",status="paid"}')).toBe(1);
    expect(metric(text, 'timmy_model_cost_usd')).toBeGreaterThan(0);
    expect(metric(text, 'timmy_model_tokens{direction="output"}')).toBeGreaterThan(0);
    expect(metric(text, 'timmy_session_balances_sats')).toBe(DEPOSIT_SATS);
    expect(metric(text, 'timmy_credits_owed_sats')).toBe(0);
    // Each paid stage of a Nostr job publishes `processing`; its first relay ack is observed once.
    const observed = await waitFor(async () => {
      const n = metric(await (await fetch(`${daemon.api}/metrics`)).text(), 'timmy_settlement_seconds_count');
      return n >= 4 && n;
    }, 'four processing acks observed');
    expect(observed).toBe(4);
    expect(metric(text, 'timmy_jobs{state="complete"}')).toBe(2); // the old names still answer
  });
});

describe('the console status route', () => {
  it('refuses no token and a wrong one, and answers the operator token with the money', async () => {
    expect((await fetch(`${daemon.api}/console/api/status`)).status).toBe(401);
    expect((await fetch(`${daemon.api}/console/api/status`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status).toBe(401);
    const res = await fetch(`${daemon.api}/console/api/status`, { headers: { authorization: `Bearer ${consoleToken(daemon)}` } });
    expect(res.status).toBe(200);
    const s = (await res.json()) as {
      source: string;
      ok: boolean;
      jobs: Record<string, number>;
      revenue: { today: { receivedSats: number }; all: { receivedSats: number; earnedSats: number; byPurpose: Record<string, number>; modelCostSats: number; marginSats: number } };
      sessions: { heldSats: number };
    };
    expect(s.source).toBe('daemon');
    expect(s.ok).toBe(true);
    expect(s.jobs.complete).toBe(2);
    expect(s.revenue.all.receivedSats).toBe(job.paidSats + privateJob.paidSats + DEPOSIT_SATS);
    expect(s.revenue.today.receivedSats).toBe(s.revenue.all.receivedSats);
    expect(s.revenue.all.byPurpose.deposit).toBe(DEPOSIT_SATS);
    // A deposit is received, not earned: the margin is the jobs' money against their model cost.
    expect(s.revenue.all.earnedSats).toBe(job.paidSats + privateJob.paidSats);
    expect(s.revenue.all.modelCostSats).toBeGreaterThan(0);
    expect(s.revenue.all.marginSats).toBe(s.revenue.all.earnedSats - s.revenue.all.modelCostSats);
    expect(s.sessions.heldSats).toBe(DEPOSIT_SATS);
  });

  it('keeps the generated token owner-only, and the login URL out of the log', () => {
    expect(statSync(join(daemon.dataDir, 'console.token')).mode & 0o777).toBe(0o600);
    expect(daemon.output()).toContain('operator console');
    expect(daemon.output()).not.toContain(consoleToken(daemon));
  });

  it('never shows a private job its text: not in the jobs list nor in its timeline', async () => {
    const auth = { authorization: `Bearer ${consoleToken(daemon)}` };
    const list = await (await fetch(`${daemon.api}/console/api/jobs`, { headers: auth })).text();
    const page = await (await fetch(`${daemon.api}/console/api/jobs/${privateJob.id}`, { headers: auth })).text();
    expect(list).toContain('what is a sat?');
    expect(list).toContain(privateJob.id);
    for (const text of [list, page]) expect(text).not.toContain('secret plan');
    expect(page).toContain('(private request)');
  });
});

describe('timmy status', () => {
  it('reads the running daemon, then its store once the daemon is gone', async () => {
    const env = { DATA_DIR: daemon.dataDir, HTTP_PORT: String(daemon.httpPort) };
    const live = timmy(['status', '--json'], env);
    expect(live.status, live.stderr).toBe(0);
    const s = JSON.parse(live.stdout) as { source: string; relays: { url: string; connected: boolean }[]; revenue: { all: { receivedSats: number } } };
    expect(s.source).toBe('daemon');
    expect(s.relays).toEqual([{ url: relay.url, connected: true, lastError: null }]);
    const total = job.paidSats + privateJob.paidSats + DEPOSIT_SATS;
    expect(s.revenue.all.receivedSats).toBe(total);

    const text = timmy(['status'], env);
    expect(text.stdout).toMatch(/healthy/);
    expect(text.stdout).toMatch(new RegExp(`all time\\s+${total} sats in, ${job.paidSats + privateJob.paidSats} sats earned`));
    expect(text.stdout).toMatch(/text jobs\s+complete 2/);

    await daemon.kill('SIGTERM');
    const offline = timmy(['status', '--json'], env);
    expect(offline.status, offline.stderr).toBe(3); // the daemon could not be asked
    const o = JSON.parse(offline.stdout) as { source: string; ok: null; revenue: { all: { receivedSats: number } }; jobs: Record<string, number> };
    expect(o.source).toBe('store');
    expect(o.ok).toBeNull();
    expect(o.revenue.all.receivedSats).toBe(total);
    expect(o.jobs.complete).toBe(2);
    expect(timmy(['status'], env).stdout).toMatch(/daemon not running/);
  });
});
