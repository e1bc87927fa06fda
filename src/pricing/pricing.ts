// Pure pricing (SPEC 5): token estimates, tiers, USD cost, and USD -> sats rounded up.

export interface ModelRates {
  model: string;
  inputUsdPerMtok: number;
  outputUsdPerMtok: number;
}

export interface PricingParams {
  work: ModelRates;
  infraMonthlyUsd: number;
  infraMonthlyRequests: number;
  marginPct: number;
  minWorkFeeSats: number;
}

/** What a customer is quoted before paying for work; field names are a client contract. */
export interface PricingBreakdown {
  model: string;
  estimatedInputTokens: number;
  estimatedOutputTokens: number;
  inferenceUsd: number;
  infraUsd: number;
  marginPct: number;
  totalUsd: number;
  btcPriceUsd: number;
  amountSats: number;
}

/** What the work actually cost, published with the result; field names are a client contract. */
export interface CostLedger {
  model: string;
  actualInputTokens: number;
  actualOutputTokens: number;
  actualCostUsd: number;
  chargedSats: number;
}

/** The work model's system prompt; counted in the input estimate. */
export const WORK_SYSTEM_PROMPT =
  'You are Timmy, a helpful assistant paid per request over Lightning. Answer the request directly and concisely.';

export const OUTPUT_TIERS = { short: 256, medium: 1024, long: 4096 } as const; // tokens
export type OutputTier = keyof typeof OUTPUT_TIERS;

const LONG_HINT = /\b(essay|article|report|detailed|in depth|step[- ]by[- ]step|explain|write a|story|code|program|tutorial)\b/i;
const SHORT_HINT = /\b(yes or no|one word|one sentence|briefly|short|tl;?dr|translate)\b/i;

/**
 * A conservative token count without the model's tokenizer (used when the backend cannot count): one token
 * per 3 ASCII characters (English runs nearer 4) and one per other code point (Chinese, Japanese, Korean,
 * Cyrillic and most other scripts take about one each; ÷ 4 quoted 15,993 CJK characters as 4,027 tokens).
 * Never 0.
 */
export function estimateTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const ch of text) {
    if (ch.charCodeAt(0) < 0x80) ascii++;
    else other++;
  }
  return Math.max(1, Math.ceil(ascii / 3) + other);
}

/** A conversation as the pricing sees it: a system prompt (Timmy's when absent) and the turns' texts. */
export interface PromptText {
  system?: string;
  turns: { content: string }[];
}

/** Conservative input tokens of a conversation: its system prompt (Timmy's when absent) and every turn. */
export function estimatePromptTokens(prompt: PromptText): number {
  return estimateTokens(prompt.system ?? WORK_SYSTEM_PROMPT) + prompt.turns.reduce((n, t) => n + estimateTokens(t.content), 0);
}

/** Output tier by what the request asks for: explicit cues first, then its length. */
export function outputTier(input: string): OutputTier {
  if (SHORT_HINT.test(input)) return 'short';
  if (LONG_HINT.test(input) || input.length > 2000) return 'long';
  if (input.length < 200) return 'short';
  return 'medium';
}

/** Estimated output tokens: the tier, lowered (never raised) by a `max_tokens` hint. */
export function estimateOutputTokens(input: string, maxTokensHint?: number): number {
  const tierTokens = OUTPUT_TIERS[outputTier(input)];
  if (maxTokensHint !== undefined && maxTokensHint > 0) return Math.min(tierTokens, Math.floor(maxTokensHint));
  return tierTokens;
}

export function infraUsdPerRequest(p: PricingParams): number {
  return p.infraMonthlyUsd / p.infraMonthlyRequests;
}

/** USD -> sats at `btcPriceUsd`, rounded up (tolerating float noise of a nano-sat), at least `minSats`. */
export function usdToSats(usd: number, btcPriceUsd: number, minSats = 0): number {
  if (!(btcPriceUsd > 0)) throw new RangeError(`btcPriceUsd must be positive, got ${btcPriceUsd}`);
  const exact = (usd * 1e8) / btcPriceUsd;
  const sats = Math.ceil(exact - 1e-9);
  return Math.max(minSats, sats, 0);
}

function withMargin(usd: number, marginPct: number): number {
  return usd * (1 + marginPct / 100);
}

/**
 * The work quote for `input` at `btcPriceUsd`. `countedInputTokens` is the backend's count of the work call's
 * input (system prompt included) when it could count; else the estimate.
 */
export function quoteWork(p: PricingParams, input: string, btcPriceUsd: number, maxTokensHint?: number, countedInputTokens?: number): PricingBreakdown {
  const estimatedInputTokens = countedInputTokens ?? estimateTokens(WORK_SYSTEM_PROMPT) + estimateTokens(input);
  const estimatedOutputTokens = estimateOutputTokens(input, maxTokensHint);
  const inferenceUsd =
    (estimatedInputTokens * p.work.inputUsdPerMtok + estimatedOutputTokens * p.work.outputUsdPerMtok) / 1e6;
  const infraUsd = infraUsdPerRequest(p);
  const totalUsd = withMargin(inferenceUsd + infraUsd, p.marginPct);
  return {
    model: p.work.model,
    estimatedInputTokens,
    estimatedOutputTokens,
    inferenceUsd,
    infraUsd,
    marginPct: p.marginPct,
    totalUsd,
    btcPriceUsd,
    amountSats: usdToSats(totalUsd, btcPriceUsd, p.minWorkFeeSats),
  };
}

/** Per-token prices of the work model as charged (margin included), per million tokens, and the flat part per request. */
export interface ModelPrices {
  model: string;
  inputUsdPerMtok: number;
  outputUsdPerMtok: number;
  requestUsd: number; // infra share per request, margin included
  btcPriceUsd: number;
  inputSatsPerMtok: number; // rounded up
  outputSatsPerMtok: number; // rounded up
  requestSats: number; // rounded up
}

export function modelPrices(p: PricingParams, btcPriceUsd: number): ModelPrices {
  const m = (usd: number) => withMargin(usd, p.marginPct);
  const inputUsdPerMtok = m(p.work.inputUsdPerMtok);
  const outputUsdPerMtok = m(p.work.outputUsdPerMtok);
  const requestUsd = m(infraUsdPerRequest(p));
  return {
    model: p.work.model,
    inputUsdPerMtok,
    outputUsdPerMtok,
    requestUsd,
    btcPriceUsd,
    inputSatsPerMtok: usdToSats(inputUsdPerMtok, btcPriceUsd),
    outputSatsPerMtok: usdToSats(outputUsdPerMtok, btcPriceUsd),
    requestSats: usdToSats(requestUsd, btcPriceUsd),
  };
}

/** Actual cost of a finished work call: tokens x rates + infra, x margin. */
export function actualCostUsd(p: PricingParams, inputTokens: number, outputTokens: number): number {
  const inference = (inputTokens * p.work.inputUsdPerMtok + outputTokens * p.work.outputUsdPerMtok) / 1e6;
  return withMargin(inference + infraUsdPerRequest(p), p.marginPct);
}

export function costLedger(
  p: PricingParams,
  usage: { model: string; inputTokens: number; outputTokens: number },
  chargedSats: number,
): CostLedger {
  return {
    model: usage.model,
    actualInputTokens: usage.inputTokens,
    actualOutputTokens: usage.outputTokens,
    actualCostUsd: actualCostUsd(p, usage.inputTokens, usage.outputTokens),
    chargedSats,
  };
}
