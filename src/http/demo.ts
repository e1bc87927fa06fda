// GET /api/demo: the work model, free, 5 requests per hour per client address, within a daily budget. The
// hits are counted in the store, so the limit holds across every worker behind one address.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { DemoBudgetSpent, type DemoService } from '../core/demo.ts';
import { clientAddress } from './client-address.ts';
import { ErrorBody } from './schemas.ts';

/** The sliding window of the demo's per-address limit (the retention pass drops hits older than it). */
export const DEMO_WINDOW_MS = 3_600_000; // ms

/** The shared rate limits the route needs (store op group `limits`). */
export interface RateLimits {
  /** Records a hit on `key` unless `limit` fall in the window; null when taken, else ms until one leaves it. */
  take(key: string, limit: number, windowMs: number, nowMs: number): Promise<number | null>;
}

export interface DemoDeps {
  demo: DemoService;
  limits: RateLimits;
  trustProxy: number; // trusted proxy hops (TRUST_PROXY)
  maxInputChars: number;
  perHour?: number;
}

export function mountDemoRoutes(app: OpenAPIHono, deps: DemoDeps): void {
  const perHour = deps.perHour ?? 5;
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/demo',
      summary: 'Try the work model for free (5 per hour per client address, daily budget)',
      request: {
        query: z.object({
          request: z.string().trim().min(1, 'must not be empty').max(deps.maxInputChars, `must be at most ${deps.maxInputChars} characters`),
        }),
      },
      responses: {
        200: {
          description: 'the answer',
          content: {
            'application/json': {
              schema: z
                .object({ result: z.string(), model: z.string(), inputTokens: z.number().int(), outputTokens: z.number().int() })
                .openapi('DemoAnswer'),
            },
          },
        },
        400: { description: 'missing or empty request', content: { 'application/json': { schema: ErrorBody } } },
        429: { description: 'rate limited (see Retry-After) or daily budget spent', content: { 'application/json': { schema: ErrorBody } } },
      },
    }),
    async (c) => {
      const { request } = c.req.valid('query');
      const waitMs = await deps.limits.take(`demo:${clientAddress(c, deps.trustProxy)}`, perHour, DEMO_WINDOW_MS, Date.now());
      if (waitMs !== null) {
        const retryAfter = Math.max(1, Math.ceil(waitMs / 1000)); // s
        c.header('Retry-After', String(retryAfter));
        return c.json({ error: `rate-limited: ${perHour} demo requests per hour; try again in ${retryAfter} s` }, 429);
      }
      try {
        const a = await deps.demo.run(request);
        return c.json({ result: a.result, model: a.usage.model, inputTokens: a.usage.inputTokens, outputTokens: a.usage.outputTokens }, 200);
      } catch (err) {
        if (err instanceof DemoBudgetSpent) {
          c.header('Retry-After', String(secondsToUtcMidnight()));
          return c.json({ error: `rate-limited: ${err.message}` }, 429);
        }
        throw err;
      }
    },
  );
}

function secondsToUtcMidnight(now = new Date()): number {
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((midnight - now.getTime()) / 1000));
}
