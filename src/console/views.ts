// What the operator console's pages show, read from the store: jobs with their money, a job's timeline,
// sessions, credits, node orders, relays, and the money over time. Private jobs never show their text;
// node orders never show their secrets.
import type { Store } from '../store/store.ts';
import { isJobState } from '../core/job-machine.ts';
import { isBootstrapState } from '../core/bootstrap-machine.ts';
import type { BookInvoice, Job, PublishIntent } from '../core/types.ts';
import type { BootstrapJob } from '../store/bootstrap.ts';
import type { ModelRates } from '../pricing/pricing.ts';
import { modelCostUsd, publicError, shortNpub, usdAsSats } from '../status.ts';

export interface ViewSettings {
  rates: ModelRates;
  btcPriceUsd: () => Promise<number>;
}

export interface JobRow {
  id: string;
  type: 'text' | 'node';
  state: string;
  source: string;
  satsIn: number; // paid so far (invoices, credit applied, a session's charge)
  costUsd: number | null; // the work model's inference cost; null before the work ran
  costSats: number | null;
  createdAt: number; // unix ms
  customer: string; // npub short form, or the HTTP client's address kind
  private: boolean;
  summary: string; // a text job's first words (never a private one's), a node's size and region
}

const sats = (msats: number) => Math.round(msats / 1000);
const paidMsats = (invoices: BookInvoice[]) => invoices.filter((i) => i.status === 'paid').reduce((a, i) => a + i.amountMsats, 0);

async function textRow(store: Store, j: Job, rates: ModelRates, btc: number): Promise<JobRow> {
  const session = j.sessionId && j.costLedger ? j.costLedger.chargedSats * 1000 : 0;
  const costUsd = j.costLedger ? modelCostUsd(rates, j.costLedger.actualInputTokens, j.costLedger.actualOutputTokens) : null;
  const priv = j.encryption !== 'none';
  return {
    id: j.id,
    type: 'text',
    state: j.state,
    source: j.source,
    satsIn: sats(paidMsats(await store.invoices.invoicesOf('job', j.id)) + j.evalCreditMsats + j.workCreditMsats + session),
    costUsd: costUsd === null ? null : Math.round(costUsd * 1e6) / 1e6,
    costSats: costUsd === null ? null : usdAsSats(costUsd, btc),
    createdAt: j.createdAt,
    customer: j.customerPubkey ? shortNpub(j.customerPubkey) : 'http client',
    private: priv,
    summary: priv ? '(private request)' : j.input.slice(0, 80),
  };
}

async function nodeRow(store: Store, o: BootstrapJob): Promise<JobRow> {
  return {
    id: o.id,
    type: 'node',
    state: o.state,
    source: o.source,
    satsIn: sats(paidMsats(await store.invoices.invoicesOf('bootstrap', o.id))),
    costUsd: null,
    costSats: null,
    createdAt: o.createdAt,
    customer: o.customerPubkey ? shortNpub(o.customerPubkey) : 'http client',
    private: false,
    summary: `node ${o.size} ${o.region}`,
  };
}

/** Text jobs and node orders, newest first, optionally in one state. */
export async function jobRows(store: Store, s: ViewSettings, opts: { state?: string; limit: number }): Promise<JobRow[]> {
  const btc = await s.btcPriceUsd();
  const jobStates = opts.state ? (isJobState(opts.state) ? [opts.state] : null) : undefined;
  const orderStates = opts.state ? (isBootstrapState(opts.state) ? [opts.state] : null) : undefined;
  const jobs = jobStates === null ? [] : await store.jobs.listJobs({ states: jobStates, limit: opts.limit });
  const orders = orderStates === null ? [] : await store.bootstrap.listNodeOrders({ states: orderStates, limit: opts.limit });
  const rows = [...(await Promise.all(jobs.map((j) => textRow(store, j, s.rates, btc)))), ...(await Promise.all(orders.map((o) => nodeRow(store, o))))];
  return rows.sort((a, b) => b.createdAt - a.createdAt).slice(0, opts.limit);
}

export interface TimelineEntry {
  at: number; // unix ms
  what: string; // request, invoice, paid, expired, event, ack, credit, session, result, state
  text: string;
  detail?: unknown;
}

