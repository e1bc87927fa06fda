// The demo's daily budget holds under concurrency: the worst case is reserved before the model is called
// (issue 14, item 3: 40 concurrent calls had spent 4.3x the budget).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreHarness, type CoreHarness } from '../helpers/core.ts';

let h: CoreHarness;
beforeEach(async () => {
  h = await coreHarness({ DEMO_DAILY_BUDGET_USD: '0.02' });
});
afterEach(() => h.close());

describe('demo budget', () => {
  it('40 concurrent calls never spend more than the daily budget', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Every call waits until all 40 have passed the budget check: the race the budget must survive.
    h.agent.onWork = async (input) => {
      await gate;
      return { text: `answer to ${input}`, usage: { model: 'claude-sonnet-4-6', inputTokens: 200, outputTokens: 256 } };
    };
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
});
