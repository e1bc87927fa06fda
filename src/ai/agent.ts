// The AI interface the core owns: an eval verdict and a work answer, each with token usage.

export interface Usage {
  model: string;
  inputTokens: number;
  outputTokens: number;
}

export interface Verdict {
  accept: boolean;
  reason: string;
  usage: Usage;
}

export interface WorkAnswer {
  text: string;
  usage: Usage;
}

/** What the core needs of a model provider (stub, Anthropic). */
export interface Agent {
  readonly name: 'stub' | 'anthropic';
  evaluate(input: string): Promise<Verdict>;
  /** `maxTokens` comes from the price estimate, so the actual cost cannot exceed the quote. */
  work(input: string, maxTokens: number): Promise<WorkAnswer>;
}

export class AgentError extends Error {
  override name = 'AgentError';
}
