// GET /metrics in Prometheus text format (prom-client). Gauges are read from their sources at scrape time.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';

export interface MetricsSources {
  jobsByState(): Record<string, number>;
  /** Invoices of the book by subject kind, purpose and status. */
  invoices(): { subjectKind: string; purpose: string; status: string; n: number }[];
  relays(): { url: string; connected: boolean }[];
  outboxDepth(): number;
  intake(): Record<string, number>;
}

export function mountMetrics(app: OpenAPIHono, src: MetricsSources): MiddlewareHandler {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'timmy_process_' });
  const set = (g: Gauge<string>, label: string, values: Record<string, number>) => {
    g.reset();
    for (const [k, v] of Object.entries(values)) g.set({ [label]: k }, v);
  };
  new Gauge({ name: 'timmy_jobs', help: 'Jobs by state', labelNames: ['state'], registers: [registry], collect() { set(this, 'state', src.jobsByState()); } });
  new Gauge({
    name: 'timmy_invoices',
    help: 'Invoices by status (every purpose)',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      const byStatus: Record<string, number> = {};
      for (const r of src.invoices()) byStatus[r.status] = (byStatus[r.status] ?? 0) + r.n;
      set(this, 'status', byStatus);
    },
  });
  new Gauge({
    name: 'timmy_invoice_book',
    help: 'Invoices by subject (job, session, bootstrap), purpose and status',
    labelNames: ['subject', 'purpose', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of src.invoices()) this.set({ subject: r.subjectKind, purpose: r.purpose, status: r.status }, r.n);
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
  new Gauge({ name: 'timmy_outbox_depth', help: 'Events not yet acked by any relay', registers: [registry], collect() { this.set(src.outboxDepth()); } });
  new Gauge({
    name: 'timmy_intake_events',
    help: 'Events received from relays since start, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      set(this, 'outcome', src.intake());
    },
  });
  const http = new Counter({ name: 'timmy_http_requests_total', help: 'HTTP requests by method and status', labelNames: ['method', 'status'], registers: [registry] });

  app.get('/metrics', async (c) => c.text(await registry.metrics(), 200, { 'content-type': registry.contentType }));
  return async (c, next) => {
    await next();
    http.inc({ method: c.req.method, status: String(c.res.status) });
  };
}
