// NIP-57 on the recipient's side: the zap request (kind 9734) checked as Appendix D says, and the zap
// receipt (kind 9735) built as Appendix E says.
import type { Event, EventTemplate } from 'nostr-tools';
import { verifyEvent } from './crypto.ts';
import { asEvent } from './intake.ts';

export const ZAP_REQUEST_KIND = 9734;
export const ZAP_RECEIPT_KIND = 9735;
const HEX64 = /^[0-9a-f]{64}$/;
/** Longest zap request accepted, characters (it becomes a BOLT11 description hash and a receipt tag). */
export const MAX_ZAP_REQUEST_CHARS = 16 * 1024;

export type ZapRequestCheck =
  | { ok: true; event: Event; sender: string; eventId: string | null; relays: string[] }
  | { ok: false; reason: string };

/** Appendix D: signature, tags, one `p` (= recipient), at most one `e`, `relays`, `amount` = the callback's, at most one `P`. */
export function checkZapRequest(json: string, expect: { recipient: string; amountMsats: number }): ZapRequestCheck {
  if (json.length > MAX_ZAP_REQUEST_CHARS) return { ok: false, reason: 'the zap request is too large' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { ok: false, reason: 'nostr is not a JSON event' };
  }
  const ev = asEvent(parsed);
  if (!ev) return { ok: false, reason: 'nostr is not a well-formed Nostr event' };
  if (ev.kind !== ZAP_REQUEST_KIND) return { ok: false, reason: 'nostr is not a kind 9734 zap request' };
  if (ev.tags.length === 0) return { ok: false, reason: 'the zap request has no tags' };
  if (!verifyEvent(ev)) return { ok: false, reason: 'the zap request has a bad id or signature' };
  const all = (name: string) => ev.tags.filter((t) => t[0] === name);
  const p = all('p');
  if (p.length !== 1) return { ok: false, reason: 'the zap request must have exactly one p tag' };
  if (p[0]![1] !== expect.recipient) return { ok: false, reason: 'the zap request is for another recipient (p tag)' };
  const e = all('e');
  if (e.length > 1) return { ok: false, reason: 'the zap request may have at most one e tag' };
  if (e.length === 1 && !HEX64.test(e[0]![1] ?? '')) return { ok: false, reason: 'the zap request e tag is not an event id' };
  if (all('P').length > 1) return { ok: false, reason: 'the zap request may have at most one P tag' };
  const amount = all('amount')[0]?.[1];
  if (amount !== undefined && amount !== String(expect.amountMsats)) return { ok: false, reason: `the zap request amount (${amount.slice(0, 20)}) differs from the amount asked for (${expect.amountMsats})` };
  const relays = (all('relays')[0] ?? []).slice(1);
  return { ok: true, event: ev, sender: ev.pubkey, eventId: e[0]?.[1] ?? null, relays };
}

/** Appendix E: `p` (and `e`, `a`) from the request, `P` = the sender, `bolt11`, `description` = the request, dated when paid. */
export function zapReceiptTemplate(a: { zapRequest: string; bolt11: string; paidAt: number }): EventTemplate {
  const req = JSON.parse(a.zapRequest) as Event;
  const tags: string[][] = [];
  for (const name of ['p', 'e', 'a']) {
    const t = req.tags.find((x) => x[0] === name);
    if (t?.[1]) tags.push([name, t[1]]);
  }
  tags.push(['P', req.pubkey], ['bolt11', a.bolt11], ['description', a.zapRequest]);
  return { kind: ZAP_RECEIPT_KIND, created_at: a.paidAt, tags, content: '' };
}
