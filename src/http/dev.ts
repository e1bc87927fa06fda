// The dev pay route: pays a stub invoice the way a wallet would. Mounted only outside production with
// the stub payment backend.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';

export interface DevDeps {
  /** Pays a stub invoice; throws StubInvoiceNotFound / StubInvoiceExpired. */
  pay(paymentHash: string): Promise<{ paid: true; preimage: string }>;
}

const Paid = z.object({ paid: z.literal(true), preimage: z.string().regex(/^[0-9a-f]{64}$/) }).openapi('StubPayment');
const ErrorBody = z.object({ error: z.string() }).openapi('Error');

export function mountDevRoutes(app: OpenAPIHono, deps: DevDeps): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/dev/stub/pay/{paymentHash}',
      summary: 'Pay a stub invoice (development only)',
      request: { params: z.object({ paymentHash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters') }) },
      responses: {
        200: { description: 'paid; the preimage is what a wallet would show', content: { 'application/json': { schema: Paid } } },
        404: { description: 'no such invoice', content: { 'application/json': { schema: ErrorBody } } },
        410: { description: 'invoice expired', content: { 'application/json': { schema: ErrorBody } } },
      },
    }),
    async (c) => {
      const { paymentHash } = c.req.valid('param');
      try {
        return c.json(await deps.pay(paymentHash), 200);
      } catch (err) {
        const name = (err as Error).name;
        if (name === 'StubInvoiceNotFound') return c.json({ error: (err as Error).message }, 404);
        if (name === 'StubInvoiceExpired') return c.json({ error: (err as Error).message }, 410);
        throw err;
      }
    },
  );
}