/** What an outbox intent was, in words; a private job's feedback keeps only its status (its words may quote the request). */
function describeIntent(intent: PublishIntent, priv: boolean): string {
  switch (intent.type) {
    case 'feedback': {
      const amount = intent.amountMsats ? ` (${sats(intent.amountMsats)} sats)` : '';
      if (priv) return `feedback ${intent.status}${intent.label ? ` ${intent.label}` : ''}${amount}`;
      return `feedback ${intent.status}${amount}: ${intent.message.slice(0, 200)}`;
    }
    case 'result':
      return `result${intent.balanceMsats !== undefined ? ` (session balance ${sats(intent.balanceMsats)} sats)` : ''}`;
    case 'bootstrap_result':
      return 'node result (facts only)';
    case 'dm':
      return `credentials DM (NIP-17) to ${intent.inboxRelays.length ? 'the inbox relays' : 'the request and write relays'}`;
    case 'zap_receipt':
      return `zap receipt (kind 9735) for ${sats(Number(/"amount","(\d+)"/.exec(intent.zapRequest)?.[1] ?? 0))} sats`;
  }
}

function invoiceEntries(invoices: (BookInvoice & { createdAt?: number })[]): TimelineEntry[] {
  return invoices.flatMap((i) => {
    const base = `${i.purpose} invoice ${sats(i.amountMsats)} sats`;
    const out: TimelineEntry[] = [{ at: i.createdAt ?? 0, what: 'invoice', text: `${base} issued (payment hash ${i.paymentHash.slice(0, 12)}…, now ${i.status})` }];
    if (i.paidAt) out.push({ at: i.paidAt, what: 'paid', text: `${base} paid` });
    if (i.status === 'expired') out.push({ at: i.expiresAt * 1000, what: 'expired', text: `${base} expired unpaid` });
    return out;
  });
}

async function eventEntries(store: Store, subjectId: string, priv: boolean): Promise<TimelineEntry[]> {
  return (await store.money.eventsWithAcks(subjectId)).map((e) => {
    const intent = JSON.parse(e.intentJson) as PublishIntent;
    const acks = e.acks.map((a) => `${a.relay} ${a.ok ? 'OK' : `refused: ${a.message.slice(0, 120)}`} (+${a.at - e.createdAt} ms)`);
    const sent = acks.length ? `relays: ${acks.join('; ')}` : e.signedAt ? 'no relay answered yet' : 'not signed yet';
    return { at: e.createdAt, what: 'event', text: `${describeIntent(intent, priv)} — ${e.eventId ? `event ${e.eventId.slice(0, 12)}…, ` : ''}${sent}` };
  });
}

export interface JobPage {
  row: JobRow;
  facts: Record<string, unknown>;
  timeline: TimelineEntry[];
}

/** A text job or node order with its timeline: request, invoices and payments, events and acks, ledgers, result. */
export async function jobPage(store: Store, s: ViewSettings, id: string): Promise<JobPage | null> {
  const btc = await s.btcPriceUsd();
  const job = await store.jobs.getJob(id);
  if (job) {
    const priv = job.encryption !== 'none';
    const l = await store.money.ledgersOfJob(id);
    const timeline: TimelineEntry[] = [
      { at: job.createdAt, what: 'request', text: `request received over ${job.source}${priv ? ` (private, ${job.encryption})` : ''}`, detail: priv ? undefined : { input: job.input.slice(0, 2000) } },
      ...invoiceEntries(await store.invoices.invoicesOf('job', id)),
      ...(await eventEntries(store, id, priv)),
      ...l.credits.map((c) => ({ at: c.createdAt, what: 'credit', text: `credit ${c.deltaMsats > 0 ? '+' : ''}${sats(c.deltaMsats)} sats to ${shortNpub(c.account)}: ${publicError(c.reason, priv)}` })),
      ...l.session.map((e) => ({ at: e.createdAt, what: 'session', text: `session ${e.sessionId.slice(0, 8)}… ${e.kind} ${sats(e.amountMsats)} sats` })),
    ];
    const final = ['complete', 'failed', 'rejected', 'expired', 'cancelled'].includes(job.state);
    if (final) {
      const why = job.errorMessage ?? job.reason;
      timeline.push({
        at: job.updatedAt,
        what: job.state === 'complete' ? 'result' : 'state',
        text: `${job.state}${why ? `: ${publicError(why, priv).slice(0, 200)}` : ''}`,
        detail: job.state === 'complete' ? { result: priv ? undefined : job.result?.slice(0, 4000), costLedger: job.costLedger } : undefined,
      });
    }
    return {
      row: await textRow(store, job, s.rates, btc),
      facts: {
        kind: job.kind,
        encryption: job.encryption,
        session: job.sessionId,
        pricing: job.pricing,
        costLedger: job.costLedger,
        reason: job.reason && publicError(job.reason, priv),
        error: job.errorMessage && publicError(job.errorMessage, priv),
      },
      timeline: timeline.sort((a, b) => a.at - b.at),
    };
  }
  const order = await store.bootstrap.getBootstrap(id);
  if (!order) return null;
  const timeline: TimelineEntry[] = [
    { at: order.createdAt, what: 'request', text: `node order over ${order.source}: ${order.size} in ${order.region}` },
    ...invoiceEntries(await store.invoices.invoicesOf('bootstrap', id)),
    ...(await eventEntries(store, id, false)),
  ];
  if (order.readyAt) timeline.push({ at: order.readyAt, what: 'state', text: `ready: ${order.ip ?? ''}` });
  if (order.erasedAt) timeline.push({ at: order.erasedAt, what: 'state', text: 'credentials erased' });
  if (order.state === 'failed' || order.state === 'expired') timeline.push({ at: order.updatedAt, what: 'state', text: `${order.state}${order.errorMessage ? `: ${order.errorMessage.slice(0, 200)}` : ''}` });
  return { row: await nodeRow(store, order), facts: orderFacts(order), timeline: timeline.sort((a, b) => a.at - b.at) };
}

