// The deterministic stub agent: no model, no network. Accepts ordinary requests, rejects obviously bad ones,
// reports token usage estimated from the text, and says in every answer that it is a stub. Streamed answers
// come a word at a time: the first after the configured latency, the rest a twentieth of it apart. For tests
// that count AI calls across processes, each call can be appended to a shared log file first (STUB_AI_CALL_LOG).
import { appendFileSync } from 'node:fs';
import { estimatePromptTokens, estimateTokens, WORK_SYSTEM_PROMPT } from '../pricing/pricing.ts';
import type { Agent, StreamHooks, Verdict, WorkAnswer, WorkPrompt } from '../core/ports.ts';

/** Requests the stub refuses, so the rejection path can be exercised without a model. */
const OBVIOUSLY_BAD = /\b(malware|ransomware|keylogger|credit card dump|make a bomb|steal (?:passwords|credentials|bitcoin))\b/i;

const EVAL_SYSTEM = 'Decide whether to accept this paid request.';

/** Where each call is recorded (testing only): a file shared by the workers, one JSON line per call. */
export interface StubCallLog {
  path: string;
  /** WORKER_ID of this process. */
  worker: string;
}

/** One line of the call log. */
export interface StubCall {
  worker: string;
  stage: 'eval' | 'work';
  input: string;
  atMs: number; // unix ms, when the call started
}

export class StubAgent implements Agent {
  readonly name = 'stub' as const;

  constructor(
    private readonly models: { evalModel: string; workModel: string },
    private readonly delayMs = 0, // ms, simulated latency per call
    private readonly callLog?: StubCallLog,
  ) {}

  /** Records the call before it is answered (a worker killed mid-call has still made it). */
  private record(stage: StubCall['stage'], input: string): void {
    if (!this.callLog) return;
    const line: StubCall = { worker: this.callLog.worker, stage, input, atMs: Date.now() };
    appendFileSync(this.callLog.path, `${JSON.stringify(line)}\n`); // O_APPEND: whole lines from several processes
  }

  private async pause(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
  }

  async evaluate(input: string): Promise<Verdict> {
    this.record('eval', input);
    await this.pause();
    const bad = OBVIOUSLY_BAD.exec(input);
    const reason = bad
      ? `rejected by the stub agent: the request asks for "${bad[0]}"`
      : 'accepted by the stub agent: an ordinary text request';
    return {
      accept: !bad,
      reason,
      usage: { model: this.models.evalModel, inputTokens: estimateTokens(EVAL_SYSTEM + input), outputTokens: estimateTokens(reason) },
    };
  }

  async work(input: string, maxTokens: number): Promise<WorkAnswer> {
    this.record('work', input);
    await this.pause();
    const text = cannedAnswer(input, maxTokens);
    return {
      text,
      usage: {
        model: this.models.workModel,
        inputTokens: estimateTokens(WORK_SYSTEM_PROMPT) + estimateTokens(input),
        outputTokens: Math.min(maxTokens, estimateTokens(text)),
      },
    };
  }

  async workStream(prompt: WorkPrompt, maxTokens: number, hooks: StreamHooks): Promise<WorkAnswer> {
    const lastUser = prompt.turns.filter((t) => t.role === 'user').at(-1)?.content ?? '';
    this.record('work', lastUser);
    const words = cannedAnswer(lastUser, maxTokens).match(/\S+\s*/g) ?? [];
    const gapMs = Math.round(this.delayMs / 20); // ms between words
    let text = '';
    for (const [i, word] of words.entries()) {
      if (hooks.signal?.aborted) break;
      await sleep(i === 0 ? this.delayMs : gapMs, hooks.signal);
      if (hooks.signal?.aborted) break;
      text += word;
      hooks.onText?.(word);
    }
    const aborted = hooks.signal?.aborted === true;
    return {
      text,
      usage: { model: this.models.workModel, inputTokens: estimatePromptTokens(prompt), outputTokens: Math.min(maxTokens, estimateTokens(text)) },
      ...(aborted ? { aborted } : {}),
    };
  }
}

/** The stub's answer to `input`, cut to the token budget like a real model would. */
function cannedAnswer(input: string, maxTokens: number): string {
  const excerpt = input.length > 200 ? `${input.slice(0, 200)}…` : input;
  const text = `[stub agent: no AI model is configured, this answer is canned] You asked: "${excerpt}". Set ANTHROPIC_API_KEY for real answers.`;
  const maxChars = maxTokens * 4;
  return text.length > maxChars ? text.slice(0, maxChars) : text;
}

/** Waits `ms` (0: not at all), or less when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
