// The free demo (SPEC 7 `GET /api/demo`): runs the work model directly on a short budget, within a
// daily spend cap in USD. Per-address rate limits are the HTTP side's business.
import type { Db } from '../store/db.ts';
import { getKv, setKv } from '../store/kv.ts';
import type { Agent, Usage } from './ports.ts';
import { OUTPUT_TIERS, estimateTokens, WORK_SYSTEM_PROMPT, type PricingParams } from '../pricing/pricing.ts';

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
    private readonly d: { db: Db; agent: Agent; pricing: PricingParams; dailyBudgetUsd: number; now?: () => Date },
  ) {}

  private inferenceUsd(inputTokens: number, outputTokens: number): number {
    const r = this.d.pricing.work;
    return (inputTokens * r.inputUsdPerMtok + outputTokens * r.outputUsdPerMtok) / 1e6;
  }

  private dayKey(): string {
    return `demo_spend_usd:${(this.d.now?.() ?? new Date()).toISOString().slice(0, 10)}`; // UTC day
  }

  spentTodayUsd(): number {
    return Number(getKv(this.d.db, this.dayKey()) ?? 0);
  }

  /** Refuses before calling the model when the worst case would cross today's budget. */
  async run(input: string): Promise<DemoAnswer> {
    const worstCase = this.inferenceUsd(estimateTokens(WORK_SYSTEM_PROMPT) + estimateTokens(input), DEMO_MAX_TOKENS);
    if (this.spentTodayUsd() + worstCase > this.d.dailyBudgetUsd) {
      throw new DemoBudgetSpent('the demo has spent its budget for today; try again tomorrow, or pay for a job');
    }
    const answer = await this.d.agent.work(input, DEMO_MAX_TOKENS);
    const costUsd = this.inferenceUsd(answer.usage.inputTokens, answer.usage.outputTokens);
    const key = this.dayKey();
    setKv(this.d.db, key, String(Number(getKv(this.d.db, key) ?? 0) + costUsd));
    return { result: answer.text, usage: answer.usage, costUsd };
  }
}
