// The stub agent's call log (STUB_AI_CALL_LOG): one line per call, written before the answer.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StubAgent, type StubCall } from './stub.ts';

const models = { evalModel: 'e', workModel: 'w' };

describe('StubAgent call log', () => {
  it('appends the worker, the stage and the input of every call, the evaluation, plain work and streamed work', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'timmy-stub-ai-')), 'calls.jsonl');
    const agent = new StubAgent(models, 0, { path, worker: 'w1' });
    const before = Date.now();
    await agent.evaluate('first');
    await agent.work('second', 100);
    await agent.workStream({ turns: [{ role: 'user', content: 'earlier' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'third' }] }, 100, {});
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StubCall);
    expect(lines.map(({ worker, stage, input }) => ({ worker, stage, input }))).toEqual([
      { worker: 'w1', stage: 'eval', input: 'first' },
      { worker: 'w1', stage: 'work', input: 'second' },
      { worker: 'w1', stage: 'work', input: 'third' },
    ]);
    for (const l of lines) expect(l.atMs).toBeGreaterThanOrEqual(before);
  });
});
