// The operator's status at a glance — health, work in flight, money in and owed, the last errors — assembled
// from the store (and, in the daemon, the live parts), and drawn for a terminal (`timmy status`).
import { nip19 } from 'nostr-tools';
import type { Store } from './store/store.ts';
import type { InvoicePurpose } from './core/types.ts';
import type { ModelRates } from './pricing/pricing.ts';
import { terminalSafe } from './terminal.ts';

export interface PartStatus {
  backend: string;
  ok: boolean;
  detail: string;
}

export interface RelayDetail {
  url: string;
  connected: boolean;
  lastError: string | null;
}

/** What only the running daemon knows. */
export interface LiveParts {
  relays: RelayDetail[];
  payments: PartStatus;
  ai: PartStatus;
  storeOk: boolean;
}

/**
 * Money over one window: received (paid invoices), earned (jobs' and node orders' invoices, and what sessions
 * were charged; a deposit is received but only earned as it is spent), against what the work model cost.
 */
export interface MoneyWindow {
  receivedSats: number;
  byPurpose: Record<InvoicePurpose, number>; // sats
  earnedSats: number;
  jobsCharged: number; // jobs with a cost ledger (their work ran)
  modelCostUsd: number;
  modelCostSats: number;
  marginSats: number; // earned - model cost
  marginPct: number | null; // of earned; null when nothing was earned
}

export interface OperatorStatus {
  at: string; // ISO 8601
  source: 'daemon' | 'store'; // the running daemon, or its store read directly (the daemon is not running)
  ok: boolean | null; // null: unknown (read from the store)
  relays: RelayDetail[] | null;
  payments: PartStatus | null;
  ai: PartStatus | null;
  store: boolean;
  outboxDepth: number;
  jobs: Record<string, number>;
  nodeOrders: Record<string, number>;
  btcPriceUsd: number;
  revenue: { today: MoneyWindow; week: MoneyWindow; all: MoneyWindow };
  processingMs: { p50: number; p95: number; n: number } | null; // payment -> `processing` acked by a relay, recent
  sessions: { held: number; heldSats: number }; // sessions with money left, and how much: owed as service
  credits: { accounts: number; owedSats: number };
  lastErrors: { at: string; subject: 'job' | 'node'; id: string; state: string; message: string }[];
}

export interface StatusInputs {
  store: Store;
  rates: ModelRates; // the work model's rates (USD per million tokens)
  btcPriceUsd: number;
  live: LiveParts | null;
  nowMs: number;
}

const DAY_MS = 86_400_000;

/** Inference cost (USD) of the tokens at the work model's rates: what the AI provider bills. */
export function modelCostUsd(rates: ModelRates, inputTokens: number, outputTokens: number): number {
  return (inputTokens * rates.inputUsdPerMtok + outputTokens * rates.outputUsdPerMtok) / 1e6;
}

/** USD -> sats at the given price, rounded to the nearest sat (a display figure, never an amount charged). */
export const usdAsSats = (usd: number, btcPriceUsd: number): number => Math.round((usd * 1e8) / btcPriceUsd);

