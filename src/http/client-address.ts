// Who is calling: the socket address, or — behind TRUST_PROXY trusted proxies — the address the outermost
// trusted proxy saw. Each proxy appends the address it saw to X-Forwarded-For, so the client's own entries
// (which it can forge) are on the left: count `trustedHops` entries from the right, never take the leftmost.
import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';

/** The client address for caps and limits; `trustedHops` 0 means the socket address only. */
export function clientAddress(c: Context, trustedHops: number): string {
  if (trustedHops > 0) {
    const hops = (c.req.header('x-forwarded-for') ?? '')
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    const seen = hops.length >= trustedHops ? hops[hops.length - trustedHops] : hops[0];
    if (seen) return seen.slice(0, 64);
  }
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