/** A node order as the operator may see it: state and server facts, never a secret or the claim token. */
function orderFacts(o: BootstrapJob): Record<string, unknown> {
  return {
    size: o.size,
    region: o.region,
    priceSats: sats(o.amountMsats),
    dropletId: o.dropletId,
    ip: o.ip,
    tailscaleHostname: o.tailscaleHostname,
    sshUser: o.sshUser,
    nodeNpub: o.nodeNpub,
    progress: o.progress,
    credentialsHeld: o.secretsEnc !== null,
    customerGaveSshKey: o.customerSshKey !== null,
    error: o.errorMessage,
  };
}

export async function orderRows(store: Store, limit = 200): Promise<(JobRow & Record<string, unknown>)[]> {
  const orders = await store.bootstrap.listNodeOrders({ limit });
  return Promise.all(orders.map(async (o) => ({ ...(await nodeRow(store, o)), ...orderFacts(o) })));
}

export async function sessionRows(store: Store, limit = 200) {
  return (await store.money.listSessionSummaries(limit)).map((s) => ({ ...s, balanceSats: sats(s.balanceMsats), customer: shortNpub(s.pubkey) }));
}

export async function sessionPage(store: Store, id: string) {
  const s = await store.sessions.getSession(id);
  if (!s) return null;
  const entries = (await store.sessions.ledger(id)).map((e) => ({ kind: e.kind, amountSats: e.amountMsats / 1000, jobId: e.jobId, createdAt: e.createdAt }));
  return { id: s.id, state: s.state, origin: s.origin, customer: shortNpub(s.pubkey), balanceSats: sats(entries.reduce((a, e) => a + e.amountSats * 1000, 0)), createdAt: s.createdAt, lastUsedAt: s.lastUsedAt, entries };
}

/** Who is owed what (positive balances, largest first) and the newest entries. */
export async function creditsView(store: Store) {
  const owed = (await store.credits.creditBalances())
    .filter((b) => b.balanceMsats > 0)
    .sort((a, b) => b.balanceMsats - a.balanceMsats)
    .map((b) => ({ account: b.account.includes(':') ? b.account : shortNpub(b.account), balanceSats: b.balanceMsats / 1000 }));
  const entries = (await store.credits.creditEntries(undefined, 50)).map((e) => ({
    account: e.account.includes(':') ? e.account : shortNpub(e.account),
    deltaSats: e.deltaMsats / 1000,
    reason: e.reason.replace(/:.*$/s, ':…').slice(0, 80), // reasons may quote a private request; the prefix says why
    jobId: e.jobId,
    createdAt: e.createdAt,
  }));
  return { owed, entries };
}

export async function relayRows(store: Store, live: { url: string; read: boolean; write: boolean; connected: boolean; lastError: string | null; changedAt: number }[]) {
  const acks = new Map((await store.money.relayAcks()).map((a) => [a.relay, a]));
  return live.map((r) => {
    const a = acks.get(r.url);
    return { ...r, accepted: a?.accepted ?? 0, refused: a?.refused ?? 0, lastRefusal: a?.lastRefusal ?? null, lastAckAt: a?.lastAt ?? null };
  });
}

/** Hourly money and outcomes over the last `hours`, with the model cost in sats, for the overview's charts. */
export async function seriesView(store: Store, s: ViewSettings, hours: number, nowMs: number) {
  const btc = await s.btcPriceUsd();
  const buckets = await store.money.moneySeries(nowMs - hours * 3_600_000, 3_600_000, nowMs);
  return {
    btcPriceUsd: btc,
    t: buckets.map((b) => Math.floor(b.t / 1000)), // unix s (uPlot's x)
    receivedSats: buckets.map((b) => sats(b.receivedMsats)),
    modelCostSats: buckets.map((b) => usdAsSats(modelCostUsd(s.rates, b.inputTokens, b.outputTokens), btc)),
    outcomes: Object.fromEntries(['complete', 'failed', 'rejected', 'expired', 'cancelled'].map((st) => [st, buckets.map((b) => b.outcomes[st] ?? 0)])),
  };
}
