// The deterministic stub agent: no model, no network. Accepts ordinary requests, rejects obviously bad ones,
// reports token usage estimated from the text, and says in every answer that it is a stub.
import { estimateTokens, WORK_SYSTEM_PROMPT } from '../pricing/pricing.ts';
import type { Agent, Verdict, WorkAnswer } from '../core/ports.ts';

/** Requests the stub refuses, so the rejection path can be exercised without a model. */
const OBVIOUSLY_BAD = /\b(malware|ransomware|keylogger|credit card dump|make a bomb|steal (?:passwords|credentials|bitcoin))\b/i;

const EVAL_SYSTEM = 'Decide whether to accept this paid request.';

export class StubAgent implements Agent {
  readonly name = 'stub' as const;

  constructor(
    private readonly models: { evalModel: string; workModel: string },
    private readonly delayMs = 0, // ms, simulated latency per call
  ) {}

  private async pause(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
  }

  async evaluate(input: string): Promise<Verdict> {
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
    await this.pause();
    const excerpt = input.length > 200 ? `${input.slice(0, 200)}…` : input;
    let text = `[stub agent: no AI model is configured, this answer is canned] You asked: "${excerpt}". Set ANTHROPIC_API_KEY for real answers.`;
    // Respect the token budget like a real model would.
    const maxChars = maxTokens * 4;
    if (text.length > maxChars) text = text.slice(0, maxChars);
    return {
      text,
      usage: {
        model: this.models.workModel,
        inputTokens: estimateTokens(WORK_SYSTEM_PROMPT) + estimateTokens(input),
        outputTokens: Math.min(maxTokens, estimateTokens(text)),
      },
    };
  }
}
