// Node bootstrap over HTTP (SPEC 7): order, follow, and claim the credentials once with the claim token.
import { randomBytes } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { nextSteps, type BootstrapService } from '../core/bootstrap.ts';
import { BOOTSTRAP_STATES } from '../core/bootstrap-machine.ts';
import { clientAddress } from './client-address.ts';
import { ErrorBody, Invoice, invoiceBody } from './schemas.ts';

export interface BootstrapRoutesDeps {
  bootstrap: Pick<BootstrapService, 'submit' | 'refresh' | 'invoice' | 'claim'>;
  trustProxy: number; // trusted proxy hops (TRUST_PROXY)
}

const Id = z.string().regex(/^[0-9a-f]{32}$|^[0-9a-f]{64}$/, 'must be a 32- or 64-character lowercase hex id');
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const View = z
  .object({
    bootstrapJobId: z.string(),
    state: z.enum(BOOTSTRAP_STATES),
    progress: z.string().nullable(),
    size: z.string(),
    region: z.string(),
    invoice: Invoice,
    ip: z.string().nullable(),
    tailscaleHostname: z.string().nullable(),
    sshUser: z.string().nullable(),
    nodeNpub: z.string().nullable(),
    nextSteps: z.array(z.string()),
    credentialsAvailable: z.boolean(),
    errorMessage: z.string().nullable(),
  })
  .openapi('BootstrapJob');

const Claimed = z
  .object({
    ip: z.string(),
    tailscaleHostname: z.string().nullable(),
    sshUser: z.string(),
    nodeNpub: z.string(),
    nodeNsec: z.string(),
    nextSteps: z.array(z.string()),
    sshPrivateKey: z.string().nullable().openapi({ description: 'OpenSSH private key block; null when you gave your own public key' }),
  })
  .openapi('NodeCredentials');

export function mountBootstrapRoutes(app: OpenAPIHono, deps: BootstrapRoutesDeps): void {
  const b = deps.bootstrap;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/bootstrap',
      summary: 'Order a Bitcoin full node: pay the invoice, then claim the credentials',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: z
                .object({
                  size: z.string().max(64).optional(),
                  region: z.string().max(16).optional(),
                  sshPublicKey: z.string().max(16_384).optional().openapi({ description: 'your OpenSSH public key: then no private key is generated' }),
                })
                .openapi('OrderNode', { example: {} }),
            },
          },
        },
      },
      responses: {
        201: json(z.object({ bootstrapJobId: z.string(), claimToken: z.string(), invoice: Invoice }).openapi('NodeOrdered'), 'ordered'),
        400: json(ErrorBody, 'unknown size, bad region or SSH key'),
        429: json(ErrorBody, 'too many unpaid orders from this address'),
        503: json(ErrorBody, 'payment backend unavailable'),
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const r = await b.submit({
        id: randomBytes(16).toString('hex'),
        source: 'http',
        customerPubkey: null,
        clientAddress: clientAddress(c, deps.trustProxy),
        requestJson: null,
        relays: [],
        size: body.size,
        region: body.region,
        sshKey: body.sshPublicKey,
      });
      if (r.status !== 'created') return c.json({ error: 'duplicate order id' }, 400);
      return c.json({ bootstrapJobId: r.job.id, claimToken: r.claimToken!, invoice: invoiceBody(r.invoice) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/bootstrap/{id}',
      summary: 'A node order: state, progress, and (once ready) how to connect',
      request: { params: z.object({ id: Id }) },
      responses: { 200: json(View, 'the order'), 400: json(ErrorBody, 'malformed id'), 404: json(ErrorBody, 'no such order') },
    }),
    async (c) => {
      const id = c.req.valid('param').id;
      const job = await b.refresh(id);
      const invoice = await b.invoice(id);
      if (!job || !invoice) return c.json({ error: 'no such order' }, 404);
      const ready = job.ip !== null;
      return c.json(
        {
          bootstrapJobId: job.id,
          state: job.state,
          progress: job.progress,
          size: job.size,
          region: job.region,
          invoice: invoiceBody(invoice),
          ip: job.ip,
          tailscaleHostname: job.tailscaleHostname,
          sshUser: job.sshUser,
          nodeNpub: job.nodeNpub,
          nextSteps: ready ? nextSteps({ ip: job.ip!, tailscaleHostname: job.tailscaleHostname, sshUser: job.sshUser ?? 'root' }) : [],
          credentialsAvailable: job.secretsEnc !== null && ready,
          errorMessage: job.errorMessage,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/bootstrap/{id}/claim',
      summary: 'The credentials, once (Authorization: Bearer <claimToken>); afterwards 410',
      security: [{ claimToken: [] }],
      request: { params: z.object({ id: Id }) },
      responses: {
        200: json(Claimed, 'the credentials; they are erased on our side now'),
        401: json(ErrorBody, 'missing or wrong claim token'),
        404: json(ErrorBody, 'no such order'),
        409: json(ErrorBody, 'not ready yet'),
        410: json(ErrorBody, 'already claimed or delivered, or erased after the TTL'),
      },
    }),
    async (c) => {
      const token = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
      if (!token) return c.json({ error: 'unauthorized: send Authorization: Bearer <claimToken>' }, 401);
      const r = await b.claim(c.req.valid('param').id, token);
      if (r.status === 'ok') return c.json({ ...r.credentials, sshPrivateKey: r.sshPrivateKey }, 200);
      if (r.status === 'not_found') return c.json({ error: 'no such order' }, 404);
      if (r.status === 'unauthorized') return c.json({ error: 'unauthorized: wrong claim token' }, 401);
      if (r.status === 'not_ready') return c.json({ error: 'the node is not ready yet; poll GET /api/bootstrap/{id}' }, 409);
      return c.json({ error: 'gone: the credentials were already handed over (or erased after the TTL) and are not kept' }, 410);
    },
  );
}
