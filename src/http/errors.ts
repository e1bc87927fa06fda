// The one mapping from a core refusal to an HTTP answer: its code picks the status, its words are the body.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Refusal, RefusalCode } from '../core/refusal.ts';

export const REFUSAL_STATUS: Readonly<Record<RefusalCode, ContentfulStatusCode>> = {
  invalid: 400,
  'bid-too-low': 400,
  'rate-limited': 429,
  'pow-required': 429, // Nostr only (an HTTP request has no event id to mine)
  unavailable: 503,
  unauthorized: 401,
  caveat: 401,
  'payment-required': 402,
  'not-found': 404,
  conflict: 409,
  gone: 410,
};

export function refusalResponse(c: Context, r: Refusal): Response {
  return c.json({ error: r.message }, REFUSAL_STATUS[r.code]);
}
