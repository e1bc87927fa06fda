// The one refusal type: why the core will not do what was asked, as a code (what kind of no) and the
// words the customer reads. Transports map the code once each: to an HTTP status (http/errors.ts) and to
// a NIP-90 `error` feedback (the words, whose public prefix is the code's label).

export const REFUSAL_CODES = [
  'invalid', // the request itself is wrong (bad input, unknown size, bad key)
  'bid-too-low', // the NIP-90 bid is below the price
  'rate-limited', // too much open unpaid work from this client or in total
  'pow-required', // under load, a Nostr request must carry NIP-13 proof of work of the difficulty named
  'unavailable', // a backend cannot serve right now (payments, shutting down)
  'unauthorized', // bad or foreign credentials
  'caveat', // the credential is good but its caveats forbid this
  'payment-required', // a session balance cannot cover the request
  'not-found', // no such session / order
  'conflict', // the subject is in a state that does not allow this
  'gone', // handed over once and not kept
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/**
 * The prefix a customer sees before the words (NIP-90 `error` reasons keep the prefixes clients already
 * match on: `rate-limited:`, `unavailable:`, ...). The only part of an error shown in the clear for an
 * encrypted request.
 */
export const REFUSAL_LABELS: Readonly<Record<RefusalCode, string>> = {
  invalid: 'invalid',
  'bid-too-low': 'bid too low',
  'rate-limited': 'rate-limited',
  'pow-required': 'pow-required',
  unavailable: 'unavailable',
  unauthorized: 'unauthorized',
  caveat: 'caveat',
  'payment-required': 'payment-required',
  'not-found': 'not found',
  conflict: 'conflict',
  gone: 'gone',
};

/** A refusal. `message` is the whole text the customer reads, prefix included. */
export class Refusal extends Error {
  override name = 'Refusal';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }

  /** A refusal whose words start with the code's label (`rate-limited: ...`). */
  static of(code: RefusalCode, detail: string): Refusal {
    return new Refusal(code, `${REFUSAL_LABELS[code]}: ${detail}`);
  }
}
