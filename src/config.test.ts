import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ENV_DOC, ENV_KEYS, loadConfig, PACKAGE_ROOT } from './config.ts';

describe('configuration', () => {
  it('has defaults for everything (a fresh checkout needs no environment)', () => {
    const c = loadConfig({});
    expect(c.HTTP_PORT).toBe(8080);
    expect(c.EMBEDDED_RELAY_PORT).toBe(7777);
    expect(c.relays).toEqual([{ url: 'ws://127.0.0.1:7777', read: true, write: true }]);
    expect(c.databasePath).toBe(resolve('./data/timmy.db'));
    expect(c.EVAL_FEE_SATS).toBe(10);
    expect(c.INVOICE_EXPIRY_S).toBe(600);
  });

  it('names every bad value, all at once', () => {
    let message = '';
    try {
      loadConfig({ HTTP_PORT: 'eighty', EVAL_FEE_SATS: '-1', LOG_LEVEL: 'loud', EMBEDDED_RELAY_PORT: 'on' });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    for (const key of ['HTTP_PORT="eighty"', 'EVAL_FEE_SATS="-1"', 'LOG_LEVEL="loud"', 'EMBEDDED_RELAY_PORT="on"']) expect(message).toContain(key);
  });

  it('reads TRUST_PROXY as a number of trusted proxy hops (1 for true/yes, 0 when unset)', () => {
    expect(loadConfig({}).TRUST_PROXY).toBe(0);
    expect(loadConfig({ TRUST_PROXY: '1' }).TRUST_PROXY).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(loadConfig({ TRUST_PROXY: 'no' }).TRUST_PROXY).toBe(0);
    expect(() => loadConfig({ TRUST_PROXY: 'lots' })).toThrow(/TRUST_PROXY/);
  });

  it('tags Tailscale node keys (tag:timmy-node by default) and refuses Tailscale without a tag', () => {
    const ts = { TAILSCALE_API_KEY: 'tskey-api-x', TAILSCALE_TAILNET: 'example.com' };
    expect(loadConfig(ts).TAILSCALE_TAGS).toEqual(['tag:timmy-node']);
    expect(loadConfig({ ...ts, TAILSCALE_TAGS: 'tag:a, tag:b' }).TAILSCALE_TAGS).toEqual(['tag:a', 'tag:b']);
    expect(() => loadConfig({ ...ts, TAILSCALE_TAGS: ',' })).toThrow(/TAILSCALE_TAGS: at least one ACL tag/);
    expect(() => loadConfig({ ...ts, TAILSCALE_TAGS: 'timmy' })).toThrow(/TAILSCALE_TAGS/);
  });

  it('checks RELAYS and requires the LNbits key with its URL', () => {
    expect(() => loadConfig({ RELAYS: 'http://example.invalid' })).toThrow(/RELAYS: not a ws/);
    expect(() => loadConfig({ LNBITS_URL: 'http://127.0.0.1:5000' })).toThrow(/LNBITS_API_KEY/);
    expect(loadConfig({ RELAYS: 'ws://127.0.0.1:1, wss://relay.example' }).relays.map((r) => r.url)).toEqual(['ws://127.0.0.1:1', 'wss://relay.example']);
  });

  it('documents every variable, and the README lists each one', () => {
    const readme = readFileSync(resolve(PACKAGE_ROOT, 'README.md'), 'utf8');
    for (const key of ENV_KEYS) {
      if (key !== 'TIMMY_FAULT') expect(ENV_DOC[key], `${key} has no ENV_DOC entry`).toBeDefined();
      expect(readme, `${key} missing from the README`).toContain(`| \`${key}\``);
    }
  });
});
