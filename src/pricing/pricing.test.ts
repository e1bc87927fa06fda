import { describe, expect, it } from 'vitest';
import { actualCostUsd, costLedger, estimateOutputTokens, estimateTokens, OUTPUT_TIERS, outputTier, quoteWork, usdToSats, WORK_SYSTEM_PROMPT, type PricingParams } from './pricing.ts';

const P: PricingParams = {
  work: { model: 'work-model', inputUsdPerMtok: 3, outputUsdPerMtok: 15 },
  infraMonthlyUsd: 20,
  infraMonthlyRequests: 10_000,
  marginPct: 20,
  minWorkFeeSats: 1,
};

describe('token estimates and tiers', () => {
  it('estimates conservatively: 3 ASCII characters per token, one per other code point, at least 1', () => {
    expect(estimateTokens('')).toBe(1);
    expect(estimateTokens('abc')).toBe(1);
    expect(estimateTokens('abcd')).toBe(2);
    // The request that ÷ 4 quoted at 4,027 tokens: 15,993 CJK characters are at least as many tokens.
    expect(estimateTokens('閃電網絡'.repeat(3998) + '比特幣')).toBeGreaterThanOrEqual(15_993);
    expect(estimateTokens('😀')).toBe(1); // one code point, not two UTF-16 units
  });
  it('prices counted input tokens when the backend counted them', () => {
    const q = quoteWork(P, '閃電'.repeat(100), 50_000, undefined, 321);
    expect(q.estimatedInputTokens).toBe(321);
  });
  it('picks short, medium and long tiers from the request', () => {
    expect(outputTier('hi')).toBe('short');
    expect(outputTier('Answer briefly: ' + 'x'.repeat(3000))).toBe('short');
    expect(outputTier('y'.repeat(500))).toBe('medium');
    expect(outputTier('Write a detailed essay on money')).toBe('long');
    expect(outputTier('z'.repeat(2500))).toBe('long');
  });
  it('a max_tokens hint lowers the estimate but never raises it', () => {
    expect(estimateOutputTokens('hi', 100)).toBe(100);
    expect(estimateOutputTokens('hi', 100_000)).toBe(OUTPUT_TIERS.short);
  });
});

describe('usdToSats', () => {
  it('rounds up to the next sat', () => {
    // At $100,000 per BTC one sat is $0.001.
    expect(usdToSats(0.0101, 100_000)).toBe(11); // 10.1 sats
    expect(usdToSats(0.01, 100_000)).toBe(10); // exactly 10 sats
    expect(usdToSats(0.07 / 7, 100_000)).toBe(10); // 10.000000000000002: float noise is not a sat
    expect(usdToSats(0.0000001, 100_000)).toBe(1); // a fraction of a sat is a whole sat
  });
  it('never goes below the minimum', () => {
    expect(usdToSats(0, 100_000, 1)).toBe(1);
    expect(usdToSats(0.0000001, 100_000, 5)).toBe(5);
  });
  it('refuses a non-positive BTC price', () => {
    expect(() => usdToSats(1, 0)).toThrow(RangeError);
  });
});

describe('quoteWork and the cost ledger', () => {
  it('prices tokens x rates + infra, x margin, and rounds up', () => {
    const q = quoteWork(P, 'hi', 50_000);
    const inTok = estimateTokens(WORK_SYSTEM_PROMPT) + 1;
    expect(q.estimatedInputTokens).toBe(inTok);
    expect(q.estimatedOutputTokens).toBe(OUTPUT_TIERS.short);
    expect(q.inferenceUsd).toBeCloseTo((inTok * 3 + 256 * 15) / 1e6, 12);
    expect(q.infraUsd).toBeCloseTo(0.002, 12);
    expect(q.totalUsd).toBeCloseTo((q.inferenceUsd + 0.002) * 1.2, 12);
    expect(q.amountSats).toBe(Math.ceil((q.totalUsd * 1e8) / 50_000));
    expect(q.btcPriceUsd).toBe(50_000);
    expect(Number.isInteger(q.amountSats)).toBe(true);
  });
  it('applies the minimum work fee', () => {
    const cheap = { ...P, work: { ...P.work, inputUsdPerMtok: 0, outputUsdPerMtok: 0 }, infraMonthlyUsd: 0, minWorkFeeSats: 21 };
    expect(quoteWork(cheap, 'hi', 100_000).amountSats).toBe(21);
  });
  it('the actual cost of the estimated usage never exceeds the quote', () => {
    const q = quoteWork(P, 'Explain Lightning in detail', 100_000);
    expect(actualCostUsd(P, q.estimatedInputTokens, q.estimatedOutputTokens)).toBeCloseTo(q.totalUsd, 12);
    const ledger = costLedger(P, { model: 'm', inputTokens: 10, outputTokens: 20 }, q.amountSats);
    expect(ledger).toEqual({ model: 'm', actualInputTokens: 10, actualOutputTokens: 20, actualCostUsd: actualCostUsd(P, 10, 20), chargedSats: q.amountSats });
  });
});
