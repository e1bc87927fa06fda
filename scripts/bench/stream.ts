// Benchmark 5: time to first token through POST /v1/chat/completions, streamed, against the whole answer
// without streaming, in the same run. The daemon runs as a child process on the Anthropic fake
// (test/fakes/anthropic.ts, in this process), which streams a fixed answer at a fixed token rate (one
// ~1-token delta of 4 characters every 1000/rate ms). Requests alternate between the two modes on one
// funded session; each is timed from the moment the request is sent.
import { rmSync } from 'node:fs';
import { startRelay, tempDir } from '../../test/helpers/procs.ts';
import { startFakeAnthropic, FAKE_API_KEY, fakeTokens } from '../../test/fakes/anthropic.ts';
import { spawnDaemon } from './daemon.ts';
import { progress } from './common.ts';

export interface StreamResult {
  n: number; // requests per mode
  tokensPerSecond: number;
  answerTokens: number;
  ttft: number[]; // ms, request sent -> first content chunk (streamed)
  streamTotal: number[]; // ms, request sent -> data: [DONE]
  whole: number[]; // ms, request sent -> the whole JSON answer (not streamed)
}

const MODEL = 'claude-sonnet-4-6';

export async function runStream(o: { n: number; tokensPerSecond: number; answerTokens: number }): Promise<StreamResult> {
  const relay = await startRelay();
  const fake = await startFakeAnthropic();
  const answer = 'word '.repeat(Math.ceil(o.answerTokens * 0.8)).slice(0, o.answerTokens * 4); // 4 ASCII characters per fake token
  fake.setResponder(() => answer);
  fake.setStreamPace({ chunkChars: 4, delayMs: 1000 / o.tokensPerSecond });
  const dataDir = tempDir('timmy-bench-stream-');
  const daemon = await spawnDaemon({ relays: [relay.url], dataDir, env: { ANTHROPIC_API_KEY: FAKE_API_KEY, ANTHROPIC_BASE_URL: fake.url, MAX_OPEN_UNPAID_PER_CLIENT: '50' } });
  const post = (path: string, body: unknown, auth?: string) =>
    fetch(`${daemon.api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify(body) });
  try {
    const created = (await (await post('/api/sessions', { amountSats: 500_000 })).json()) as { sessionId: string; macaroon: string; depositInvoice: { paymentHash: string } };
    await post(`/api/dev/stub/pay/${created.depositInvoice.paymentHash}`, {});
    const auth = `Bearer ${created.macaroon}`;
    const body = (stream: boolean) => ({ model: MODEL, stream, messages: [{ role: 'user', content: 'Write a short story about a Lightning node.' }] });
    const r: StreamResult = { n: o.n, tokensPerSecond: o.tokensPerSecond, answerTokens: fakeTokens(answer), ttft: [], streamTotal: [], whole: [] };
    progress(`stream: ${o.n} requests per mode, ${r.answerTokens}-token answers at ${o.tokensPerSecond} tokens/s`);
    for (let i = 0; i < o.n + 1; i++) {
      const warm = i === 0; // the first pair warms up (token counting, JIT)
      // Streamed: time to the first chunk that carries text, and to [DONE].
      let t0 = performance.now();
      const res = await post('/v1/chat/completions', body(true), auth);
      if (res.status !== 200) throw new Error(`streamed request: HTTP ${res.status} ${await res.text()}`);
      const decoder = new TextDecoder();
      let buf = '';
      let first = NaN;
      for await (const bytes of res.body!) {
        buf += decoder.decode(bytes as Uint8Array, { stream: true });
        if (Number.isNaN(first) && /"delta":\{"content":"[^"]/.test(buf)) first = performance.now() - t0;
      }
      if (!buf.trimEnd().endsWith('data: [DONE]')) throw new Error(`stream did not end with [DONE]: ${buf.slice(-300)}`);
      const total = performance.now() - t0;
      // Not streamed: the whole answer.
      t0 = performance.now();
      const whole = await post('/v1/chat/completions', body(false), auth);
      const json = (await whole.json()) as { choices?: { message: { content: string } }[] };
      if (whole.status !== 200 || json.choices?.[0]?.message.content !== answer) throw new Error(`plain request: HTTP ${whole.status} ${JSON.stringify(json).slice(0, 300)}`);
      const wholeMs = performance.now() - t0;
      if (warm) continue;
      r.ttft.push(first);
      r.streamTotal.push(total);
      r.whole.push(wholeMs);
    }
    return r;
  } finally {
    await daemon.kill();
    await Promise.all([relay.stop(), fake.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
