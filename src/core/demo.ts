// The free demo (SPEC 7 `GET /api/demo`): runs the work model directly on a short budget, within a
// daily spend cap in USD. Per-address rate limits are the HTTP side's business.
import { atomically, type Db } from '../store/db.ts';
import { getKv, setKv } from '../store/kv.ts';
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
    const reserved = atomically(this.d.db, () => {
      const spent = Number(getKv(this.d.db, key) ?? 0);
      if (spent + worstCase > this.d.dailyBudgetUsd) return false;
      setKv(this.d.db, key, String(spent + worstCase));
      return true;
    });
    if (!reserved) throw new DemoBudgetSpent('the demo has spent its budget for today; try again tomorrow, or pay for a job');
    let answer;
    try {
      answer = await this.d.agent.work(input, DEMO_MAX_TOKENS);
    } catch (err) {
      this.adjust(key, -worstCase);
      throw err;
    }
    const costUsd = this.inferenceUsd(answer.usage.inputTokens, answer.usage.outputTokens);
    this.adjust(key, costUsd - worstCase);
    return { result: answer.text, usage: answer.usage, costUsd };
  }

  private adjust(key: string, deltaUsd: number): void {
    atomically(this.d.db, () => setKv(this.d.db, key, String(Math.max(0, Number(getKv(this.d.db, key) ?? 0) + deltaUsd))));
  }
}
