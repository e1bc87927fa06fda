import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoinGeckoOracle, parseCoinGecko } from './oracle.ts';

// A local CoinGecko stand-in whose behaviour each test sets.
let mode: 'ok' | '429' | 'slow' | 'badjson' | 'wrongshape' = 'ok';
let hits = 0;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    hits++;
    if (!req.url?.startsWith('/api/v3/simple/price')) return res.writeHead(404).end();
    if (mode === '429') return res.writeHead(429, { 'content-type': 'application/json' }).end('{"status":{"error_code":429,"error_message":"rate limited"}}');
    if (mode === 'slow') return void setTimeout(() => res.writeHead(200).end('{"bitcoin":{"usd":1}}'), 2000);
    if (mode === 'badjson') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"bitcoin": {"usd": ');
    if (mode === 'wrongshape') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"bitcoin":{"eur":1}}');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"bitcoin":{"usd":65432.1}}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/api/v3/simple/price?ids=bitcoin&vs_currencies=usd`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('BTC price oracle', () => {
  it('reads the CoinGecko shape and caches it for the TTL', async () => {
    mode = 'ok';
    hits = 0;
    let now = 1_000_000;
    const o = new CoinGeckoOracle({ url, fallbackUsd: 100_000, now: () => now });
    expect(await o.btcUsd()).toEqual({ usd: 65432.1, source: 'live' });
    now += 59_000;
    expect(await o.btcUsd()).toEqual({ usd: 65432.1, source: 'cache' });
    expect(hits).toBe(1);
    now += 2_000;
    expect((await o.btcUsd()).source).toBe('live');
    expect(hits).toBe(2);
  });
  it.each(['429', 'badjson', 'wrongshape'] as const)('falls back on %s', async (m) => {
    mode = m;
    const o = new CoinGeckoOracle({ url, fallbackUsd: 123_456 });
    expect(await o.btcUsd()).toEqual({ usd: 123_456, source: 'fallback' });
  });
  it('falls back on timeout', async () => {
    mode = 'slow';
    const o = new CoinGeckoOracle({ url, fallbackUsd: 99_999, timeoutMs: 100 });
    expect(await o.btcUsd()).toEqual({ usd: 99_999, source: 'fallback' });
  });
  it('makes no network call without a URL', async () => {
    hits = 0;
    const o = new CoinGeckoOracle({ fallbackUsd: 100_000 });
    expect(await o.btcUsd()).toEqual({ usd: 100_000, source: 'fallback' });
    expect(hits).toBe(0);
  });
  it('parses only positive finite prices', () => {
    expect(parseCoinGecko({ bitcoin: { usd: 1 } })).toBe(1);
    expect(parseCoinGecko({ bitcoin: { usd: -1 } })).toBeNull();
    expect(parseCoinGecko({ bitcoin: { usd: '1' } })).toBeNull();
    expect(parseCoinGecko(null)).toBeNull();
  });
});
