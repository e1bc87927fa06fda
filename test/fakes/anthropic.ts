// A local fake of the Anthropic Messages API (POST /v1/messages, POST /v1/messages/count_tokens, GET
// /v1/models) on 127.0.0.1, faithful to the wire format:
// the same headers required, the same error bodies ({"type":"error","error":{type,message},"request_id"}),
// the same response shape, and token accounting that never exceeds max_tokens. `stream: true` answers
// with the API's server-sent events (event + data lines): message_start (input usage), content_block_start,
// ping, content_block_delta (text_delta) at a settable pace, content_block_stop, message_delta (stop_reason,
// cumulative output_tokens), message_stop. Tests script failures, hangs and answers, hold a stream to
// exercise a caller that goes away, and read back every request it received.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const FAKE_API_KEY = 'sk-ant-api03-fake-test-key-do-not-leak-0123456789';

/** The version the 1.x SDK pins; from it on, sampling parameters are rejected (API versioning docs). */
const VERSION_WITHOUT_SAMPLING = '2026-10-21';

/** Largest request body accepted, bytes (the real API allows 32 MB; tests never need more than this). */
const MAX_BODY_BYTES = 1024 * 1024;

export interface RecordedRequest {
  /** Which credential header carried the key: the 1.x SDK sends `Authorization: Bearer`, raw callers `x-api-key`. */
  auth: 'x-api-key' | 'bearer' | 'none';
  anthropicVersion: string | undefined;
  /** `x-stainless-retry-count` as sent by the SDK: 0 on the first attempt. */
  retryCount: number | undefined;
  /** Parsed JSON body, or undefined when it was not JSON. */
  body: Record<string, unknown> | undefined;
  model: unknown;
  maxTokens: unknown;
  /** The system prompt as plain text (string or text blocks joined). */
  system: string;
  /** Text of the user turns, joined. */
  userText: string;
  /** Text of every turn (user and assistant), joined: what input tokens are counted on, with the system prompt. */
  turnsText: string;
  /** HTTP status the fake answered with; undefined while hanging. */
  status: number | undefined;
  /** Streamed answers: text deltas sent, and whether the client closed the connection before message_stop. */
  stream?: { deltas: number; textSent: string; closedEarly: boolean; done: boolean };
}

/** How fast a streamed answer comes: `chunkChars` of text per content_block_delta, `delayMs` between deltas. */
export interface StreamPace {
  chunkChars: number;
  delayMs: number;
}

export interface FailureOptions {
  /** Extra response headers, e.g. `{ 'retry-after': '1' }` or `{ 'retry-after-ms': '10' }`. */
  headers?: Record<string, string>;
}

export type Responder = (req: RecordedRequest) => string;

export interface FakeAnthropic {
  /** Base URL for the SDK's `baseURL` (the SDK appends /v1/messages). */
  url: string;
  /** The one key the fake accepts. */
  apiKey: string;
  /** Every POST /v1/messages in arrival order, failed and hanging ones included. */
  requests: RecordedRequest[];
  /** Every POST /v1/messages/count_tokens in arrival order. */
  counts: RecordedRequest[];
  /** Answer the next `times` token counts with this error. */
  failNextCount(status: number, errorType: string, message: string, times?: number): void;
  /** Answer the next `times` authenticated, valid requests with this error (Infinity: until reset()). */
  failNext(status: number, errorType: string, message: string, times?: number, opts?: FailureOptions): void;
  /** Use `text` as the model's answer for the next `times` successful requests (before truncation). */
  replyNext(text: string, times?: number): void;
  /** Replace the default answer logic (verdicts for eval prompts, an echo otherwise). */
  setResponder(fn: Responder | undefined): void;
  /** While on, requests are recorded and never answered (to exercise client timeouts). */
  hang(on?: boolean): void;
  /** The pace of streamed answers (default 16 characters per delta, no delay). */
  setStreamPace(pace: Partial<StreamPace>): void;
  /** Streams stop after `deltas` text deltas and wait (connection open) until the client leaves; null: off. */
  holdStreamsAfter(deltas: number | null): void;
  /** Drop scripted failures, replies, hang mode, the responder and the request log. */
  reset(): void;
  close(): Promise<void>;
}

/** Prompts the default responder rejects, like a careful eval model would. */
const HARMFUL = /\b(ransomware|malware|keylogger|make a bomb|steal (?:passwords|credentials|bitcoin)|credit card dump)\b/i;

/**
 * The fake's tokenizer: ~4 ASCII characters per token, one token per other code point (as real tokenizers
 * do for CJK text); never 0 for non-empty text. Usage and count_tokens both use it, so they agree as on the
 * real API.
 */