async function moneyWindow(store: Store, rates: ModelRates, btcPriceUsd: number, sinceMs: number | null): Promise<MoneyWindow> {
  const received = await store.money.receivedMsats(sinceMs);
  const byPurpose = Object.fromEntries(Object.entries(received).map(([k, v]) => [k, Math.round(v / 1000)])) as Record<InvoicePurpose, number>;
  const receivedSats = Object.values(byPurpose).reduce((a, b) => a + b, 0);
  const usage = await store.money.modelUsage(sinceMs);
  const costUsd = modelCostUsd(rates, usage.inputTokens, usage.outputTokens);
  const costSats = usdAsSats(costUsd, btcPriceUsd);
  const earnedSats = byPurpose.eval + byPurpose.work + byPurpose.order + Math.round((await store.money.sessionDebitsMsats(sinceMs)) / 1000);
  const marginSats = earnedSats - costSats;
  return {
    receivedSats,
    byPurpose,
    earnedSats,
    jobsCharged: usage.jobs,
    modelCostUsd: Math.round(costUsd * 1e6) / 1e6,
    modelCostSats: costSats,
    marginSats,
    marginPct: earnedSats > 0 ? Math.round((marginSats / earnedSats) * 1000) / 10 : null,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The error line an operator may see: a private job's message keeps only its prefix (it may quote the request). */
export function publicError(message: string, encrypted: boolean): string {
  if (!encrypted) return message;
  const prefix = /^([a-z-]+):/.exec(message)?.[1];
  return prefix ? `${prefix}: (private request)` : '(private request)';
}

export async function operatorStatus(i: StatusInputs): Promise<OperatorStatus> {
  const todayStart = Math.floor(i.nowMs / DAY_MS) * DAY_MS; // UTC midnight
  const latencies = (await i.store.money.processingLatencies({ limit: 200 })).sort((a, b) => a - b);
  const live = i.live;
  const relaysUp = live ? live.relays.some((r) => r.connected) : false;
  const held = await i.store.money.sessionsHeldMsats();
  const owed = await i.store.money.creditsOwedMsats();
  return {
    at: new Date(i.nowMs).toISOString(),
    source: live ? 'daemon' : 'store',
    ok: live ? live.storeOk && relaysUp && live.payments.ok && live.ai.ok : null,
    relays: live?.relays ?? null,
    payments: live?.payments ?? null,
    ai: live?.ai ?? null,
    store: live ? live.storeOk : true,
    outboxDepth: await i.store.outbox.outboxDepth(),
    jobs: await i.store.jobs.countJobsByState(),
    nodeOrders: await i.store.money.countNodeOrdersByState(),
    btcPriceUsd: i.btcPriceUsd,
    revenue: {
      today: await moneyWindow(i.store, i.rates, i.btcPriceUsd, todayStart),
      week: await moneyWindow(i.store, i.rates, i.btcPriceUsd, i.nowMs - 7 * DAY_MS),
      all: await moneyWindow(i.store, i.rates, i.btcPriceUsd, null),
    },
    processingMs: latencies.length ? { p50: percentile(latencies, 50), p95: percentile(latencies, 95), n: latencies.length } : null,
    sessions: { held: held.sessions, heldSats: Math.round(held.msats / 1000) },
    credits: { accounts: owed.accounts, owedSats: Math.round(owed.msats / 1000) },
    lastErrors: (await i.store.money.recentErrors(5)).map((e) => ({ at: new Date(e.at).toISOString(), subject: e.subject, id: e.id, state: e.state, message: publicError(e.message, e.encrypted) })),
  };
}

/** npub1abcd…wxyz: a pubkey an operator can tell apart at a glance. */
export function shortNpub(pubkey: string | null): string {
  if (!pubkey || !/^[0-9a-f]{64}$/.test(pubkey)) return pubkey ?? '';
  const npub = nip19.npubEncode(pubkey);
  return `${npub.slice(0, 10)}…${npub.slice(-4)}`;
}

const IN_FLIGHT_JOB = ['awaiting_eval_payment', 'evaluating', 'awaiting_work_payment', 'executing'];
const IN_FLIGHT_NODE = ['awaiting_payment', 'provisioning', 'ready'];

function states(counts: Record<string, number>, inFlight: string[]): string {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return 'none';
  const flying = inFlight.reduce((n, s) => n + (counts[s] ?? 0), 0);
  return `${entries.map(([s, n]) => `${s} ${n}`).join(', ')}  (in flight: ${flying})`;
}

const fmtSats = (n: number) => `${n.toLocaleString('en-US')} sats`;

function moneyLine(label: string, w: MoneyWindow): string {
  const margin = w.marginPct === null ? '' : ` (${w.marginPct}%)`;
  return `  ${label.padEnd(9)} ${fmtSats(w.receivedSats).padStart(14)} in, ${fmtSats(w.earnedSats)} earned   model cost $${w.modelCostUsd.toFixed(4)} = ${fmtSats(w.modelCostSats)}   margin ${fmtSats(w.marginSats)}${margin}`;
}

/** `timmy status` for a terminal. Strings that come from strangers or relays are made terminal-safe. */
export function formatStatus(s: OperatorStatus): string {
  const safe = (t: string) => terminalSafe(t, { oneLine: true });
  const part = (name: string, p: PartStatus | null) => `  ${name.padEnd(9)} ${p ? `${p.ok ? 'ok  ' : 'DOWN'}  ${p.backend}  ${safe(p.detail)}` : 'unknown (daemon not running)'}`;
  const lines = [
    `Timmy status at ${s.at} — ${s.source === 'daemon' ? (s.ok ? 'healthy' : 'UNHEALTHY') : 'daemon not running (read from the store)'}`,
    '',
    'health',
    ...(s.relays
      ? s.relays.map((r) => `  relay     ${r.connected ? 'ok  ' : 'DOWN'}  ${safe(r.url)}${r.lastError ? `  (last error: ${safe(r.lastError)})` : ''}`)
      : ['  relays    unknown (daemon not running)']),
    part('payments', s.payments),
    part('AI', s.ai),
    `  store     ${s.store ? 'ok' : 'DOWN'}`,
    `  outbox    ${s.outboxDepth} event(s) waiting for a relay`,
    '',
    'work',
    `  text jobs   ${states(s.jobs, IN_FLIGHT_JOB)}`,
    `  node orders ${states(s.nodeOrders, IN_FLIGHT_NODE)}`,
    ...(s.processingMs ? [`  payment -> processing: p50 ${s.processingMs.p50} ms, p95 ${s.processingMs.p95} ms (last ${s.processingMs.n})`] : []),
    '',
    `money (BTC at $${s.btcPriceUsd.toLocaleString('en-US')})`,
    moneyLine('today', s.revenue.today),
    moneyLine('7 days', s.revenue.week),
    moneyLine('all time', s.revenue.all),
    `  received by purpose (all time): ${Object.entries(s.revenue.all.byPurpose).map(([p, n]) => `${p} ${n}`).join(', ')}`,
    `  held in sessions ${fmtSats(s.sessions.heldSats)} (${s.sessions.held} session(s); owed as service)`,
    `  credits owed     ${fmtSats(s.credits.owedSats)} (${s.credits.accounts} account(s))`,
    '',
    'last errors',
    ...(s.lastErrors.length ? s.lastErrors.map((e) => `  ${e.at}  ${e.subject} ${e.id.slice(0, 12)}…  ${e.state}  ${safe(e.message.slice(0, 100))}`) : ['  none']),
  ];
  return `${lines.join('\n')}\n`;
}
