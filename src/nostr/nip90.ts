// NIP-90 data vending machine messages: parse a job request into a NewJob, build feedback and results.
import type { Event, EventTemplate } from 'nostr-tools';
import type { Job, NewJob, PublishIntent } from '../core/types.ts';

export const TEXT_JOB_KIND = 5050;
export const FEEDBACK_KIND = 7000;

export type ParsedRequest = { ok: true; job: NewJob } | { ok: false; reason: string };

function tagValues(tags: string[][], name: string): string[][] {
  return tags.filter((t) => t[0] === name);
}

/** The `i`, `param`, `bid`, `relays` tags of a request (from its tags, or its decrypted content). */
export function parseJobTags(
  event: Pick<Event, 'id' | 'kind' | 'pubkey' | 'created_at'>,
  tags: string[][],
  limits: { maxInputChars: number },
): { ok: true; input: string; params: NewJob['params']; bidMsats: number | null } | { ok: false; reason: string } {
  const inputs: string[] = [];
  for (const t of tagValues(tags, 'i')) {
    const [, data, type = 'text'] = t;
    if (data === undefined) continue;
    if (type !== 'text' && type !== 'prompt') {
      return { ok: false, reason: `unsupported input type "${type}": Timmy accepts i tags of type text or prompt` };
    }
    inputs.push(data);
  }
  const input = inputs.join('\n\n').trim();
  if (!input) return { ok: false, reason: 'no input: add an ["i", "<your request>", "text"] tag' };
  if (input.length > limits.maxInputChars) {
    return { ok: false, reason: `input too long: ${input.length} characters, the limit is ${limits.maxInputChars}` };
  }
  const params: NewJob['params'] = {};
  for (const [, name, value] of tagValues(tags, 'param')) {
    if (name === 'max_tokens' && value !== undefined) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) return { ok: false, reason: `param max_tokens must be a positive integer, got "${value}"` };
      params.maxTokens = n;
    } else if (name === 'model' && value) {
      params.model = value.slice(0, 100);
    } else if (name === 'stream') {
      if (value !== 'true' && value !== 'false') return { ok: false, reason: `param stream must be "true" or "false", got "${value ?? ''}"` };
      if (value === 'true') params.stream = true;
    } else if (name === 'session' && value) {
      if (!/^[0-9a-f]{32}$/.test(value)) return { ok: false, reason: 'param session must be a session id (32 hex characters)' };
      params.session = value;
    }
  }
  let bidMsats: number | null = null;
  const bid = tagValues(tags, 'bid')[0]?.[1];
  if (bid !== undefined) {
    const n = Number(bid);
    if (!Number.isSafeInteger(n) || n < 0) return { ok: false, reason: `bid must be a whole number of msats, got "${bid}"` };
    bidMsats = n;
  }
  return { ok: true, input, params, bidMsats };
}

/** Builds the NewJob for a verified 5050 request whose tags have been read. */
export function toNewJob(
  event: Event,
  parsed: { input: string; params: NewJob['params']; bidMsats: number | null },
  encryption: NewJob['encryption'],
): NewJob {
  const relays = (tagValues(event.tags, 'relays')[0] ?? []).slice(1).filter((u) => typeof u === 'string');
  const exp = Number(tagValues(event.tags, 'expiration')[0]?.[1]);
  return {
    id: event.id,
    kind: event.kind,
    source: 'nostr',
    customerPubkey: event.pubkey,
    clientAddress: null,
    requestJson: JSON.stringify(event),
    encryption,
    input: parsed.input,
    params: parsed.params,
    relays,
    bidMsats: parsed.bidMsats,
    requestCreatedAt: event.created_at,
    expiresAt: Number.isSafeInteger(exp) ? exp : null,
  };
}

function requestEvent(job: Job): Event {
  return JSON.parse(job.requestJson!) as Event;
}

/** Builds the unsigned kind 7000 feedback for an intent. `encrypt` seals content for encrypted jobs. */
export function buildFeedback(
  job: Pick<Job, 'id' | 'customerPubkey' | 'encryption'>,
  intent: Extract<PublishIntent, { type: 'feedback' }>,
  encrypt: (plain: string) => string | null,
): EventTemplate {
  // An error's reason may quote a private request (an eval verdict does): for encrypted jobs only its
  // label stays in the clear and the whole message travels in the encrypted content.
  const privateError = job.encryption !== 'none' && intent.status === 'error' && !intent.content;
  const statusText = privateError ? `${intent.label ?? 'error'}: details in the encrypted content` : intent.message;
  const tags: string[][] = [
    ['status', intent.status, statusText],
    ['e', job.id],
    ['p', job.customerPubkey!],
  ];
  if (intent.amountMsats !== undefined) {
    tags.push(intent.bolt11 ? ['amount', String(intent.amountMsats), intent.bolt11] : ['amount', String(intent.amountMsats)]);
  }
  let content = privateError ? intent.message : (intent.content ?? '');
  const sealed = content ? encrypt(content) : null;
  if (sealed !== null) {
    content = sealed;
    tags.push(['encrypted']);
  }
  return { kind: FEEDBACK_KIND, created_at: Math.floor(Date.now() / 1000), tags, content };
}

/** Builds the unsigned result (request kind + 1000) for a completed job. */
export function buildResult(job: Job, encrypt: (plain: string) => string | null, balanceMsats?: number): EventTemplate {
  const request = requestEvent(job);
  const tags: string[][] = [
    ['request', job.requestJson!],
    ['e', job.id],
    ['p', job.customerPubkey!],
  ];
  const sealed = encrypt(job.result ?? '');
  if (sealed === null) {
    for (const t of tagValues(request.tags, 'i')) tags.push(t);
  } else {
    tags.push(['encrypted']);
  }
  const chargedMsats = (job.costLedger?.chargedSats ?? 0) * 1000;
  tags.push(['amount', String(chargedMsats)]);
  // The ledger tells the input's size: for an encrypted request its value is encrypted like the content.
  const ledger = JSON.stringify(job.costLedger);
  tags.push(['cost_ledger', sealed === null ? ledger : (encrypt(ledger) ?? ledger)]);
  if (balanceMsats !== undefined) tags.push(['balance', String(balanceMsats)]);
  return { kind: job.kind + 1000, created_at: Math.floor(Date.now() / 1000), tags, content: sealed ?? job.result ?? '' };
}
