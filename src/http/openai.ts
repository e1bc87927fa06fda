// The OpenAI-compatible API on pre-funded sessions: GET /v1/models and POST /v1/chat/completions (plain and
// streamed as server-sent events), in OpenAI's shapes, so an OpenAI client needs only a base URL and a
// session macaroon as its API key. Each completion is a normal session job (source http): reserved, worked,
// debited its actual cost. Errors are OpenAI's `{error: {message, type, param, code}}`.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { SessionService } from '../core/sessions.ts';
import { Refusal } from '../core/refusal.ts';
import { l402Challenge, parseAuthorization } from '../core/macaroons.ts';
import type { ChatTurn, StreamHooks, WorkPrompt } from '../core/ports.ts';
import type { Job, NewBookInvoice } from '../core/types.ts';
import type { ModelPrices } from '../pricing/pricing.ts';
import { REFUSAL_STATUS } from './errors.ts';
import { clientAddress } from './client-address.ts';
import { CostLedger, describeIssues, httpJob, Invoice, invoiceBody } from './schemas.ts';

export interface OpenAiRoutesDeps {
  sessions: Pick<SessionService, 'create' | 'authorize' | 'open' | 'outcome' | 'challenge' | 'view'>;
  /** The model Timmy serves (WORK_MODEL) and its prices at the current BTC price. */
  model: string;
  prices: () => Promise<ModelPrices>;
  maxInputChars: number;
  l402DepositSats: number;
  trustProxy: number; // trusted proxy hops (TRUST_PROXY)
}

/** The header that carries what a completion cost, in sats. */
export const COST_HEADER = 'x-timmy-cost-sats';

// --- OpenAI's error shape ---

const OPENAI_ERROR_KIND: Readonly<Record<number, { type: string; code: string | null }>> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'invalid_request_error', code: 'invalid_api_key' },
  402: { type: 'insufficient_quota', code: 'payment_required' },
  404: { type: 'invalid_request_error', code: 'not_found' },
  409: { type: 'invalid_request_error', code: 'conflict' },
  410: { type: 'invalid_request_error', code: 'gone' },
  413: { type: 'invalid_request_error', code: 'request_too_large' },
  415: { type: 'invalid_request_error', code: 'unsupported_media_type' },
  429: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  503: { type: 'server_error', code: 'service_unavailable' },
};

export const OpenAiError = z
  .object({
    error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }),
  })
  .openapi('OpenAIError');

export function openAiErrorBody(status: number, message: string, code?: string | null, param: string | null = null) {
  const kind = OPENAI_ERROR_KIND[status] ?? { type: 'server_error', code: null };
  return { error: { message, type: kind.type, param, code: code === undefined ? kind.code : code } };
}

export function openAiError(c: Context, status: ContentfulStatusCode, message: string, code?: string | null, param: string | null = null): Response {
  return c.json(openAiErrorBody(status, message, code, param), status);
}

/** A core refusal in OpenAI's shape, with the status the rest of the API gives it. */
export function openAiRefusal(c: Context, r: Refusal): Response {
  return openAiError(c, REFUSAL_STATUS[r.code], r.message);
}

// --- schemas ---

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const Message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(TextPart)]).nullable(),
  name: z.string().optional(),
});
const ChatRequest = z
  .looseObject({
    model: z.string().min(1),
    messages: z.array(Message).min(1, 'at least one message is required'),
    max_tokens: z.number().int().positive().nullable().optional().openapi({ description: 'lowers the reservation (and the answer budget); never raises it above the tier' }),
    max_completion_tokens: z.number().int().positive().nullable().optional().openapi({ description: 'the newer name of max_tokens' }),
    temperature: z.number().min(0).max(2).nullable().optional().openapi({ description: 'accepted; not passed on (the Anthropic API version in use takes no sampling parameters)' }),
    stream: z.boolean().nullable().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    n: z.number().int().min(1).max(1).nullable().optional().openapi({ description: 'only 1' }),
  })
  .openapi('ChatCompletionRequest', { example: { model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'Explain Lightning invoices in two sentences.' }] } });
type ChatRequest = z.infer<typeof ChatRequest>;

const Usage = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }).openapi('ChatUsage');
const TimmyCharge = z
  .object({
    jobId: z.string(),
    costSats: z.number().int().openapi({ description: 'debited from the session for this completion (also in the x-timmy-cost-sats header)' }),
    balanceSats: z.number().int(),
    costLedger: CostLedger,
  })
  .openapi('TimmyCharge');
const ChatCompletion = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.string().nullable() }),
        finish_reason: z.enum(['stop', 'length']),
        logprobs: z.object({}).nullable(),
      }),
    ),
    usage: Usage,
    timmy: TimmyCharge,
  })
  .openapi('ChatCompletion');
const ModelPricesBody = z
  .object({
    inputSatsPerMtok: z.number().int(),
    outputSatsPerMtok: z.number().int(),
    requestSats: z.number().int().openapi({ description: 'flat part of every request (infrastructure share)' }),
    inputUsdPerMtok: z.number(),
    outputUsdPerMtok: z.number(),
    requestUsd: z.number(),
    btcPriceUsd: z.number(),
  })
  .openapi('ModelPrices', { description: 'what Timmy charges, margin included, at the current BTC price' });
