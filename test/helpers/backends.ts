// The daemon's environment for the LNbits and Anthropic fakes (real clients, local servers).
import type { FakeLnbits } from '../fakes/lnbits.ts';
import { FAKE_API_KEY, type FakeAnthropic } from '../fakes/anthropic.ts';

export function fakeBackendEnv(lnbits: FakeLnbits, anthropic: FakeAnthropic): Record<string, string> {
  return {
    LNBITS_URL: lnbits.url,
    LNBITS_API_KEY: lnbits.invoiceKey,
    ANTHROPIC_API_KEY: FAKE_API_KEY,
    ANTHROPIC_BASE_URL: anthropic.url,
    BTC_PRICE_URL: 'http://127.0.0.1:9/unreachable', // loopback, nothing listens: the fallback price
  };
}
