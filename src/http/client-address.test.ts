// The client address behind trusted proxies: counted from the right of X-Forwarded-For, so the entries a
// client writes itself (on the left) never pick its address.
import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { clientAddress } from './client-address.ts';

const seen = async (hops: number, xff?: string) => {
  const app = new Hono().get('/', (c) => c.text(clientAddress(c, hops)));
  return (await app.request('/', { headers: xff === undefined ? {} : { 'x-forwarded-for': xff } })).text();
};

describe('clientAddress', () => {
  it('one trusted proxy: the entry it appended (rightmost), whatever the client put on the left', async () => {
    expect(await seen(1, '203.0.113.9')).toBe('203.0.113.9');
    expect(await seen(1, '1.1.1.1, 2.2.2.2, 203.0.113.9')).toBe('203.0.113.9');
    expect(await seen(1, 'spoofed-by-client,203.0.113.9')).toBe('203.0.113.9');
  });

  it('two trusted proxies: the second entry from the right (what the outer proxy saw)', async () => {
    expect(await seen(2, 'forged, 203.0.113.9, 10.0.0.2')).toBe('203.0.113.9');
    expect(await seen(2, '203.0.113.9')).toBe('203.0.113.9'); // fewer entries than hops: the leftmost there is
  });

  it('no trusted proxy: the header is ignored', async () => {
    expect(await seen(0, '203.0.113.9')).toBe('unknown'); // app.request has no socket; a server gives its address
  });
});