const ModelList = z
  .object({
    object: z.literal('list'),
    data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string(), timmy: ModelPricesBody })),
  })
  .openapi('ModelList');
const L402Required = z
  .object({ error: OpenAiError.shape.error, macaroon: z.string(), invoice: Invoice })
  .openapi('OpenAIPaymentRequired');

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const errorJson = (description: string) => json(OpenAiError, description);

// --- conversation ---

/** The conversation for the work model: system and developer turns become its system prompt; the rest alternate from the user's. */
export function toPrompt(messages: ChatRequest['messages'], maxInputChars: number): { prompt: WorkPrompt; lastUser: string } | { error: string; param: string } {
  const system: string[] = [];
  const turns: ChatTurn[] = [];
  let chars = 0;
  for (const [i, m] of messages.entries()) {
    const text = m.content === null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('');
    chars += text.length;
    if (m.role === 'system' || m.role === 'developer') {
      if (text.trim()) system.push(text);
      continue;
    }
    if (!text.trim()) {
      if (m.role === 'user') return { error: `messages.${i}.content: must not be empty`, param: `messages.${i}.content` };
      continue; // an empty assistant turn adds nothing
    }
    const last = turns.at(-1);
    if (last?.role === m.role) last.content += `\n\n${text}`; // consecutive turns of one role are one turn
    else turns.push({ role: m.role, content: text });
  }
  if (chars > maxInputChars) return { error: `messages: ${chars} characters in all, the limit is ${maxInputChars}`, param: 'messages' };
  if (turns[0]?.role !== 'user') return { error: 'messages: the first message after the system messages must be from the user', param: 'messages' };
  const lastUser = turns.filter((t) => t.role === 'user').at(-1)!.content;
  return { prompt: { ...(system.length ? { system: system.join('\n\n') } : {}), turns }, lastUser };
}

