// Pre-funded sessions over HTTP (SPEC 6/7), and the L402 front door. Credentials: `Authorization: Bearer
// <macaroon>` or `L402 <macaroon>:<preimage>`; every bad one gets 401 and nothing is debited.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { nip19 } from 'nostr-tools';
import type { SessionService, SessionView } from '../core/sessions.ts';
import { Refusal } from '../core/refusal.ts';
import { SESSION_STATES } from '../core/session-machine.ts';
import { l402Challenge, parseAuthorization, type SessionOp } from '../core/macaroons.ts';
import { clientAddress } from './client-address.ts';
import { CostLedger, ErrorBody, httpJob, Invoice, invoiceBody, textRequest } from './schemas.ts';

export interface SessionRoutesDeps {
  sessions: Pick<SessionService, 'create' | 'authorize' | 'refresh' | 'view' | 'topup' | 'run' | 'ledger' | 'close'>;
  maxInputChars: number;
  maxDepositSats: number;
  l402DepositSats: number;
  trustProxy: number; // trusted proxy hops (TRUST_PROXY)
}

const SessionId = z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-character lowercase hex session id');
const Pubkey = z
  .string()
  .transform((v, ctx) => {
    if (/^[0-9a-f]{64}$/.test(v)) return v;
    try {
      const d = nip19.decode(v);
      if (d.type === 'npub') return d.data;
    } catch {
      /* reported below */
    }
    ctx.addIssue({ code: 'custom', message: 'must be a hex pubkey or an npub' });
    return z.NEVER;
  })
  .openapi({ type: 'string', description: 'hex pubkey or npub: its Nostr requests may spend the session' });

const SessionView = z
  .object({
    sessionId: z.string(),
    state: z.enum(SESSION_STATES),
    balanceSats: z.number().int(),
    expiresAt: z.string().openapi({ description: 'ISO 8601: when the session expires if unused (like every expiresAt here)' }),
    pubkey: z.string().nullable(),
  })
  .openapi('Session');
const viewBody = (v: SessionView) => ({ ...v, expiresAt: new Date(v.expiresAt * 1000).toISOString() });
const RunResult = z.object({ result: z.string(), costLedger: CostLedger, balanceSats: z.number().int() }).openapi('SessionResult');
const Insufficient = z.object({ error: z.string(), balanceSats: z.number().int(), neededSats: z.number().int() }).openapi('InsufficientBalance');
const RequestBody = (max: number) => textRequest(max, 'SessionRequest', 'Explain Lightning invoices in two sentences.');
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const errors = {
  400: json(ErrorBody, 'invalid request'),
  401: json(ErrorBody, 'missing, forged, expired or caveat-violating credential'),
  404: json(ErrorBody, 'no such session'),
};
const auth = [{ macaroon: [] }];

