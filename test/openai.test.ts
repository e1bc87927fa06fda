// The OpenAI-compatible API with the official `openai` client as the customer (base URL pointed at Timmy, the
// session macaroon as the API key), the daemon on the Anthropic fake: models and prices, a multi-turn
// completion, a streamed one (Anthropic's SSE in, OpenAI's chunks out), 402 challenges, 401 and 404 in
// OpenAI's error shape, and a client that leaves mid-stream charged only what was generated.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Ajv } from 'ajv';
import { startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { readDb } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';
import { startFakeAnthropic, fakeTokens, defaultResponder, FAKE_API_KEY, type FakeAnthropic } from './fakes/anthropic.ts';
import { actualCostUsd, estimateTokens, usdToSats } from '../src/pricing/pricing.ts';

const MODEL = 'claude-sonnet-4-6';
const PRICING = { work: { model: MODEL, inputUsdPerMtok: 3, outputUsdPerMtok: 15 }, infraMonthlyUsd: 20, infraMonthlyRequests: 10_000, marginPct: 20, minWorkFeeSats: 1 };

let relay: RelayProc;
let fake: FakeAnthropic;
let daemon: DaemonProc;

beforeAll(async () => {
  [relay, fake] = await Promise.all([startRelay(), startFakeAnthropic()]);
  daemon = await startDaemon({
    relays: [relay.url],
    env: { ANTHROPIC_API_KEY: FAKE_API_KEY, ANTHROPIC_BASE_URL: fake.url, L402_DEPOSIT_SATS: '50', MAX_OPEN_UNPAID_PER_CLIENT: '50' },
  });
});
afterAll(async () => {
  await daemon?.kill();
  await Promise.all([relay?.stop(), fake?.close()]);
});
beforeEach(() => fake.reset());

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

async function api(method: string, path: string, body?: unknown, auth?: string): Promise<{ status: number; body: Json; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) headers.authorization = auth;
  const res = await fetch(`${daemon.api}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function pay(paymentHash: string): Promise<string> {
  const r = await api('POST', `/api/dev/stub/pay/${paymentHash}`);
  expect(r.status).toBe(200);
  return r.body.preimage;
}

/** A session with `sats` deposited (paid unless `unpaid`), and an OpenAI client holding its macaroon. */
async function session(sats: number, opts: { unpaid?: boolean } = {}) {
  const created = await api('POST', '/api/sessions', { amountSats: sats });
  expect(created.status).toBe(201);
  const id = created.body.sessionId as string;
  if (!opts.unpaid) {
    await pay(created.body.depositInvoice.paymentHash);
    await waitFor(async () => (await api('GET', `/api/sessions/${id}`, undefined, `Bearer ${created.body.macaroon}`)).body.state === 'active', 'session active');
  }
  const client = new OpenAI({ baseURL: `${daemon.api}/v1`, apiKey: created.body.macaroon, maxRetries: 0 });
  return { id, macaroon: created.body.macaroon as string, client };
}

function ledger(sessionId: string): { kind: string; amount_msats: number; job_id: string | null }[] {
  return readDb(daemon.dataDir, (db) => db.prepare('select kind, amount_msats, job_id from session_ledger where session_id = ? order by id').all(sessionId) as never);
}

const ajv = new Ajv({ strict: false, allErrors: true });
/** Checks a body against a schema of the served OpenAPI document. */
async function validate(schemaName: string, value: unknown): Promise<void> {
  const doc = (await api('GET', '/api/openapi.json')).body;
  const ok = ajv.validate({ ...doc.components.schemas[schemaName], components: doc.components }, value);
  expect(ok, `${schemaName}: ${ajv.errorsText()}`).toBe(true);
}

function job(id: string): Json {
  return readDb(daemon.dataDir, (db) => db.prepare('select * from jobs where id = ?').get(id));
}

describe('OpenAI-compatible API (openai client)', () => {
  it('lists the model with its prices in sats and USD per million tokens', async () => {
    const client = new OpenAI({ baseURL: `${daemon.api}/v1`, apiKey: 'unused', maxRetries: 0 });
    const models: Json[] = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models.map((m) => m.id)).toEqual([MODEL]);
    // $3 / $15 per Mtok with a 20 % margin at the fallback price of 100,000 USD/BTC: 3,600 / 18,000 sats.
    expect(models[0].timmy).toMatchObject({ inputSatsPerMtok: 3600, outputSatsPerMtok: 18_000, btcPriceUsd: 100_000 });
    expect(models[0].timmy.inputUsdPerMtok).toBeCloseTo(3.6, 10);
    await validate('ModelList', (await api('GET', '/v1/models')).body);
  });

  it('answers a multi-turn conversation in OpenAI shape, priced on every turn, with the charge in the header and the body', async () => {
    const s = await session(1000);
    const messages = [
      { role: 'system' as const, content: 'You answer in one sentence.' },
      { role: 'user' as const, content: 'What is a payment channel?' },
      { role: 'assistant' as const, content: 'A two-party ledger on Bitcoin.' },
      { role: 'user' as const, content: 'And an invoice?' },
    ];
    const { data, response } = await s.client.chat.completions.create({ model: MODEL, messages, max_tokens: 100, temperature: 0.2 }).withResponse();

    const call = fake.requests.find((r) => r.body?.max_tokens === 100)!;
    expect(call.system).toBe('You answer in one sentence.');
    expect(call.body!.messages).toEqual(messages.slice(1));
    expect(call.body!.temperature).toBeUndefined(); // the pinned anthropic-version takes no sampling parameters
    const answer = defaultResponder(call);
    const inTok = fakeTokens(call.system) + fakeTokens(call.turnsText);
    expect(data.object).toBe('chat.completion');
    await validate('ChatCompletion', data);
    expect(data.choices[0]!.message).toMatchObject({ role: 'assistant', content: answer });
    expect(data.choices[0]!.finish_reason).toBe('stop');
    expect(data.usage).toEqual({ prompt_tokens: inTok, completion_tokens: fakeTokens(answer), total_tokens: inTok + fakeTokens(answer) });
    // The reservation counted every turn (the API's count_tokens), not just the last one.
    const counted = fake.counts.at(-1)!;
    expect(counted.body!.messages).toEqual(messages.slice(1));

    const cost = usdToSats(actualCostUsd(PRICING, inTok, fakeTokens(answer)), 100_000);
    const t = (data as Json).timmy;
    expect(Number(response.headers.get('x-timmy-cost-sats'))).toBe(cost);
    expect(t.costSats).toBe(cost);
    expect(t.balanceSats).toBe(1000 - cost);
    const jobId = data.id.replace('chatcmpl-', '');
    expect(t.jobId).toBe(jobId);
    expect(job(jobId)).toMatchObject({ state: 'complete', source: 'http', session_id: s.id });
    const mine = ledger(s.id).filter((e) => e.job_id === jobId);
    expect(mine.map((e) => e.kind).sort()).toEqual(['debit', 'release', 'reserve']);
    expect(mine.reduce((n, e) => n + e.amount_msats, 0)).toBe(-cost * 1000);
  });

  it('streams: Anthropic SSE in, OpenAI chunks out, usage and the charge in the last chunk, then [DONE]', async () => {
    const s = await session(1000);
    fake.setStreamPace({ chunkChars: 8 });
    const stream = await s.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Explain routing fees briefly.' }], stream: true });
    const chunks: Json[] = [];
    for await (const ch of stream) chunks.push(ch);

    const call = fake.requests.at(-1)!;
    expect(call.body!.stream).toBe(true);
    expect(call.stream).toMatchObject({ done: true, closedEarly: false });
    const answer = defaultResponder(call);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe(answer);
    expect(chunks.filter((c) => c.choices[0]?.delta?.content).length).toBeGreaterThan(1);
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe('stop');
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    const inTok = fakeTokens(call.system) + fakeTokens(call.turnsText);
    expect(last.usage).toEqual({ prompt_tokens: inTok, completion_tokens: fakeTokens(answer), total_tokens: inTok + fakeTokens(answer) });
    const cost = usdToSats(actualCostUsd(PRICING, inTok, fakeTokens(answer)), 100_000);
    expect(last.timmy).toMatchObject({ costSats: cost, balanceSats: 1000 - cost });

    // The raw wire ends with data: [DONE].
    const raw = await fetch(`${daemon.api}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${s.macaroon}` },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(raw.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect((await raw.text()).trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('402 with an L402 challenge: no credential, an unpaid deposit, a spent balance; paying the top-up lets the same client go on', async () => {
    const none = await api('POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect(none.status).toBe(402);
    expect(none.body.error).toMatchObject({ type: 'insufficient_quota', code: 'payment_required' });
    expect(none.body.invoice.amountSats).toBe(50);
    await validate('OpenAIPaymentRequired', none.body);
    expect(none.headers.get('www-authenticate')).toContain(`L402 version="0", token="${none.body.macaroon}"`);

    const unpaid = await session(1000, { unpaid: true });
    const e1 = await unpaid.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(e1).toBeInstanceOf(OpenAI.APIError);
    expect(e1.status).toBe(402);
    expect(e1.error).toMatchObject({ code: 'payment_required' });
    expect(e1.headers.get('www-authenticate')).toMatch(/^L402 /);

    const spent = await session(1); // 1 sat cannot cover any reservation
    const e2 = await spent.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(e2.status).toBe(402);
    const topup = (await fetch(`${daemon.api}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${spent.macaroon}` },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    }).then((r) => r.json())) as Json;
    expect(topup.invoice.amountSats).toBeGreaterThanOrEqual(50);
    expect(fake.requests).toHaveLength(0); // nothing was worked
    await pay(topup.invoice.paymentHash);
    await waitFor(async () => (await api('GET', `/api/sessions/${spent.id}`, undefined, `Bearer ${spent.macaroon}`)).body.balanceSats > 1, 'top-up credited');
    const ok = await spent.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect(ok.choices[0]!.message.content).toContain('you asked "hi"');
  });

  it('a wrong key is 401, an unknown model 404 model_not_found, a bad body 400, all in OpenAI error shape', async () => {
    const wrong = new OpenAI({ baseURL: `${daemon.api}/v1`, apiKey: 'sk-not-a-macaroon', maxRetries: 0 });
    const e1 = await wrong.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(e1).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(e1.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key' });
    const forged = new OpenAI({ baseURL: `${daemon.api}/v1`, apiKey: Buffer.from('forged macaroon bytes').toString('base64'), maxRetries: 0 });
    expect((await forged.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e)).status).toBe(401);

    const s = await session(100);
    const e2 = await s.client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(e2).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e2.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    await validate('OpenAIError', { error: e2.error });
    const e3 = await s.client.chat.completions.create({ model: MODEL, messages: [{ role: 'assistant', content: 'hello' }] }).catch((e) => e);
    expect(e3).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e3.error.type).toBe('invalid_request_error');
    expect(ledger(s.id).map((e) => e.kind)).toEqual(['deposit']); // nothing reserved by any of them
  });

  it('a client that leaves mid-stream is charged only what was generated; the rest of the reservation is released', async () => {
    const s = await session(1000);
    fake.setStreamPace({ chunkChars: 8 });
    fake.holdStreamsAfter(2);
    const abort = new AbortController();
    const stream = await s.client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'Write a long story about a lightning node that learns to route payments.' }], stream: true },
      { signal: abort.signal },
    );
    let jobId = '';
    let received = '';
    try {
      for await (const ch of stream) {
        jobId = ch.id.replace('chatcmpl-', '');
        received += ch.choices[0]?.delta?.content ?? '';
        if (received.length >= 16) abort.abort();
      }
    } catch (err) {
      expect((err as Error).name).toMatch(/Abort/);
    }
    expect(received.length).toBeGreaterThanOrEqual(16);
    const call = fake.requests.at(-1)!;
    await waitFor(() => call.stream?.closedEarly, 'the Anthropic stream cancelled');
    const done = await waitFor(() => (['complete', 'failed'].includes(job(jobId)?.state) ? job(jobId) : null), 'the job ended');

    expect(done.state).toBe('complete');
    expect(done.result).toBe(call.stream!.textSent); // what was generated before the stream was cut
    const costLedger = JSON.parse(done.cost_ledger_json);
    const inTok = fakeTokens(call.system) + fakeTokens(call.turnsText);
    // Input as message_start reported it; output estimated conservatively from the text (no message_delta came).
    expect(costLedger.actualInputTokens).toBe(inTok);
    expect(costLedger.actualOutputTokens).toBe(estimateTokens(done.result));
    const debit = usdToSats(actualCostUsd(PRICING, inTok, estimateTokens(done.result)), 100_000) * 1000;
    const mine = ledger(s.id).filter((e) => e.job_id === jobId);
    const reserved = -mine.find((e) => e.kind === 'reserve')!.amount_msats;
    expect(mine.find((e) => e.kind === 'release')!.amount_msats).toBe(reserved);
    expect(mine.find((e) => e.kind === 'debit')!.amount_msats).toBe(-debit);
    expect(debit).toBeLessThan(reserved);
    expect((await api('GET', `/api/sessions/${s.id}`, undefined, `Bearer ${s.macaroon}`)).body.balanceSats).toBe(1000 - debit / 1000);
  });
});

describe('a crash mid-stream', () => {
  it('releases the whole reservation once at the restart; the job ends failed, nothing is debited', async () => {
    const dataDir = daemon.dataDir.replace(/\/?$/, '') + '-crash';
    const env = { ANTHROPIC_API_KEY: FAKE_API_KEY, ANTHROPIC_BASE_URL: fake.url };
    let d = await startDaemon({ relays: [relay.url], dataDir, env });
    const created = await fetch(`${d.api}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amountSats: 500 }) }).then((r) => r.json() as Promise<Json>);
    await fetch(`${d.api}/api/dev/stub/pay/${created.depositInvoice.paymentHash}`, { method: 'POST' });
    const client = new OpenAI({ baseURL: `${d.api}/v1`, apiKey: created.macaroon, maxRetries: 0 });
    await waitFor(async () => (await client.models.list()).data.length === 1, 'daemon answering');
    fake.holdStreamsAfter(1);
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Tell me a story.' }], stream: true });
    let jobId = '';
    const reading = (async () => {
      for await (const ch of stream) jobId = ch.id.replace('chatcmpl-', '');
    })().catch(() => undefined);
    await waitFor(() => jobId && fake.requests.at(-1)?.stream?.deltas === 1, 'the stream under way');
    await d.kill('SIGKILL');
    await reading;
    d = await startDaemon({ relays: [relay.url], dataDir, env });
    try {
      const ended = await waitFor(() => readDb(dataDir, (db) => db.prepare("select * from jobs where id = ? and state in ('complete', 'failed')").get(jobId)) as Json, 'the job ended');
      expect(ended).toMatchObject({ state: 'failed', error_message: 'interrupted by a restart' });
      const entries = readDb(dataDir, (db) => db.prepare('select kind, amount_msats from session_ledger where job_id = ?').all(jobId)) as { kind: string; amount_msats: number }[];
      expect(entries.map((e) => e.kind).sort()).toEqual(['release', 'reserve']);
      expect(entries.reduce((n, e) => n + e.amount_msats, 0)).toBe(0);
      const view = await fetch(`${d.api}/api/sessions/${created.sessionId}`, { headers: { authorization: `Bearer ${created.macaroon}` } }).then((r) => r.json() as Promise<Json>);
      expect(view.balanceSats).toBe(500);
    } finally {
      await d.kill();
    }
  });
});