/** Text from the work step, handed to the SSE writer as it comes. */
class LiveText {
  private pending: string[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  readonly stop = new AbortController();
  readonly hooks: StreamHooks = {
    onText: (delta) => {
      this.pending.push(delta);
      this.wake?.();
    },
    signal: this.stop.signal,
  };

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *texts(): AsyncGenerator<string> {
    for (;;) {
      if (this.pending.length > 0) yield this.pending.splice(0).join('');
      else if (this.ended) return;
      else await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }
}

// --- routes ---

export function mountOpenAiRoutes(app: OpenAPIHono, deps: OpenAiRoutesDeps): void {
  const s = deps.sessions;
  const sats = (msats: number) => Math.ceil(msats / 1000);

  /** 402 with an L402 challenge: a macaroon and the invoice that makes it work (also in WWW-Authenticate). */
  const paymentRequired = (c: Context, ch: { macaroon: string; invoice: NewBookInvoice }, message: string) => {
    for (const v of l402Challenge(ch.macaroon, ch.invoice.bolt11)) c.header('WWW-Authenticate', v, { append: true });
    return c.json({ ...openAiErrorBody(402, message), macaroon: ch.macaroon, invoice: invoiceBody(ch.invoice) }, 402);
  };

  /** The charge of a finished completion, for the body (`timmy`) and the header. */
  const charge = (job: Job, balanceMsats: number) => ({
    jobId: job.id,
    costSats: job.costLedger!.chargedSats,
    balanceSats: Math.floor(balanceMsats / 1000),
    costLedger: job.costLedger!,
  });
  const usageOf = (job: Job) => {
    const l = job.costLedger!;
    return { prompt_tokens: l.actualInputTokens, completion_tokens: l.actualOutputTokens, total_tokens: l.actualInputTokens + l.actualOutputTokens };
  };
  // The answer stopped at its token budget (the reservation's output estimate).
  const finishReason = (job: Job): 'stop' | 'length' => (job.pricing && job.costLedger!.actualOutputTokens >= job.pricing.estimatedOutputTokens ? 'length' : 'stop');
  const failure = (r: { job: Job; debitedMsats: number }) =>
    `${r.job.errorMessage ?? 'failed'}; ${r.debitedMsats > 0 ? `${r.debitedMsats / 1000} sats debited for the input the model read` : 'nothing was debited'}`;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/models',
      summary: 'OpenAI-compatible: the models Timmy serves, with their prices in sats (and USD) per million tokens',
      responses: { 200: json(ModelList, 'the models') },
    }),
    async (c) => {
      const p = await deps.prices();
      const { model: _model, ...prices } = p;
      return c.json({ object: 'list' as const, data: [{ id: deps.model, object: 'model' as const, created: 0, owned_by: 'timmy', timmy: prices }] }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/chat/completions',
      summary: 'OpenAI-compatible chat completion on a pre-funded session (Bearer <macaroon>, or L402/LSAT); stream: true answers with server-sent events',
      security: [{ macaroon: [] }],
      request: { body: { required: true, content: { 'application/json': { schema: ChatRequest } } } },
      responses: {
        200: {
          description: 'the completion (the charge in x-timmy-cost-sats and `timmy`); with stream: true, chat.completion.chunk events, the last with usage and `timmy`, then data: [DONE]',
          headers: { [COST_HEADER]: { schema: { type: 'integer' }, description: 'sats debited for this completion (non-streamed answers)' } },
          content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: z.string() } },
        },
        400: errorJson('invalid request'),
        401: errorJson('missing, forged, expired or caveat-violating credential'),
        402: json(L402Required, 'no credential, an unpaid deposit or a balance that cannot cover the request: pay the invoice, then send Authorization: L402 <macaroon>:<preimage> (also in WWW-Authenticate)'),
        404: errorJson('the model is not one Timmy serves (code model_not_found)'),
        429: errorJson('too many unpaid sessions from this address'),
        503: errorJson('the model failed or is unavailable; nothing was debited, or only the input it read when its answer was empty'),
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      if (body.model !== deps.model) return openAiError(c, 404, `The model \`${body.model}\` does not exist or is not served here; GET /v1/models lists ${deps.model}`, 'model_not_found', 'model');
      const conv = toPrompt(body.messages, deps.maxInputChars);
      if ('error' in conv) return openAiError(c, 400, conv.error, null, conv.param);
      const address = clientAddress(c, deps.trustProxy);
      const header = c.req.header('authorization');
      if (!header) {
        const r = await s.create({ amountSats: deps.l402DepositSats, clientAddress: address, origin: 'l402' });
        return paymentRequired(c, r, `payment required: pay ${deps.l402DepositSats} sats to open a session, then send Authorization: L402 <macaroon>:<preimage>`);
      }
      const cred = parseAuthorization(header);
      if (!cred) throw Refusal.of('unauthorized', 'send your session macaroon as the API key (Authorization: Bearer <macaroon>), or L402 <macaroon>:<preimage>');
      const a = await s.authorize(cred.macaroon, { op: 'request', preimage: cred.scheme === 'l402' ? cred.preimage : undefined });
      if ((await s.view(a.sessionId))?.state === 'awaiting_deposit') {
        return paymentRequired(c, await s.challenge(a.sessionId, deps.l402DepositSats), 'payment required: the session deposit is not paid yet');
      }
      const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
      const job = httpJob({ request: conv.lastUser, maxTokens }, address);
      job.params.chat = conv.prompt;
      const live = body.stream ? new LiveText() : undefined;
      const opened = await s.open(job, a.sessionId, a.maxSatsPerRequest, live?.hooks);
      if (opened.status === 'insufficient') {
        const ch = await s.challenge(a.sessionId, Math.max(deps.l402DepositSats, sats(opened.neededMsats)));
        return paymentRequired(c, ch, `payment required: the session balance is ${Math.floor(opened.balanceMsats / 1000)} sats, this request needs up to ${sats(opened.neededMsats)}; pay the invoice to top it up`);
      }
      const id = `chatcmpl-${job.id}`;
      const created = Math.floor(Date.now() / 1000);

      if (!live) {
        const r = await s.outcome(job.id, a.sessionId);
        if (r.status === 'failed') return openAiError(c, 503, failure(r), 'model_error');
        const done = r.job;
        c.header(COST_HEADER, String(done.costLedger!.chargedSats));
        return c.json(
          {
            id,
            object: 'chat.completion' as const,
            created,
            model: done.costLedger!.model,
            choices: [{ index: 0, message: { role: 'assistant' as const, content: done.result!, refusal: null }, finish_reason: finishReason(done), logprobs: null }],
            usage: usageOf(done),
            timmy: charge(done, r.balanceMsats),
          },
          200,
        );
      }

      const outcome = s.outcome(job.id, a.sessionId).finally(() => live.end());
      c.req.raw.signal.addEventListener('abort', () => live.stop.abort(), { once: true });
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => live.stop.abort());
        const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
          stream.writeSSE({ data: JSON.stringify({ id, object: 'chat.completion.chunk', created, model: deps.model, choices, ...extra }) });
        await chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
        for await (const text of live.texts()) {
          if (!stream.aborted) await chunk([{ index: 0, delta: { content: text }, finish_reason: null }]);
        }
        const r = await outcome;
        if (stream.aborted) return;
        if (r.status === 'failed') {
          await stream.writeSSE({ data: JSON.stringify(openAiErrorBody(503, failure(r), 'model_error')) });
          return;
        }
        await chunk([{ index: 0, delta: {}, finish_reason: finishReason(r.job) }]);
        // OpenAI's usage chunk (stream_options.include_usage), always sent: the charge travels with it.
        await chunk([], { usage: usageOf(r.job), timmy: charge(r.job, r.balanceMsats) });
        await stream.writeSSE({ data: '[DONE]' });
      });
    },
    (result, c) => {
      if (!result.success) return openAiError(c, 400, `invalid request: ${describeIssues(result.error.issues)}`, null, result.error.issues[0]?.path.map(String).join('.') || null);
    },
  );
}