export function mountSessionRoutes(app: OpenAPIHono, deps: SessionRoutesDeps): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'macaroon', {
    type: 'http',
    scheme: 'bearer',
    description: 'Bearer <macaroon>, or L402 <macaroon>:<preimage>',
  });
  const s = deps.sessions;

  /** Verifies the credential for the session named in the path; refusals reach the app's one mapping. */
  const authorize = async (c: Context, op: SessionOp, sessionId?: string) => {
    const cred = parseAuthorization(c.req.header('authorization'));
    if (!cred) throw Refusal.of('unauthorized', 'send Authorization: Bearer <macaroon> or L402 <macaroon>:<preimage>');
    return s.authorize(cred.macaroon, { sessionId, op, preimage: cred.scheme === 'l402' ? cred.preimage : undefined });
  };
  const balanceSats = (msats: number) => Math.floor(msats / 1000);
  const failure = (r: { job: { errorMessage: string | null }; debitedMsats: number }) =>
    `${r.job.errorMessage ?? 'failed'}; ${r.debitedMsats > 0 ? `${r.debitedMsats / 1000} sats debited for the input the model read` : 'nothing was debited'}`;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/sessions',
      summary: 'Open a pre-funded session: a deposit invoice and the macaroon that works once it is paid',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: z
                .object({ amountSats: z.number().int().min(1).max(deps.maxDepositSats), pubkey: Pubkey.optional() })
                .openapi('CreateSession', { example: { amountSats: 1000 } }),
            },
          },
        },
      },
      responses: {
        201: json(z.object({ sessionId: z.string(), macaroon: z.string(), depositInvoice: Invoice }).openapi('SessionCreated'), 'created'),
        400: errors[400],
        429: json(ErrorBody, 'too many unpaid sessions from this address'),
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const r = await s.create({ amountSats: body.amountSats, pubkey: body.pubkey ?? null, clientAddress: clientAddress(c, deps.trustProxy), origin: 'http' });
      return c.json({ sessionId: r.sessionId, macaroon: r.macaroon, depositInvoice: invoiceBody(r.invoice) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/sessions/{id}',
      summary: 'A session: state, balance, expiry',
      security: auth,
      request: { params: z.object({ id: SessionId }) },
      responses: { 200: json(SessionView, 'the session'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await authorize(c, 'read', id);
      await s.refresh(id);
      return c.json(viewBody((await s.view(id))!), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/sessions/{id}/topup',
      summary: 'A new invoice that adds to the balance when paid',
      security: auth,
      request: {
        params: z.object({ id: SessionId }),
        body: { required: true, content: { 'application/json': { schema: z.object({ amountSats: z.number().int().min(1).max(deps.maxDepositSats) }).openapi('TopUp') } } },
      },
      responses: { 200: json(z.object({ invoice: Invoice }).openapi('TopUpInvoice'), 'the invoice'), ...errors, 409: json(ErrorBody, 'session closed, or its deposit not paid yet'), 429: json(ErrorBody, 'too many open top-up invoices') },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await authorize(c, 'topup', id);
      const r = await s.topup(id, c.req.valid('json').amountSats);
      return c.json({ invoice: invoiceBody(r.invoice) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/sessions/{id}/request',
      summary: 'Run a request on the session: reserve the estimate, debit the actual cost',
      security: auth,
      request: { params: z.object({ id: SessionId }), body: { required: true, content: { 'application/json': { schema: RequestBody(deps.maxInputChars) } } } },
      responses: {
        200: json(RunResult, 'the answer, its cost and the balance left'),
        ...errors,
        402: json(Insufficient, 'the balance cannot cover the estimate'),
        502: json(ErrorBody, 'the model failed; nothing was debited, or only the input it read when its answer was empty'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const a = await authorize(c, 'request', id);
      const r = await s.run(httpJob(c.req.valid('json'), clientAddress(c, deps.trustProxy)), a.sessionId, a.maxSatsPerRequest);
      if (r.status === 'done') return c.json({ result: r.job.result!, costLedger: r.job.costLedger!, balanceSats: balanceSats(r.balanceMsats) }, 200);
      if (r.status === 'failed') return c.json({ error: failure(r) }, 502);
      return c.json({ error: 'payment required: top up the session', balanceSats: balanceSats(r.balanceMsats), neededSats: Math.ceil(r.neededMsats / 1000) }, 402);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/sessions/{id}/ledger',
      summary: 'Every deposit, top-up, reservation, release and debit; the balance is their sum',
      security: auth,
      request: { params: z.object({ id: SessionId }) },
      responses: {
        200: json(
          z
            .object({
              sessionId: z.string(),
              balanceMsats: z.number().int(),
              entries: z.array(
                z.object({ kind: z.string(), amountMsats: z.number().int(), jobId: z.string().nullable(), paymentHash: z.string().nullable(), createdAt: z.string() }),
              ),
            })
            .openapi('SessionLedger'),
          'the ledger',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await authorize(c, 'read', id);
      const entries = await s.ledger(id);
      return c.json(
        {
          sessionId: id,
          balanceMsats: entries.reduce((sum, e) => sum + e.amountMsats, 0),
          entries: entries.map((e) => ({ kind: e.kind, amountMsats: e.amountMsats, jobId: e.jobId, paymentHash: e.paymentHash, createdAt: new Date(e.createdAt).toISOString() })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/sessions/{id}',
      summary: 'Close the session (a bound pubkey gets the balance as credit)',
      security: auth,
      request: { params: z.object({ id: SessionId }) },
      responses: { 200: json(SessionView, 'closed'), ...errors, 409: json(ErrorBody, 'cannot be closed in this state') },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await authorize(c, 'close', id);
      return c.json(viewBody(await s.close(id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/l402/request',
      summary: 'L402 front door: 402 with a macaroon + invoice, then requests debited from that session',
      request: { body: { required: true, content: { 'application/json': { schema: RequestBody(deps.maxInputChars) } } } },
      responses: {
        200: json(RunResult, 'the answer'),
        400: errors[400],
        401: errors[401],
        402: json(
          z.object({ error: z.string(), macaroon: z.string(), invoice: Invoice }).openapi('L402Challenge'),
          'pay the invoice, then retry with Authorization: L402 <macaroon>:<preimage> (also in WWW-Authenticate)',
        ),
        429: json(ErrorBody, 'too many unpaid front-door sessions from this address'),
        502: json(ErrorBody, 'the model failed; nothing was debited, or only the input it read when its answer was empty'),
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const challenge = (macaroon: string, inv: Parameters<typeof invoiceBody>[0], error: string) => {
        for (const v of l402Challenge(macaroon, inv.bolt11)) c.header('WWW-Authenticate', v, { append: true });
        return c.json({ error, macaroon, invoice: invoiceBody(inv) }, 402);
      };
      if (!c.req.header('authorization')) {
        const r = await s.create({ amountSats: deps.l402DepositSats, clientAddress: clientAddress(c, deps.trustProxy), origin: 'l402' });
        return challenge(r.macaroon, r.invoice, `payment required: pay ${deps.l402DepositSats} sats to open a session`);
      }
      const a = await authorize(c, 'request');
      const r = await s.run(httpJob(body, clientAddress(c, deps.trustProxy)), a.sessionId, a.maxSatsPerRequest);
      if (r.status === 'insufficient') {
        const top = await s.topup(a.sessionId, Math.max(deps.l402DepositSats, Math.ceil(r.neededMsats / 1000)), { reuseOpen: true });
        return challenge(top.macaroon, top.invoice, 'payment required: the session balance is spent; pay to top it up');
      }
      if (r.status === 'done') return c.json({ result: r.job.result!, costLedger: r.job.costLedger!, balanceSats: balanceSats(r.balanceMsats) }, 200);
      return c.json({ error: failure(r) }, 502);
    },
  );
}