export function fakeTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const ch of text) {
    if (ch.charCodeAt(0) < 0x80) ascii++;
    else other++;
  }
  return Math.ceil(ascii / 4) + other;
}

/** The longest prefix of `text` within `maxTokens` of the fake's tokenizer (a model stopping at max_tokens). */
function truncateToTokens(text: string, maxTokens: number): string {
  let out = '';
  for (const ch of text) {
    if (fakeTokens(out + ch) > maxTokens) break;
    out += ch;
  }
  return out;
}

/** The default model behaviour: a JSON verdict when asked for one, else a deterministic echo. */
export const defaultResponder: Responder = (req) => {
  if (req.system.includes('"accept"')) {
    const bad = HARMFUL.exec(req.userText);
    return bad
      ? JSON.stringify({ accept: false, reason: `The request asks for ${bad[0].toLowerCase()}, which is illegal and harmful.` })
      : JSON.stringify({ accept: true, reason: 'An ordinary, harmless text request.' });
  }
  return `Fake answer from ${String(req.model)}: you asked "${req.userText}".`;
};

interface Failure {
  status: number;
  type: string;
  message: string;
  left: number;
  headers: Record<string, string>;
}

export async function startFakeAnthropic(opts: { apiKey?: string } = {}): Promise<FakeAnthropic> {
  const apiKey = opts.apiKey ?? FAKE_API_KEY;
  const requests: RecordedRequest[] = [];
  const counts: RecordedRequest[] = [];
  const countFailures: Failure[] = [];
  const failures: Failure[] = [];
  const replies: { text: string; left: number }[] = [];
  const hanging = new Set<ServerResponse>();
  let hangMode = false;
  let responder: Responder = defaultResponder;
  let pace: StreamPace = { chunkChars: 16, delayMs: 0 };
  let holdAfter: number | null = null;

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendError(res, 500, 'api_error', 'Internal server error');
      else res.destroy();
    });
  });

  /**
   * What the real API does before it looks at a request's body: authentication first, then the version
   * header and the size; and the fake's scripted hang and failures. True when the request was answered (or
   * is held unanswered).
   */
  function answeredBefore(
    req: IncomingMessage,
    res: ServerResponse,
    rec: RecordedRequest,
    raw: Buffer | undefined,
    scripted: Failure[],
    fail: (status: number, type: string, message: string, headers?: Record<string, string>) => void,
  ): boolean {
    const refuse = (status: number, type: string, message: string) => (fail(status, type, message), true);
    if (rec.auth === 'none') return refuse(401, 'authentication_error', 'x-api-key header is required');
    if (credential(req) !== apiKey) return refuse(401, 'authentication_error', 'invalid x-api-key');
    if (!rec.anthropicVersion) return refuse(400, 'invalid_request_error', 'anthropic-version: header is required');
    if (raw === undefined) return refuse(413, 'request_too_large', 'Request exceeds the maximum allowed number of bytes.');
    if (hangMode) {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return true;
    }
    const failure = scripted[0];
    if (!failure) return false;
    if (--failure.left <= 0) scripted.shift();
    fail(failure.status, failure.type, failure.message, failure.headers);
    return true;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/v1/models' && req.method === 'GET') {
      // The Models API: a page of models, for the key only (what the daemon's health check asks).
      await readBody(req);
      if (hangMode) return; // as /v1/messages: the connection stays open, unanswered
      const key = credential(req);
      if (key !== apiKey) return sendError(res, 401, 'authentication_error', 'invalid x-api-key');
      const model = { type: 'model', id: 'claude-sonnet-4-6', display_name: 'Claude Sonnet 4.6', created_at: '2026-01-01T00:00:00Z' };
      return send(res, 200, { data: [model], has_more: false, first_id: model.id, last_id: model.id });
    }
    if (path === '/v1/messages/count_tokens') return countTokens(req, res);
    if (path !== '/v1/messages') {
      await readBody(req);
      return sendError(res, 404, 'not_found_error', `Not found: ${req.method} ${path}`);
    }
    if (req.method !== 'POST') return sendError(res, 405, 'invalid_request_error', `Method ${req.method} not allowed`);

    const raw = await readBody(req);
    let body: Record<string, unknown> | undefined;
    if (raw !== undefined) {
      try {
        const parsed: unknown = JSON.parse(raw.toString('utf8'));
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
      } catch {
        body = undefined;
      }
    }
    const rec = record(req, body);
    requests.push(rec);
    const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      send(res, status, payload, headers);
    };
    const fail = (status: number, type: string, message: string, headers: Record<string, string> = {}) =>
      reply(status, errorBody(type, message), headers);

    if (answeredBefore(req, res, rec, raw, failures, fail)) return;

    const invalid = validate(body, rec.anthropicVersion);
    if (invalid) return fail(400, 'invalid_request_error', invalid);
    const b = body as Record<string, unknown>;
    const maxTokens = b.max_tokens as number;

    const scripted = replies[0];
    let text: string;
    if (scripted) {
      text = scripted.text;
      if (--scripted.left <= 0) replies.shift();
    } else {
      text = responder(rec);
    }
    // A model stops at max_tokens mid-answer; cutting at 4 chars/token keeps output_tokens <= max_tokens.
    let stopReason: 'end_turn' | 'max_tokens' = 'end_turn';
    if (fakeTokens(text) > maxTokens) {
      text = truncateToTokens(text, maxTokens);
      stopReason = 'max_tokens';
    }
    const inputTokens = Math.max(1, fakeTokens(rec.system) + fakeTokens(rec.turnsText));
    if (b.stream === true) {
      rec.status = 200;
      return streamAnswer(res, rec, b.model as string, text, stopReason, inputTokens);
    }
    reply(200, {
      id: `msg_${randomBytes(12).toString('hex')}`,
      type: 'message',
      role: 'assistant',
      model: b.model,
      content: [{ type: 'text', text }],
      stop_reason: stopReason,
      stop_sequence: null,
      usage: {
        input_tokens: inputTokens,
        output_tokens: fakeTokens(text),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        service_tier: 'standard',
      },
    });
  }

  /** The answer as the API streams it (text/event-stream), at the set pace; stops when the client leaves. */
  async function streamAnswer(res: ServerResponse, rec: RecordedRequest, model: string, text: string, stopReason: string, inputTokens: number): Promise<void> {
    const st = { deltas: 0, textSent: '', closedEarly: false, done: false };
    rec.stream = st;
    let closed = false;
    const gone = new Promise<void>((r) =>
      res.on('close', () => {
        closed = true;
        if (!st.done) st.closedEarly = true;
        r();
      }),
    );
    hanging.add(res);
    res.on('close', () => hanging.delete(res));
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': requestId() });
    const event = (type: string, data: unknown) => {
      if (!closed) res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const pause = () => (pace.delayMs > 0 ? new Promise<void>((r) => setTimeout(r, pace.delayMs)) : new Promise<void>((r) => setImmediate(r)));
    event('message_start', {
      type: 'message_start',
      message: {
        id: `msg_${randomBytes(12).toString('hex')}`,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, service_tier: 'standard' },
      },
    });
    event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    event('ping', { type: 'ping' });
    const chars = [...text];
    for (let i = 0; i < chars.length && !closed; i += pace.chunkChars) {
      if (holdAfter !== null && st.deltas >= holdAfter) {
        await gone; // held: the client has to leave
        return;
      }
      await pause();
      const piece = chars.slice(i, i + pace.chunkChars).join('');
      event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } });
      if (closed) return;
      st.deltas++;
      st.textSent += piece;
    }
    if (closed) return;
    event('content_block_stop', { type: 'content_block_stop', index: 0 });
    event('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: fakeTokens(text) } });
    event('message_stop', { type: 'message_stop' });
    st.done = true;
    res.end();
  }

  /** POST /v1/messages/count_tokens: the body of a Messages request without max_tokens -> {input_tokens}. */
  async function countTokens(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') {
      await readBody(req);
      return sendError(res, 405, 'invalid_request_error', `Method ${req.method} not allowed`);
    }
    const raw = await readBody(req);
    let body: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = raw === undefined ? undefined : JSON.parse(raw.toString('utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    const rec = record(req, body);
    counts.push(rec);
    const fail = (status: number, type: string, message: string, headers: Record<string, string> = {}) => {
      rec.status = status;
      send(res, status, errorBody(type, message), headers);
    };
    if (answeredBefore(req, res, rec, raw, countFailures, fail)) return;
    // The same checks as a Messages request, except that max_tokens is not part of a count.
    if (body && 'max_tokens' in body) return fail(400, 'invalid_request_error', 'max_tokens: Extra inputs are not permitted');
    const invalid = validate(body && { ...body, max_tokens: 1 }, rec.anthropicVersion);
    if (invalid) return fail(400, 'invalid_request_error', invalid);
    rec.status = 200;
    send(res, 200, { input_tokens: Math.max(1, fakeTokens(rec.system) + fakeTokens(rec.turnsText)) });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    counts,
    failNextCount(status, errorType, message, times = 1) {
      countFailures.push({ status, type: errorType, message, left: times, headers: {} });
    },
    failNext(status, errorType, message, times = 1, o = {}) {
      failures.push({ status, type: errorType, message, left: times, headers: o.headers ?? {} });
    },
    replyNext(text, times = 1) {
      replies.push({ text, left: times });
    },
    setResponder(fn) {
      responder = fn ?? defaultResponder;
    },
    hang(on = true) {
      hangMode = on;
    },
    setStreamPace(p) {
      pace = { ...pace, ...p };
    },
    holdStreamsAfter(n) {
      holdAfter = n;
    },
    reset() {
      failures.length = 0;
      countFailures.length = 0;
      replies.length = 0;
      requests.length = 0;
      counts.length = 0;
      hangMode = false;
      responder = defaultResponder;
      pace = { chunkChars: 16, delayMs: 0 };
      holdAfter = null;
    },
    async close() {
      for (const res of hanging) res.destroy();
      hanging.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The request as recorded, before any answer. */
function record(req: IncomingMessage, body: Record<string, unknown> | undefined): RecordedRequest {
  const authz = header(req, 'authorization');
  const auth: RecordedRequest['auth'] = header(req, 'x-api-key') !== undefined ? 'x-api-key' : authz?.startsWith('Bearer ') ? 'bearer' : 'none';
  const retry = header(req, 'x-stainless-retry-count');
  return {
    auth,
    anthropicVersion: header(req, 'anthropic-version'),
    retryCount: retry === undefined ? undefined : Number(retry),
    body,
    model: body?.model,
    maxTokens: body?.max_tokens,
    system: systemText(body?.system),
    userText: userText(body?.messages),
    turnsText: userText(body?.messages, true),
    status: undefined,
  };
}

/** The key from `x-api-key`, or from `Authorization: Bearer` (how the 1.x SDK sends an API key). */
function credential(req: IncomingMessage): string | undefined {
  const xKey = header(req, 'x-api-key');
  if (xKey !== undefined) return xKey;
  const authz = header(req, 'authorization');
  return authz?.startsWith('Bearer ') ? authz.slice('Bearer '.length) : undefined;
}

/** First problem with a Messages request body, worded like the API's own messages; undefined if fine. */
function validate(body: Record<string, unknown> | undefined, version: string | undefined): string | undefined {
  if (!body) return 'The request body is not valid JSON.';
  if (typeof body.model !== 'string' || body.model === '') return 'model: Field required';
  if (body.max_tokens === undefined) return 'max_tokens: Field required';
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens)) return 'max_tokens: Input should be a valid integer';
  if (body.max_tokens < 1) return 'max_tokens: Input should be greater than or equal to 1';
  if (!Array.isArray(body.messages)) return 'messages: Field required';
  if (body.messages.length === 0) return 'messages: at least one message is required';
  for (const [i, m] of body.messages.entries()) {
    if (!m || typeof m !== 'object') return `messages.${i}: Input should be a valid dictionary`;
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (role !== 'user' && role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (typeof content !== 'string' && !Array.isArray(content)) return `messages.${i}.content: Field required`;
  }
  if ((body.messages[0] as { role: string }).role !== 'user') return 'messages: first message must use the "user" role';
  if (body.system !== undefined && typeof body.system !== 'string' && !Array.isArray(body.system)) return 'system: Input should be a valid string';
  if (body.stream !== undefined && typeof body.stream !== 'boolean') return 'stream: Input should be a valid boolean';
  if (version !== undefined && version >= VERSION_WITHOUT_SAMPLING) {
    for (const p of ['temperature', 'top_p', 'top_k']) {
      if (body[p] !== undefined) return `${p}: Extra inputs are not permitted`;
    }
  }
  return undefined;
}

function systemText(system: unknown): string {
  if (typeof system === 'string') return system;
  if (Array.isArray(system)) return system.map((b) => blockText(b)).join('\n');
  return '';
}

function userText(messages: unknown, allRoles = false): string {
  if (!Array.isArray(messages)) return '';
  return messages
    .filter((m): m is { role: string; content: unknown } => !!m && typeof m === 'object' && (allRoles || (m as { role?: unknown }).role === 'user'))
    .map((m) => (typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.map(blockText).join('\n') : ''))
    .join('\n');
}

function blockText(b: unknown): string {
  return b && typeof b === 'object' && typeof (b as { text?: unknown }).text === 'string' ? (b as { text: string }).text : '';
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The body, or undefined when it is over MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) tooBig = true;
    else chunks.push(chunk as Buffer);
  }
  return tooBig ? undefined : Buffer.concat(chunks);
}

function requestId(): string {
  return `req_${randomBytes(12).toString('hex')}`;
}

function errorBody(type: string, message: string): unknown {
  return { type: 'error', error: { type, message }, request_id: requestId() };
}

function send(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(payload);
  const id = (payload as { request_id?: string }).request_id ?? requestId();
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'request-id': id,
    ...headers,
  });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  send(res, status, errorBody(type, message));
}
