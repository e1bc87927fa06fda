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

  private dayKey(): string {
    return `demo_spend_usd:${(this.d.now?.() ?? new Date()).toISOString().slice(0, 10)}`; // UTC day
  }

  async spentTodayUsd(): Promise<number> {
    return Number((await this.d.store.kv.getKv(this.dayKey())) ?? 0);
  }

  /**
   * Reserves the worst case (the whole output budget) against today's budget before calling the model, in
   * one step with the check, so concurrent calls cannot together spend more than the budget; the
   * reservation becomes the actual cost afterwards (or is released when the call fails).
   */
  async run(input: string): Promise<DemoAnswer> {
    // A token is at least one byte of UTF-8, so the byte count bounds the input from above (characters / 4
    // is an estimate, not a bound: CJK text runs at about one token per character).
    const worstCase = this.inferenceUsd(Buffer.byteLength(WORK_SYSTEM_PROMPT + input, 'utf8'), DEMO_MAX_TOKENS);
    const key = this.dayKey();
    const reserved = await this.d.store.txIf(async (t) => {
      const spent = Number((await t.kv.getKv(key)) ?? 0);
      if (spent + worstCase > this.d.dailyBudgetUsd) return false;
      await t.kv.setKv(key, String(spent + worstCase));
      return true;
    });
    if (!reserved) throw new DemoBudgetSpent('the demo has spent its budget for today; try again tomorrow, or pay for a job');
    let answer;
    try {
      answer = await this.d.agent.work(input, DEMO_MAX_TOKENS);
    } catch (err) {
      await this.adjust(key, -worstCase);
      throw err;
    }
    const costUsd = this.inferenceUsd(answer.usage.inputTokens, answer.usage.outputTokens);
    await this.adjust(key, costUsd - worstCase);
    return { result: answer.text, usage: answer.usage, costUsd };
  }

  private async adjust(key: string, deltaUsd: number): Promise<void> {
    await this.d.store.tx(async (t) => t.kv.setKv(key, String(Math.max(0, Number((await t.kv.getKv(key)) ?? 0) + deltaUsd))));
  }
}
