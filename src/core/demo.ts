// The free demo (SPEC 7 `GET /api/demo`): runs the work model directly on a short budget, within a
// daily spend cap in USD. Per-address rate limits are the HTTP side's business.
import type { Store } from '../store/store.ts';
import type { Agent, Usage } from './ports.ts';
import { OUTPUT_TIERS, WORK_SYSTEM_PROMPT, type PricingParams } from '../pricing/pricing.ts';

export class DemoBudgetSpent extends Error {
  override name = 'DemoBudgetSpent';
}

export interface DemoAnswer {
  result: string;
  usage: Usage;
  costUsd: number; // inference cost of this call, USD
}

const DEMO_MAX_TOKENS = OUTPUT_TIERS.short;

export class DemoService {
  constructor(
    private readonly d: { store: Store; agent: Agent; pricing: PricingParams; dailyBudgetUsd: number; now?: () => Date },
  ) {}

  private inferenceUsd(inputTokens: number, outputTokens: number): number {
    const r = this.d.pricing.work;
    return (inputTokens * r.inputUsdPerMtok + outputTokens * r.outputUsdPerMtok) / 1e6;
  }

  /** Today's spend is kept in integer micro-USD (exact sums, no float text) under the UTC day. */
  private dayKey(): string {
    return `demo_spend_uusd:${(this.d.now?.() ?? new Date()).toISOString().slice(0, 10)}`; // UTC day
  }

  async spentTodayUsd(): Promise<number> {
    return Number((await this.d.store.kv.getKv(this.dayKey())) ?? 0) / 1e6;
  }

  /**
   * Reserves the worst case (the whole output budget) against today's budget before calling the model, in
   * one conditional statement with the check, so concurrent calls on every worker cannot together spend
   * more than the budget; the reservation becomes the actual cost afterwards (or is released when the call
   * fails).
   */
  async run(input: string): Promise<DemoAnswer> {
    // A token is at least one byte of UTF-8, so the byte count bounds the input from above (characters / 4
    // is an estimate, not a bound: CJK text runs at about one token per character).
    const worstCaseUusd = microUsd(this.inferenceUsd(Buffer.byteLength(WORK_SYSTEM_PROMPT + input, 'utf8'), DEMO_MAX_TOKENS));
    const key = this.dayKey();
    const budgetUusd = Math.round(this.d.dailyBudgetUsd * 1e6);
    if ((await this.d.store.kv.addToNumber(key, worstCaseUusd, budgetUusd)) === null) {
      throw new DemoBudgetSpent('the demo has spent its budget for today; try again tomorrow, or pay for a job');
    }
    let answer;
    try {
      answer = await this.d.agent.work(input, DEMO_MAX_TOKENS);
    } catch (err) {
      await this.adjust(key, -worstCaseUusd);
      throw err;
    }
    const costUsd = this.inferenceUsd(answer.usage.inputTokens, answer.usage.outputTokens);
    await this.adjust(key, microUsd(costUsd) - worstCaseUusd);
    return { result: answer.text, usage: answer.usage, costUsd };
  }

  /** Turns a reservation into the actual cost (or releases it): never refused, whatever the cap. */
  private async adjust(key: string, deltaUusd: number): Promise<void> {
    await this.d.store.kv.addToNumber(key, deltaUusd, Number.MAX_SAFE_INTEGER);
  }
}

/** USD as whole micro-USD, rounded up (a reservation or a cost is never under-counted; the 1e-6 absorbs float noise). */
const microUsd = (usd: number) => Math.ceil(usd * 1e6 - 1e-6);
