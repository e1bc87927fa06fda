// HTTP jobs: the same core jobs as Nostr ones (they publish nothing to relays).
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { JobService } from '../core/jobs.ts';
import type { InvoiceBook } from '../core/book.ts';
import type { Job } from '../core/types.ts';
import { JOB_STATES } from '../core/job-machine.ts';
import { clientAddress } from './client-address.ts';
import { CostLedger, ErrorBody, httpJob, Invoice, invoiceBody, JobId, PricingBreakdown, textRequest } from './schemas.ts';

export interface JobRoutesDeps {
  jobs: Pick<JobService, 'submit' | 'refresh'>;
  book: Pick<InvoiceBook, 'get'>;
  maxInputChars: number;
  trustProxy: number; // trusted proxy hops (TRUST_PROXY)
}

const JobView = z
  .object({
    jobId: z.string(),
    state: z.enum(JOB_STATES),
    createdAt: z.string(),
    evalInvoice: Invoice.optional(),
    workInvoice: Invoice.optional(),
    reason: z.string().optional().openapi({ description: "the evaluation's verdict" }),
    pricingBreakdown: PricingBreakdown.optional(),
    result: z.string().optional(),
    costLedger: CostLedger.optional(),
    errorMessage: z.string().optional(),
  })
  .openapi('Job');

const PRIVATE = 'encrypted request: delivered to its author over Nostr only';

export function mountJobRoutes(app: OpenAPIHono, deps: JobRoutesDeps): void {
  const view = async (job: Job): Promise<z.infer<typeof JobView>> => {
    const evalInv = await deps.book.get(job.evalPaymentHash);
    const workInv = await deps.book.get(job.workPaymentHash);
    return {
      jobId: job.id,
      state: job.state,
      createdAt: new Date(job.createdAt).toISOString(),
      ...(evalInv ? { evalInvoice: invoiceBody(evalInv) } : {}),
      ...(workInv ? { workInvoice: invoiceBody(workInv) } : {}),
      // An encrypted Nostr job's id is public (the event id) but its words are not: never shown here.
      ...(job.reason ? { reason: job.encryption === 'none' ? job.reason : PRIVATE } : {}),
      // Its pricing and cost ledger tell the size of the words: shown only for requests in the clear.
      ...(job.pricing && job.encryption === 'none' ? { pricingBreakdown: job.pricing } : {}),
      ...(job.state === 'complete' && job.result !== null ? { result: job.encryption === 'none' ? job.result : PRIVATE } : {}),
      ...(job.state === 'complete' && job.costLedger && job.encryption === 'none' ? { costLedger: job.costLedger } : {}),
      ...(job.errorMessage ? { errorMessage: job.encryption === 'none' ? job.errorMessage : PRIVATE } : {}),
    };
  };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/jobs',
      summary: 'Create a paid text job; answers the evaluation invoice',
      request: {
        body: {
          required: true,
          content: {
            'application/json': { schema: textRequest(deps.maxInputChars, 'CreateJob', 'Explain Lightning invoices in two sentences.') },
          },
        },
      },
      responses: {
        201: {
          description: 'created',
          content: { 'application/json': { schema: z.object({ jobId: z.string(), evalInvoice: Invoice.nullable() }).openapi('JobCreated') } },
        },
        400: { description: 'invalid request', content: { 'application/json': { schema: ErrorBody } } },
        429: { description: 'too many unpaid invoices open', content: { 'application/json': { schema: ErrorBody } } },
        503: { description: 'payment backend unavailable', content: { 'application/json': { schema: ErrorBody } } },
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const req = httpJob(body, clientAddress(c, deps.trustProxy));
      const outcome = await deps.jobs.submit(req);
      if (outcome.status === 'refused') throw outcome.refusal; // answered by the app's one refusal mapping
      if (outcome.status !== 'created') return c.json({ error: 'unavailable: shutting down, try again shortly' }, 503);
      return c.json({ jobId: outcome.job.id, evalInvoice: outcome.invoice ? invoiceBody(outcome.invoice) : null }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/jobs/{id}',
      summary: 'A job: state, invoices, quote, result and cost ledger',
      request: { params: z.object({ id: JobId }) },
      responses: {
        200: { description: 'the job', content: { 'application/json': { schema: JobView } } },
        400: { description: 'malformed id', content: { 'application/json': { schema: ErrorBody } } },
        404: { description: 'no such job', content: { 'application/json': { schema: ErrorBody } } },
      },
    }),
    async (c) => {
      const job = await deps.jobs.refresh(c.req.valid('param').id);
      if (!job) return c.json({ error: 'no such job' }, 404);
      return c.json(await view(job), 200);
    },
  );
}
