// Shared zod schemas of the HTTP API: one source for validation and the OpenAPI document.
import { randomBytes } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import type { BookInvoice, NewJob } from '../core/types.ts';

/** Formats zod issues as `path: message` lines for 400 answers. */
export function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(body)'}: ${i.message}`).join('; ');
}

export const ErrorBody = z.object({ error: z.string() }).openapi('Error');

/** The one invoice shape everywhere (SPEC 7). */
export const Invoice = z
  .object({
    paymentRequest: z.string().openapi({ description: 'BOLT11 invoice' }),
    paymentHash: z.string().openapi({ description: 'hex' }),
    amountSats: z.number().int(),
    expiresAt: z.string().openapi({ description: 'ISO 8601 time after which the invoice cannot be paid' }),
  })
  .openapi('Invoice');
export type InvoiceBody = z.infer<typeof Invoice>;

export function invoiceBody(inv: Pick<BookInvoice, 'bolt11' | 'paymentHash' | 'amountMsats' | 'expiresAt'>): InvoiceBody {
  return {
    paymentRequest: inv.bolt11,
    paymentHash: inv.paymentHash,
    amountSats: Math.ceil(inv.amountMsats / 1000),
    expiresAt: new Date(inv.expiresAt * 1000).toISOString(),
  };
}

export const PricingBreakdown = z
  .object({
    model: z.string(),
    estimatedInputTokens: z.number().int(),
    estimatedOutputTokens: z.number().int(),
    inferenceUsd: z.number(),
    infraUsd: z.number(),
    marginPct: z.number(),
    totalUsd: z.number(),
    btcPriceUsd: z.number(),
    amountSats: z.number().int(),
  })
  .openapi('PricingBreakdown');

export const CostLedger = z
  .object({
    model: z.string(),
    actualInputTokens: z.number().int(),
    actualOutputTokens: z.number().int(),
    actualCostUsd: z.number(),
    chargedSats: z.number().int(),
  })
  .openapi('CostLedger');

export const JobId = z.string().regex(/^[0-9a-f]{32}$|^[0-9a-f]{64}$/, 'must be a 32- or 64-character lowercase hex job id');

/** The text-job body shared by POST /api/jobs, the session request and the L402 front door. */
export function textRequest(maxInputChars: number, name: string, example: string) {
  return z
    .object({
      request: z.string().trim().min(1, 'must not be empty').max(maxInputChars, `must be at most ${maxInputChars} characters`),
      maxTokens: z.number().int().positive().optional().openapi({ description: 'advisory: lowers the output estimate' }),
    })
    .openapi(name, { example: { request: example } });
}

/** An HTTP text job: a random 128-bit id, no pubkey, the caller's address for the per-client caps. */
export function httpJob(body: { request: string; maxTokens?: number }, clientAddress: string): NewJob {
  return {
    id: randomBytes(16).toString('hex'),
    kind: 5050,
    source: 'http',
    customerPubkey: null,
    clientAddress,
    requestJson: null,
    encryption: 'none',
    input: body.request,
    params: body.maxTokens ? { maxTokens: body.maxTokens } : {},
    relays: [],
    bidMsats: null,
    requestCreatedAt: Math.floor(Date.now() / 1000),
    expiresAt: null,
  };
}
