// The work quote of a request (SPEC 5): its input tokens counted by the AI backend when it can count them
// (Anthropic's token-counting endpoint: exact for any script, free of charge), else a conservative estimate;
// priced at the oracle's BTC price. The count is asked for only where someone has paid or holds a funded
// session (quoting after a paid evaluation, reserving on a session): an unpaid request never makes Timmy
// call the backend. The bid check before any payment uses the estimate.
import type { Logger } from '../log.ts';
import type { PriceOracle } from '../pricing/oracle.ts';
import { estimatePromptTokens, modelPrices, quoteWork, type ModelPrices, type PricingBreakdown, type PricingParams } from '../pricing/pricing.ts';
import type { Agent, WorkPrompt } from './ports.ts';

export interface QuoterDeps {
  agent: Pick<Agent, 'countInputTokens'>;
  oracle: PriceOracle;
  pricing: PricingParams;
  log: Logger;
}

export class Quoter {
  constructor(private readonly d: QuoterDeps) {}

  get params(): PricingParams {
    return this.d.pricing;
  }

  /**
   * The quote with the input tokens counted by the backend (falling back to the estimate when it cannot).
   * With a conversation (`chat`), every turn and its system prompt are counted; `input` (its last user turn)
   * picks the output tier.
   */
  async counted(input: string, maxTokens?: number, chat?: WorkPrompt): Promise<PricingBreakdown> {
    const tokens = (await this.countInput(chat ?? input)) ?? (chat ? estimatePromptTokens(chat) : undefined);
    const btc = await this.d.oracle.btcUsd();
    return quoteWork(this.d.pricing, input, btc.usd, maxTokens, tokens);
  }

  /** The quote on the conservative estimate alone (no call to the AI backend). */
  async estimated(input: string, maxTokens?: number): Promise<PricingBreakdown> {
    const btc = await this.d.oracle.btcUsd();
    return quoteWork(this.d.pricing, input, btc.usd, maxTokens);
  }

  /** The work model's prices per million tokens at the oracle's BTC price (GET /v1/models). */
  async prices(): Promise<ModelPrices> {
    const btc = await this.d.oracle.btcUsd();
    return modelPrices(this.d.pricing, btc.usd);
  }

  private async countInput(input: string | WorkPrompt): Promise<number | undefined> {
    if (!this.d.agent.countInputTokens) return undefined;
    try {
      return await this.d.agent.countInputTokens(input);
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message }, 'token count failed; quoting on the conservative estimate');
      return undefined;
    }
  }
}
