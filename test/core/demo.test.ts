// The demo's daily budget holds under concurrency: the worst case is reserved before the model is called
// (issue 14, item 3: 40 concurrent calls had spent 4.3x the budget), by one conditional statement in the
// store, so it holds across workers too (on PostgreSQL: two pools on one database).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, type CoreHarness } from '../helpers/core.ts';
import { DemoService } from '../../src/core/demo.ts';
import { pricingParams } from '../../src/daemon.ts';
import type { Store } from '../../src/store/store.ts';
import { OpenAPIHono } from '@hono/zod-openapi';
import { mountDemoRoutes } from '../../src/http/demo.ts';

let h: CoreHarness;
const closers: (() => Promise<void>)[] = [];
beforeEach(async () => {
  h = await coreHarness({ DEMO_DAILY_BUDGET_USD: '0.02' });
});
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  await h.close();
});

/** Holds every model call until released: all calls pass the budget check before any of them finishes. */
function gateWork(outputTokens = 256): () => void {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  h.agent.onWork = async (input) => {
    await gate;
    return { text: `answer to ${input}`, usage: { model: 'claude-sonnet-4-6', inputTokens: 200, outputTokens } };
  };
  return release;
}

/** Another worker's store: a second pool on the same PostgreSQL database; on SQLite (one process) the same store. */
async function otherStore(): Promise<Store> {
  if (!h.url) return h.store;
  const pg = await (await import('../../src/store/pg/store.ts')).openPgStore(h.url);
  closers.push(() => pg.close());
  return pg;
}

/** Another worker's demo over the same database. */
async function otherWorker(): Promise<DemoService> {
  return new DemoService({ store: await otherStore(), agent: h.agent, pricing: pricingParams(h.config), dailyBudgetUsd: h.config.DEMO_DAILY_BUDGET_USD });
}

describe('demo budget', () => {
  it('40 concurrent calls never spend more than the daily budget', async () => {
    const release = gateWork();
    const calls = Array.from({ length: 40 }, (_, i) => h.core.demo.run(`question ${i}`).then(() => 'ok', (err: Error) => err.name));
    await new Promise((r) => setImmediate(r));
    release();
    const outcomes = await Promise.all(calls);
    const served = outcomes.filter((o) => o === 'ok').length;
    expect(served).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o !== 'ok').every((o) => o === 'DemoBudgetSpent')).toBe(true);
    expect((await h.core.demo.spentTodayUsd())).toBeLessThanOrEqual(0.02);
    expect(h.agent.calls.work).toBe(served);
  });

  it('50 concurrent calls on two workers: the reservations fill the budget exactly, never past it', async () => {
    const other = await otherWorker();
    const release = gateWork(100); // less than the reserved worst case, as a real answer costs
    const held = h.agent.onWork!;
    // Every call either reserves (and then waits on the model) or is refused: count both until all 50 are in.
    let passed = 0;
    let refused = 0;
    let allIn!: () => void;
    const everyoneIn = new Promise<void>((r) => (allIn = r));
    const counted = () => passed + refused === 50 && allIn();
    h.agent.onWork = (input) => (passed++, counted(), held(input));
    // Inputs of one length: every call reserves the same worst case.
    const calls = Array.from({ length: 50 }, (_, i) =>
      (i % 2 ? other : h.core.demo).run(`question ${String(i).padStart(2, '0')}`).then(
        () => 'ok',
        (err: Error) => (refused++, counted(), err.name),
      ),
    );
    await everyoneIn;
    const reserved = await h.core.demo.spentTodayUsd();
    const worstCase = reserved / passed;
    expect(passed).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(reserved).toBeLessThanOrEqual(0.02);
    expect(reserved + worstCase).toBeGreaterThan(0.02); // no room left that a refused call could have used
    release();
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(passed);
    expect(outcomes.filter((o) => o !== 'ok').every((o) => o === 'DemoBudgetSpent')).toBe(true);
    expect(await h.core.demo.spentTodayUsd()).toBeLessThanOrEqual(reserved); // reservations became the (smaller) actual costs
  });
});

describe('demo rate limit', () => {
  /** GET /api/demo as served by a worker over `store`, the client address given by a trusted proxy. */
  function demoRoute(store: Store, demo: DemoService) {
    const app = new OpenAPIHono();
    mountDemoRoutes(app, { demo, limits: store.limits, trustProxy: 1, maxInputChars: 1000 });
    return async (from: string, request: string) => {
      const res = await app.request(`/api/demo?request=${encodeURIComponent(request)}`, { headers: { 'x-forwarded-for': from } });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { error?: string; result?: string } };
    };
  }

  it('five per hour per address across two workers, then 429 with Retry-After; another address is unaffected', async () => {
    const workers = [demoRoute(h.store, h.core.demo), demoRoute(await otherStore(), await otherWorker())];
    for (let i = 0; i < 5; i++) {
      const r = await workers[i % 2]!('192.0.2.1', `demo ${i}`);
      expect(r.status).toBe(200);
      expect(r.body.result).toContain(`demo ${i}`);
    }
    for (const worker of workers) {
      const sixth = await worker('192.0.2.1', 'again');
      expect(sixth.status).toBe(429);
      expect(sixth.body.error).toMatch(/^rate-limited: 5 demo requests per hour; try again in \d+ s$/);
      expect(Number(sixth.retryAfter)).toBeGreaterThan(3500);
      expect(Number(sixth.retryAfter)).toBeLessThanOrEqual(3600);
      expect(sixth.body.error).toContain(`in ${sixth.retryAfter} s`);
    }
    expect((await workers[1]!('192.0.2.2', 'hi')).status).toBe(200);
    expect(h.agent.calls.work).toBe(6);
  });
});
