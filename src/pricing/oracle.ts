// BTC/USD price oracle (SPEC 5): CoinGecko simple-price JSON, 60 s cache, 5 s timeout, fallback on any failure.
import type { Logger } from '../log.ts';

export const COINGECKO_SIMPLE_PRICE_URL = 'https://api.coingecko.com/api/v3/simple/price?ids=bitcoin&vs_currencies=usd';

export interface BtcPrice {
  usd: number;
  source: 'live' | 'cache' | 'fallback';
}

/** What the pricing needs of a price source. */
export interface PriceOracle {
  btcUsd(): Promise<BtcPrice>;
}

export interface OracleOptions {
  url?: string; // unset: always the fallback, no network call
  fallbackUsd: number;
  ttlMs?: number; // ms
  timeoutMs?: number; // ms
  fetch?: typeof fetch;
  now?: () => number; // ms
  log?: Logger;
}

/** Reads `{"bitcoin":{"usd":<number>}}`; anything else is a failure. */
export function parseCoinGecko(body: unknown): number | null {
  if (typeof body !== 'object' || body === null) return null;
  const btc = (body as Record<string, unknown>).bitcoin;
  if (typeof btc !== 'object' || btc === null) return null;
  const usd = (btc as Record<string, unknown>).usd;
  return typeof usd === 'number' && Number.isFinite(usd) && usd > 0 ? usd : null;
}

export class CoinGeckoOracle implements PriceOracle {
  private cached: { usd: number; at: number } | null = null;
  private inflight: Promise<BtcPrice> | null = null;
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;

  constructor(private readonly opts: OracleOptions) {
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.fetchFn = opts.fetch ?? fetch;
    this.now = opts.now ?? Date.now;
  }

  async btcUsd(): Promise<BtcPrice> {
    if (!this.opts.url) return { usd: this.opts.fallbackUsd, source: 'fallback' };
    if (this.cached && this.now() - this.cached.at < this.ttlMs) return { usd: this.cached.usd, source: 'cache' };
    // Concurrent callers share one request.
    this.inflight ??= this.fetchLive().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async fetchLive(): Promise<BtcPrice> {
    try {
      const res = await this.fetchFn(this.opts.url!, {
        signal: AbortSignal.timeout(this.timeoutMs),
        headers: { accept: 'application/json' },
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const usd = parseCoinGecko(await res.json());
      if (usd === null) throw new Error('unexpected response shape');
      this.cached = { usd, at: this.now() };
      return { usd, source: 'live' };
    } catch (err) {
      this.opts.log?.warn({ err: (err as Error).message }, 'BTC price unavailable, using fallback');
      return { usd: this.opts.fallbackUsd, source: 'fallback' };
    }
  }
}
