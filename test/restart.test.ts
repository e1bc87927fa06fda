// Crash safety: SIGKILL mid-job and right after a commit; the restarted daemon resumes on the same data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, queryRelay, status } from './helpers/customer.ts';
import { outboxRows, queryOne } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';

let relay: RelayProc;
const daemons: DaemonProc[] = [];
const customers: Customer[] = [];

beforeAll(async () => {
  relay = await startRelay();
});

afterAll(async () => {
  for (const c of customers) c.close();
  for (const d of daemons) await d.kill();
  await relay?.stop();
});

async function daemonOn(dataDir: string, env: Record<string, string> = {}): Promise<DaemonProc> {
  const d = await startDaemon({ relays: [relay.url], dataDir, env });
  daemons.push(d);
  return d;
}

async function customerOf(d: DaemonProc): Promise<Customer> {
  const c = await new Customer([relay.url], d.pubkey).connect();
  customers.push(c);
  return c;
}

describe('restart safety', () => {
  it('SIGKILL between the eval and the work payment: resumes, work invoice still payable, one result, no re-invoicing', async () => {
    const dataDir = tempDir();
    const d1 = await daemonOn(dataDir);
    const customer = await customerOf(d1);
    const req = await customer.request('What is a UTXO?');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    await payStub(d1.api, invoiceOf(evalFb!).bolt11);
    const quotes = await customer.waitForFeedback(req.id, 'payment-required', 2);
    const workFb = quotes.find((e) => e.id !== evalFb!.id)!;

    expect(await d1.kill('SIGKILL')).toBeNull();
    const d2 = await daemonOn(dataDir);
    expect(d2.pubkey).toBe(d1.pubkey);

    await payStub(d2.api, invoiceOf(workFb).bolt11);
    await customer.waitForResult(req.id);
    await customer.waitForFeedback(req.id, 'success');
    // The relay handed the old request back after the restart, and it was not invoiced again.
    await waitFor(() => d2.logs.some((l) => l.msg === 'request already known; not invoiced again' && l.id === req.id), 'old request deduped');
    await waitFor(async () => (await outboxRows(dataDir, req.id)).every((r) => r.acked_at !== null), 'outbox acked');
    const stored = await queryRelay(relay.url, { authors: [d1.pubkey], '#e': [req.id] });
    expect(stored.filter((e) => e.kind === 6050)).toHaveLength(1);
    expect(stored.filter((e) => status(e) === 'payment-required')).toHaveLength(2);
    const n = (await queryOne<{ n: number }>(dataDir, "select count(*) n from invoice_book where subject_kind = 'job' and subject_id = ?", req.id))!;
    expect(n.n).toBe(2);
  });

  it('SIGKILL after a transition is committed and signed but before it is sent: the stored event is sent, no second one', async () => {
    const dataDir = tempDir();
    const d1 = await daemonOn(dataDir, { TIMMY_FAULT: 'after-sign:processing' });
    const customer = await customerOf(d1);
    const req = await customer.request('Name three Bitcoin wallets.');
    const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
    await payStub(d1.api, invoiceOf(evalFb!).bolt11);
    await d1.exit; // the fault point killed it

    const processing = (await outboxRows(dataDir, req.id)).find((r) => JSON.parse(r.intent_json).status === 'processing');
    expect(processing?.event_id).toMatch(/^[0-9a-f]{64}$/);
    expect(processing?.acked_at).toBeNull();
    expect((await queryRelay(relay.url, { ids: [processing!.event_id!] })).length).toBe(0);

    await daemonOn(dataDir);
    const [sent] = await customer.waitForFeedback(req.id, 'processing');
    expect(sent!.id).toBe(processing!.event_id);
    await customer.waitForFeedback(req.id, 'payment-required', 2);
    await waitFor(async () => (await outboxRows(dataDir, req.id)).every((r) => r.acked_at !== null), 'outbox acked');
    const onRelay = await queryRelay(relay.url, { authors: [d1.pubkey], '#e': [req.id] });
    expect(onRelay.filter((e) => status(e) === 'processing').map((e) => e.id)).toEqual([processing!.event_id]);
    expect((await outboxRows(dataDir, req.id)).filter((r) => JSON.parse(r.intent_json).status === 'processing')).toHaveLength(1);
  });

  it('SIGTERM stops gracefully with exit code 0', async () => {
    const d = await daemonOn(tempDir());
    expect(await d.kill('SIGTERM')).toBe(0);
    expect(d.logs.some((l) => l.msg === 'stopped')).toBe(true);
  });
});
