// GET /metrics in Prometheus text format (prom-client). Gauges are read from their sources at scrape time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';

export interface MetricsSources {
  jobsByState(): Promise<Record<string, number>>;
  /** Invoices of the book by subject kind, purpose and status. */
  invoices(): Promise<{ subjectKind: string; purpose: string; status: string; n: number }[]>;
  relays(): { url: string; connected: boolean }[];
  outboxDepth(): Promise<number>;
  intake(): Record<string, number>;
  /** Money from the store: received by purpose, the work model's usage and cost, what is owed. */
  money(): Promise<{
    receivedMsats: Record<string, number>;
    modelCostUsd: number;
    inputTokens: number;
    outputTokens: number;
    creditsOwedMsats: number;
    sessionsHeldMsats: number;
  }>;
  /** Calls `observe` with each payment -> `processing` latency (ms) as the feedback's first relay ack arrives. */
  onProcessingAcked(observe: (ms: number) => void): void;
}

/**
 * Every series carries `worker` (WORKER_ID). Gauges read from the shared store (jobs, invoices, money, outbox)
 * are the same on every worker: aggregate them with max, not sum; per-process ones (intake, relays, process)
 * are this worker's own.
 */
export function mountMetrics(app: OpenAPIHono, src: MetricsSources, opts: { worker: string }): MiddlewareHandler {
  const registry = new Registry();
  registry.setDefaultLabels({ worker: opts.worker });
  collectDefaultMetrics({ register: registry, prefix: 'timmy_process_' });
  const set = (g: Gauge<string>, label: string, values: Record<string, number>) => {
    g.reset();
    for (const [k, v] of Object.entries(values)) g.set({ [label]: k }, v);
  };
  new Gauge({ name: 'timmy_jobs', help: 'Jobs by state', labelNames: ['state'], registers: [registry], async collect() { set(this, 'state', await src.jobsByState()); } });
  new Gauge({
    name: 'timmy_invoices',
    help: 'Invoices by status (every purpose)',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const byStatus: Record<string, number> = {};
      for (const r of await src.invoices()) byStatus[r.status] = (byStatus[r.status] ?? 0) + r.n;
      set(this, 'status', byStatus);
    },
  });
  new Gauge({
    name: 'timmy_invoice_book',
    help: 'Invoices by subject (job, session, bootstrap), purpose and status',
    labelNames: ['subject', 'purpose', 'status'],
    registers: [registry],
    async collect() {
      const rows = await src.invoices();
      this.reset();
      for (const r of rows) this.set({ subject: r.subjectKind, purpose: r.purpose, status: r.status }, r.n);
    },
  });
  new Gauge({
    name: 'timmy_relay_connected',
    help: '1 when the relay connection is open',
    labelNames: ['relay'],
    registers: [registry],
    collect() {
      set(this, 'relay', Object.fromEntries(src.relays().map((r) => [r.url, r.connected ? 1 : 0])));
    },
  });
  new Gauge({ name: 'timmy_outbox_depth', help: 'Events not yet acked by any relay', registers: [registry], async collect() { this.set(await src.outboxDepth()); } });
  new Gauge({
    name: 'timmy_intake_events',
    help: 'Events received from relays since start, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      set(this, 'outcome', src.intake());
    },
  });
  // Money, read from the store at scrape time (one read serves every money gauge of a scrape).
  let money: ReturnType<MetricsSources['money']> | null = null;
  const readMoney = () => (money ??= src.money());
  new Gauge({
    name: 'timmy_received_sats',
    help: 'Sats received (paid invoices, every subject) by purpose: eval, work, deposit, topup, order',
    labelNames: ['purpose'],
    registers: [registry],
    async collect() {
      set(this, 'purpose', Object.fromEntries(Object.entries((await readMoney()).receivedMsats).map(([p, m]) => [p, m / 1000])));
    },
  });
  new Gauge({ name: 'timmy_model_cost_usd', help: "The work model's inference cost so far (its tokens at the configured rates), USD", registers: [registry], async collect() { this.set((await readMoney()).modelCostUsd); } });
  new Gauge({
    name: 'timmy_model_tokens',
    help: 'Tokens the work model used so far, by direction',
    labelNames: ['direction'],
    registers: [registry],
    async collect() {
      const m = await readMoney();
      set(this, 'direction', { input: m.inputTokens, output: m.outputTokens });
    },
  });
  new Gauge({ name: 'timmy_credits_owed_sats', help: 'Credit owed to customers (positive credits balances)', registers: [registry], async collect() { this.set((await readMoney()).creditsOwedMsats / 1000); } });
  new Gauge({ name: 'timmy_session_balances_sats', help: 'Money held in sessions (owed as service)', registers: [registry], async collect() { this.set((await readMoney()).sessionsHeldMsats / 1000); } });
  const settlement = new Histogram({
    name: 'timmy_settlement_seconds',
    help: 'From a payment committed to its `processing` feedback acked by a relay, seconds',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  src.onProcessingAcked((ms) => settlement.observe(ms / 1000));
  const http = new Counter({ name: 'timmy_http_requests_total', help: 'HTTP requests by method and status', labelNames: ['method', 'status'], registers: [registry] });

  app.get('/metrics', async (c) => {
    money = null;
    return c.text(await registry.metrics(), 200, { 'content-type': registry.contentType });
  });
  return async (c, next) => {
    await next();
    http.inc({ method: c.req.method, status: String(c.res.status) });
  };
}
