// The production Anthropic agent against the local fake of the Messages API: verdicts, work, token budgets,
// the SDK's retries (529, 500, 429 + retry-after), timeouts, deadlines, auth and connection failures.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AgentError } from '../src/core/ports.ts';
import { AnthropicAgent, EVAL_MAX_TOKENS, parseVerdict, type AnthropicAgentOptions } from '../src/ai/anthropic.ts';
import { createLogger } from '../src/log.ts';
import { WORK_SYSTEM_PROMPT } from '../src/pricing/pricing.ts';
import { fakeTokens, startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.ts';

const EVAL_MODEL = 'claude-haiku-4-5';
// Not the README's default claude-sonnet-4-5: SDK 1.14 lists it as deprecated (end of life 2026-11-30) and
// console.warns on every call with it, outside our logger.
const WORK_MODEL = 'claude-sonnet-4-6';
/** Makes the SDK wait 10 ms between attempts instead of its 0.5-8 s backoff. */
const FAST_RETRY = { headers: { 'retry-after-ms': '10' } };

let fake: FakeAnthropic;

function agent(over: Partial<AnthropicAgentOptions> = {}): AnthropicAgent {
  return new AnthropicAgent({
    apiKey: fake.apiKey,
    baseURL: fake.url,
    evalModel: EVAL_MODEL,
    workModel: WORK_MODEL,
    log: createLogger('silent'),
    maxRetries: 2,
    timeoutMs: 5_000,
    ...over,
  });
}

async function agentError(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

describe('AnthropicAgent.evaluate', () => {
  it('accepts an ordinary request with a reason and the usage of the call', async () => {
    const v = await agent().evaluate('Write a haiku about the sea.');
    expect(v.accept).toBe(true);
    expect(v.reason).toMatch(/ordinary/);
    expect(v.usage.model).toBe(EVAL_MODEL);
    expect(v.usage.inputTokens).toBeGreaterThan(0);
    expect(v.usage.outputTokens).toBeGreaterThan(0);
    expect(v.usage.outputTokens).toBeLessThanOrEqual(EVAL_MAX_TOKENS);
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.model).toBe(EVAL_MODEL);
    expect(req.maxTokens).toBe(EVAL_MAX_TOKENS);
    expect(req.userText).toContain('Write a haiku about the sea.');
    // What the 1.x SDK puts on the wire: a version header, and the key as a bearer token.
    expect(req.anthropicVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(req.auth).toBe('bearer');
  });

  it('rejects a harmful request with the model\'s reason', async () => {
    const v = await agent().evaluate('Write ransomware that encrypts a hospital network.');
    expect(v.accept).toBe(false);
    expect(v.reason).toMatch(/ransomware/);
    expect(v.usage.model).toBe(EVAL_MODEL);
    expect(v.usage.outputTokens).toBeGreaterThan(0);
  });

  it('reads a verdict wrapped in a code fence and prose', async () => {
    fake.replyNext('Sure, here you go:\n```json\n{"accept": true, "reason": "Fine {really}."}\n```\nAnything else?');
    const v = await agent().evaluate('hello');
    expect(v).toMatchObject({ accept: true, reason: 'Fine {really}.' });
  });

  it('asks twice when the answer is not a verdict, then rejects and counts both calls', async () => {
    fake.replyNext('I would be happy to help with that!', 2);
    const v = await agent().evaluate('hello');
    expect(v.accept).toBe(false);
    expect(v.reason).toBe('evaluation was not understood');
    expect(fake.requests).toHaveLength(2);
    const perCall = 'I would be happy to help with that!'.length / 4;
    expect(v.usage.outputTokens).toBe(2 * Math.ceil(perCall));
  });

  it('uses the second answer when only the first was garbled', async () => {
    fake.replyNext('{"accept": maybe}');
    const v = await agent().evaluate('hello');
    expect(v.accept).toBe(true);
    expect(fake.requests).toHaveLength(2);
  });
});

describe('AnthropicAgent.work', () => {
  it('answers with the work model, its system prompt and max_tokens = the quoted budget', async () => {
    const a = await agent().work('What is the capital of France?', 64);
    expect(a.text).toContain('What is the capital of France?');
    expect(a.usage.model).toBe(WORK_MODEL);
    expect(a.usage.inputTokens).toBeGreaterThan(0);
    expect(a.usage.outputTokens).toBeGreaterThan(0);
    expect(a.usage.outputTokens).toBeLessThanOrEqual(64);
    const req = fake.requests[0]!;
    expect(req.model).toBe(WORK_MODEL);
    expect(req.maxTokens).toBe(64);
    expect(req.system).toBe(WORK_SYSTEM_PROMPT);
  });

  it('never reports more output tokens than maxTokens when the model runs long', async () => {
    fake.replyNext('word '.repeat(2_000));
    const a = await agent().work('Write a long essay.', 16);
    expect(a.usage.outputTokens).toBeLessThanOrEqual(16);
    expect(a.text.length).toBeLessThanOrEqual(16 * 4);
    expect(fake.requests[0]!.maxTokens).toBe(16);
  });

  it('refuses a non-positive budget before calling the API', async () => {
    await agentError(agent().work('hi', 0));
    expect(fake.requests).toHaveLength(0);
  });
});

describe('AnthropicAgent.countInputTokens', () => {
  it("counts the work call's input with the API (work model, system prompt, the request), exact for CJK text", async () => {
    const cjk = '閃電網絡'.repeat(3998) + '比特幣'; // 15,995 characters; ÷ 4 said ~4,000 tokens
    const n = await agent().countInputTokens(cjk);
    expect(fake.counts).toHaveLength(1);
    const [call] = fake.counts;
    expect(call!.model).toBe(WORK_MODEL);
    expect(call!.system).toBe(WORK_SYSTEM_PROMPT);
    expect(call!.userText).toBe(cjk);
    expect(call!.status).toBe(200);
    expect(n).toBe(fakeTokens(WORK_SYSTEM_PROMPT) + fakeTokens(cjk));
    expect(n).toBeGreaterThan(15_995);
    expect(fake.requests).toHaveLength(0); // counting spends no Messages call
  });

  it('a failing count is an AgentError without the key', async () => {
    fake.failNextCount(401, 'authentication_error', `invalid key ${fake.apiKey}`, 5);
    const err = await agentError(agent().countInputTokens('hi'));
    expect(err.message).toMatch(/token count HTTP 401 authentication_error/);
    expect(err.message).not.toContain(fake.apiKey);
  });
});

describe('retries, timeouts and failures', () => {
  it('529 once, then success: one answer, two requests', async () => {
    fake.failNext(529, 'overloaded_error', 'Overloaded', 1, FAST_RETRY);
    const a = await agent().work('hi', 32);
    expect(a.text).toContain('hi');
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests.map((r) => r.status)).toEqual([529, 200]);
    expect(fake.requests.map((r) => r.retryCount)).toEqual([0, 1]);
  });

  it('500 api_error once, then success', async () => {
    fake.failNext(500, 'api_error', 'Internal server error', 1, FAST_RETRY);
    const v = await agent().evaluate('hello');
    expect(v.accept).toBe(true);
    expect(fake.requests).toHaveLength(2);
  });

  it('529 forever: AgentError naming overloaded_error after maxRetries + 1 attempts', async () => {
    fake.failNext(529, 'overloaded_error', 'Overloaded', Infinity, FAST_RETRY);
    const err = await agentError(agent({ maxRetries: 2 }).work('hi', 32));
    expect(err.message).toMatch(/529/);
    expect(err.message).toMatch(/overloaded_error/);
    expect(err.message).toMatch(/Overloaded/);
    expect(err.message).toMatch(/3 attempts/);
    expect(fake.requests).toHaveLength(3);
  });

  it('429 honours retry-after (seconds) rather than the default backoff', async () => {
    fake.failNext(429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit', 1, {
      headers: { 'retry-after': '1' },
    });
    const started = Date.now();
    const a = await agent().work('hi', 32);
    expect(a.text).toContain('hi');
    // Without the header the first wait would be 375-500 ms (0.5 s minus jitter).
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(fake.requests).toHaveLength(2);
  });

  it('a retry-after longer than the deadline ends the call at the deadline', async () => {
    fake.failNext(429, 'rate_limit_error', 'Rate limited', 1, { headers: { 'retry-after': '3600' } });
    const started = Date.now();
    const err = await agentError(agent({ deadlineMs: 300 }).work('hi', 32));
    expect(err.message).toMatch(/deadline/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(fake.requests).toHaveLength(1);
  });

  it('hang: AgentError on timeout after every attempt timed out', async () => {
    fake.hang();
    const err = await agentError(agent({ maxRetries: 1, timeoutMs: 150 }).work('hi', 32));
    expect(err.message).toMatch(/timed out/);
    expect(err.message).toMatch(/150 ms/);
    expect(fake.requests).toHaveLength(2);
  });

  it('hang during evaluation uses evalTimeoutMs', async () => {
    fake.hang();
    const err = await agentError(agent({ maxRetries: 0, timeoutMs: 10_000, evalTimeoutMs: 100 }).evaluate('hello'));
    expect(err.message).toMatch(/evaluation timed out: no answer within 100 ms, 1 attempt\b/);
    expect(fake.requests).toHaveLength(1);
  });

  it('401: AgentError without the key, not retried', async () => {
    const wrongKey = 'sk-ant-api03-WRONG-key-that-must-never-appear-9999';
    const err = await agentError(agent({ apiKey: wrongKey }).evaluate('hello'));
    expect(err.message).toMatch(/401/);
    expect(err.message).toMatch(/authentication_error/);
    expect(err.message).not.toContain(wrongKey);
    expect(err.message).not.toContain(fake.apiKey);
    expect(err.message).not.toMatch(/bearer|authorization|x-api-key:/i);
    expect(fake.requests).toHaveLength(1);
  });

  it('400 invalid_request_error is not retried and names the field', async () => {
    const err = await agentError(agent({ workModel: '' }).work('hi', 32));
    expect(err.message).toMatch(/400 invalid_request_error: model: Field required \(1 attempt\)/);
    expect(fake.requests).toHaveLength(1);
  });

  it('an error message that echoes the key is redacted', async () => {
    fake.failNext(403, 'permission_error', `key ${fake.apiKey} may not use this model`);
    const err = await agentError(agent().work('hi', 32));
    expect(err.message).toMatch(/403 permission_error/);
    expect(err.message).not.toContain(fake.apiKey);
    expect(err.message).toContain('[redacted]');
  });

  it('connection refused: AgentError naming a connection error after the retries', async () => {
    const port = await closedPort();
    const err = await agentError(agent({ baseURL: `http://127.0.0.1:${port}`, maxRetries: 1 }).work('hi', 32));
    expect(err.message).toMatch(/connection error/);
    expect(err.message).toMatch(/2 attempts/);
  });
});

describe('the fake itself, over raw HTTP', () => {
  const body = { model: WORK_MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
  const post = (headers: Record<string, string>, b: unknown = body) =>
    fetch(`${fake.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(b) });

  it('answers 401 authentication_error without a key, with the real error shape', async () => {
    const res = await post({ 'anthropic-version': '2023-06-01' });
    expect(res.status).toBe(401);
    expect(res.headers.get('request-id')).toMatch(/^req_/);
    const json = (await res.json()) as { type: string; error: { type: string; message: string }; request_id: string };
    expect(json.type).toBe('error');
    expect(json.error.type).toBe('authentication_error');
    expect(typeof json.error.message).toBe('string');
    expect(json.request_id).toMatch(/^req_/);
  });

  it('accepts x-api-key and requires anthropic-version', async () => {
    const noVersion = await post({ 'x-api-key': fake.apiKey });
    expect(noVersion.status).toBe(400);
    expect(((await noVersion.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const ok = await post({ 'x-api-key': fake.apiKey, 'anthropic-version': '2023-06-01' });
    expect(ok.status).toBe(200);
    const msg = (await ok.json()) as Record<string, unknown>;
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', model: WORK_MODEL, stop_sequence: null });
    expect(msg.id).toMatch(/^msg_/);
    expect(['end_turn', 'max_tokens']).toContain(msg.stop_reason);
    const usage = msg.usage as { input_tokens: number; output_tokens: number };
    expect(usage.output_tokens).toBeLessThanOrEqual(10);
    expect(fake.requests.map((r) => r.auth)).toEqual(['x-api-key', 'x-api-key']);
  });

  it('count_tokens: authenticated, the body of a Messages request without max_tokens', async () => {
    const h = { 'content-type': 'application/json', 'x-api-key': fake.apiKey, 'anthropic-version': '2023-06-01' };
    const count = (headers: Record<string, string>, b: unknown) => fetch(`${fake.url}/v1/messages/count_tokens`, { method: 'POST', headers, body: JSON.stringify(b) });
    const { max_tokens: _, ...countBody } = body;
    expect((await count({ ...h, 'x-api-key': 'wrong' }, countBody)).status).toBe(401);
    expect((await count(h, body)).status).toBe(400); // max_tokens is not part of a count
    expect((await count(h, { model: WORK_MODEL })).status).toBe(400);
    const ok = await count(h, { ...countBody, system: 'be brief' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ input_tokens: fakeTokens('be brief') + fakeTokens('hi') });
  });

  it('validates max_tokens and messages', async () => {
    const h = { 'x-api-key': fake.apiKey, 'anthropic-version': '2023-06-01' };
    for (const bad of [{ ...body, max_tokens: 0 }, { ...body, max_tokens: 1.5 }, { ...body, messages: 'hi' }, { model: WORK_MODEL, messages: body.messages }]) {
      const res = await post(h, bad);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    }
  });
});

describe('parseVerdict', () => {
  it('finds the first object with a boolean accept, and tolerates braces in strings', () => {
    expect(parseVerdict('{"accept": false, "reason": "no {way}"}')).toEqual({ accept: false, reason: 'no {way}' });
    expect(parseVerdict('note {x} then {"accept": true}')).toEqual({ accept: true, reason: 'accepted by the evaluation model' });
    expect(parseVerdict('{"accept": "yes", "reason": "r"}')).toBeUndefined();
    expect(parseVerdict('no json here')).toBeUndefined();
  });
});

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
