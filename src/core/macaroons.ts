// Macaroon credentials for pre-funded sessions (SPEC 6), in the L402 layout. Pure: no store, no clock
// (the caller passes `now`), no network. The root key is the caller's to keep.
//
// Format: v2 binary macaroons (npm `macaroon`, go-macaroon compatible), sent as standard padded base64.
// Identifier (L402 / aperture "version 0"): uint16 BE version | 32-byte payment hash | 32-byte token id.
// First-party caveats are `key=value`: session_id, expires_at (unix s), max_sats_per_request, ops (a
// comma-separated list of the operations the token may do: request, topup, read, close; absent = all).
//
// Unlike the L402 recommendation (skip unknown caveats), verification here fails closed on any caveat it
// does not understand: a holder who attenuates with a key we do not know expects a restriction, and
// silently ignoring it would hand on more authority than they meant to.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

/** The slice of npm `macaroon` (v3, untyped) this module uses. */
interface Caveat {
  identifier: Uint8Array;
  location?: string;
  vid?: Uint8Array;
}
interface Macaroon {
  readonly location: string;
  readonly identifier: Uint8Array;
  readonly caveats: Caveat[];
  readonly signature: Uint8Array;
  addFirstPartyCaveat(condition: string | Uint8Array): void;
  verify(rootKey: Uint8Array, check: (condition: string) => string | null, discharges?: Macaroon[]): void;
  // exportBinary() is deliberately absent: in 3.0.4 its buffer doubles on every append (js-macaroon
  // issue #41, fixed upstream but never released), ~400 MB for three caveats. encodeV2 below replaces it.
}
interface MacaroonLib {
  newMacaroon(args: { identifier: Uint8Array; rootKey: Uint8Array; location?: string; version?: 1 | 2 }): Macaroon;
  importMacaroon(obj: Uint8Array | object): Macaroon;
  base64ToBytes(s: string): Uint8Array;
}
// createRequire because the package is CommonJS without type declarations; the interface above is its contract.
const lib = createRequire(import.meta.url)('macaroon') as MacaroonLib;

export class MacaroonError extends Error {
  override name = 'MacaroonError';
}

export interface SessionCaveats {
  sessionId: string;
  expiresAt: number; // unix s
  maxSatsPerRequest?: number;
}

export interface DecodedMacaroon {
  version: number; // identifier version (0)
  paymentHash: string; // hex
  tokenId: string; // hex
  caveats: string[];
}

export type VerifyResult =
  | { ok: true; sessionId: string; paymentHash: string; tokenId: string; maxSatsPerRequest: number | null; expiresAt: number }
  | { ok: false; reason: string };

export type Authorization =
  | { scheme: 'bearer'; macaroon: string }
  | { scheme: 'l402'; macaroon: string; preimage: string };

const ID_VERSION = 0;
const ID_LENGTH = 2 + 32 + 32;
const ROOT_KEY_BYTES = 32;
// Headers are bounded anyway; this keeps a hostile input from costing more than a few HMACs.
const MAX_MACAROON_CHARS = 8192;
const MAX_CAVEAT_CHARS = 512;
const HEX64 = /^[0-9a-fA-F]{64}$/;
const BASE64_CHARS = /^[A-Za-z0-9+/_-]+={0,2}$/;
const UINT = /^(0|[1-9][0-9]{0,14})$/; // at most 15 digits: always a safe integer

export function generateRootKey(): Uint8Array {
  return new Uint8Array(randomBytes(ROOT_KEY_BYTES));
}

// ---- minting and serialisation -------------------------------------------------------------------

export function mintSessionMacaroon(
  rootKey: Uint8Array,
  args: { paymentHash: string; tokenId?: Uint8Array; caveats: SessionCaveats; location?: string },
): string {
  requireRootKey(rootKey);
  const conditions = sessionConditions(args.caveats);
  if (!HEX64.test(args.paymentHash)) throw new MacaroonError('payment hash must be 32 bytes of hex');
  if (args.tokenId && args.tokenId.length !== 32) throw new MacaroonError('token id must be 32 bytes');
  const mint = (tokenId: Uint8Array): string => {
    const m = lib.newMacaroon({ identifier: l402Identifier(args.paymentHash, tokenId), rootKey, location: args.location, version: 2 });
    for (const c of conditions) m.addFirstPartyCaveat(c);
    return serialise(m);
  };
  if (args.tokenId) return mint(args.tokenId);
  // @getalby/lightning-tools' parseL402 deletes the first "L402" and the first "LSAT" found anywhere in
  // the challenge; after the scheme, a token containing "LSAT" (or "L402", under an LSAT scheme) would
  // reach the client corrupted. About 1 macaroon in 40k contains one; a fresh token id costs nothing.
  let text = mint(randomBytes(32));
  for (let i = 0; i < 8 && /L402|LSAT/.test(text); i++) text = mint(randomBytes(32));
  return text;
}

function sessionConditions(c: SessionCaveats): string[] {
  if (typeof c.sessionId !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(c.sessionId)) {
    throw new MacaroonError('session id must be 1-128 printable ASCII characters');
  }
  if (!Number.isSafeInteger(c.expiresAt) || c.expiresAt < 0) throw new MacaroonError('expiresAt must be a unix time in seconds');
  const out = [`session_id=${c.sessionId}`, `expires_at=${c.expiresAt}`];
  if (c.maxSatsPerRequest !== undefined) {
    if (!Number.isSafeInteger(c.maxSatsPerRequest) || c.maxSatsPerRequest < 0) {
      throw new MacaroonError('maxSatsPerRequest must be a non-negative integer');
    }
    out.push(`max_sats_per_request=${c.maxSatsPerRequest}`);
  }
  return out;
}

function l402Identifier(paymentHashHex: string, tokenId: Uint8Array): Uint8Array {
  const id = new Uint8Array(ID_LENGTH);
  new DataView(id.buffer).setUint16(0, ID_VERSION, false);
  id.set(Buffer.from(paymentHashHex, 'hex'), 2);
  id.set(tokenId, 34);
  return id;
}

function serialise(m: Macaroon): string {
  return encodeV2(m).toString('base64');
}

/**
 * The v2 binary format (go-macaroon / libmacaroons): version byte 2; fields are type byte, uvarint
 * length, bytes; EOS (0) closes the header, each caveat and the caveat list; the signature comes last.
 */
function encodeV2(m: Macaroon): Buffer {
  const out: Buffer[] = [Buffer.of(2)];
  const field = (type: number, data: Uint8Array): void => {
    out.push(Buffer.of(type), uvarint(data.length), Buffer.from(data));
  };
  const eos = (): void => void out.push(Buffer.of(0));
  if (m.location) field(1, Buffer.from(m.location, 'utf8'));
  field(2, m.identifier);
  eos();
  for (const c of m.caveats) {
    if (c.location) field(1, Buffer.from(c.location, 'utf8'));
    field(2, c.identifier);
    if (c.vid) field(4, c.vid);
    eos();
  }
  eos();
  field(6, m.signature);
  return Buffer.concat(out);
}

function uvarint(n: number): Buffer {
  const bytes: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n & 0x7f) | 0x80);
  bytes.push(n);
  return Buffer.from(bytes);
}

function requireRootKey(rootKey: Uint8Array): void {
  // A wrong key here is a wiring mistake, not a bad credential: say so loudly instead of "invalid signature".
  if (!(rootKey instanceof Uint8Array) || rootKey.length !== ROOT_KEY_BYTES) {
    throw new MacaroonError(`root key must be ${ROOT_KEY_BYTES} bytes`);
  }
}

// ---- decoding ------------------------------------------------------------------------------------

/** Parses without verifying: what the macaroon claims, for display and routing. */
export function decodeMacaroon(text: string): DecodedMacaroon {
  return describe(importText(text));
}

/** The holder's move: add a first-party caveat (a narrower macaroon); no root key needed. */
export function attenuate(text: string, caveat: string): string {
  if (typeof caveat !== 'string' || caveat.length === 0 || caveat.length > MAX_CAVEAT_CHARS || /[\x00-\x1f\x7f]/.test(caveat)) {
    throw new MacaroonError(`a caveat must be 1-${MAX_CAVEAT_CHARS} characters without control characters`);
  }
  const m = importText(text);
  describe(m); // only hand on what we would accept
  m.addFirstPartyCaveat(caveat);
  return serialise(m);
}

function importText(text: unknown): Macaroon {
  if (typeof text !== 'string') throw new MacaroonError('macaroon must be a string');
  const s = text.trim();
  if (s.length === 0) throw new MacaroonError('empty macaroon');
  if (s.length > MAX_MACAROON_CHARS) throw new MacaroonError('macaroon too long');
  // The package's importMacaroon reads strings as base64 binary only; JSON needs parsing first.
  if (s.startsWith('{')) return importJson(s);
  if (!BASE64_CHARS.test(s)) throw new MacaroonError('not base64');
  let bytes: Uint8Array;
  try {
    bytes = lib.base64ToBytes(s); // standard or URL-safe, padded or not; strict otherwise
  } catch {
    throw new MacaroonError('not base64');
  }
  try {
    return lib.importMacaroon(new Uint8Array(bytes));
  } catch {
    throw new MacaroonError('not a macaroon (v2 binary)');
  }
}

function importJson(s: string): Macaroon {
  let obj: unknown;
  try {
    obj = JSON.parse(s);
  } catch {
    throw new MacaroonError('not base64 or JSON');
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new MacaroonError('not a macaroon (JSON)');
  // The package reads an object with `signature` as v1 JSON; only v2 is supported here.
  if ('signature' in obj) throw new MacaroonError('not a macaroon (v2 JSON)');
  try {
    return lib.importMacaroon(obj);
  } catch {
    throw new MacaroonError('not a macaroon (v2 JSON)');
  }
}

function describe(m: Macaroon): DecodedMacaroon {
  const id = m.identifier;
  if (id.length !== ID_LENGTH) throw new MacaroonError('identifier not in L402 layout (want 66 bytes)');
  const version = new DataView(id.buffer, id.byteOffset, id.byteLength).getUint16(0, false);
  if (version !== ID_VERSION) throw new MacaroonError(`unsupported identifier version ${version}`);
  return {
    version,
    paymentHash: Buffer.from(id.subarray(2, 34)).toString('hex'),
    tokenId: Buffer.from(id.subarray(34, 66)).toString('hex'),
    caveats: m.caveats.map(caveatText),
  };
}

function caveatText(c: Caveat): string {
  if (c.vid) throw new MacaroonError('third-party caveats are not supported');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(c.identifier);
  } catch {
    throw new MacaroonError('caveat is not UTF-8 text');
  }
}

// ---- verification --------------------------------------------------------------------------------

/**
 * Signature chain first, caveats second: a forged or tampered macaroon is always "invalid signature",
 * never a hint about which of its caveats would have failed.
 */
export function verifySessionMacaroon(
  rootKey: Uint8Array,
  text: string,
  ctx: { now: number; sessionId?: string; requestSats?: number; op?: SessionOp },
): VerifyResult {
  requireRootKey(rootKey);
  let m: Macaroon;
  let decoded: DecodedMacaroon;
  try {
    m = importText(text);
    decoded = describe(m);
  } catch (err) {
    if (err instanceof MacaroonError) return { ok: false, reason: `malformed macaroon: ${err.message}` };
    throw err;
  }
  const conditions = verifiedConditions(m, rootKey);
  if (!conditions) return { ok: false, reason: 'invalid signature' };
  const c = enforceCaveats(conditions, ctx);
  if (!c.ok) return c;
  return { ok: true, sessionId: c.sessionId, paymentHash: decoded.paymentHash, tokenId: decoded.tokenId, maxSatsPerRequest: c.maxSats, expiresAt: c.expiresAt };
}

/** The caveats exactly as the verified chain signed them, or null when the chain does not verify. */
function verifiedConditions(m: Macaroon, rootKey: Uint8Array): string[] | null {
  const seen: string[] = [];
  try {
    // The checker only records: judging caveats inside the walk would report a caveat failure before
    // the final signature comparison, i.e. tell a forger which caveat to change.
    m.verify(rootKey, (condition) => {
      seen.push(condition);
      return null;
    });
    return seen;
  } catch {
    return null;
  }
}

type Enforced = { ok: true; sessionId: string; expiresAt: number; maxSats: number | null } | { ok: false; reason: string };

/** What a session token can be used for; an `ops` caveat limits a token to some of them. */
export const SESSION_OPS = ['request', 'topup', 'read', 'close'] as const;
export type SessionOp = (typeof SESSION_OPS)[number];

function enforceCaveats(conditions: string[], ctx: { now: number; sessionId?: string; requestSats?: number; op?: SessionOp }): Enforced {
  const sessions = new Set<string>();
  const expiries: number[] = [];
  const maxSats: number[] = [];
  const opLists: string[][] = [];
  for (const cond of conditions) {
    const eq = cond.indexOf('=');
    if (eq <= 0) return { ok: false, reason: 'malformed caveat' };
    const key = cond.slice(0, eq).trim(); // `ops = request` and `ops=request` alike
    const value = cond.slice(eq + 1).trim();
    if (key === 'ops') {
      opLists.push(value.split(',').map((o) => o.trim()).filter(Boolean));
    } else if (key === 'session_id') {
      if (value === '') return { ok: false, reason: 'malformed caveat session_id' };
      sessions.add(value);
    } else if (key === 'expires_at' || key === 'max_sats_per_request') {
      if (!UINT.test(value)) return { ok: false, reason: `malformed caveat ${key}` };
      (key === 'expires_at' ? expiries : maxSats).push(Number(value));
    } else {
      return { ok: false, reason: `unknown caveat ${printableKey(key)}`.trimEnd() };
    }
  }
  const [sessionId, ...others] = [...sessions];
  if (sessionId === undefined) return { ok: false, reason: 'no session_id caveat' };
  if (others.length > 0) return { ok: false, reason: 'conflicting session_id caveats' };
  if (ctx.sessionId !== undefined && ctx.sessionId !== sessionId) return { ok: false, reason: 'macaroon is for another session' };
  // Attenuation can only narrow: the earliest expiry and the smallest cap win, whatever order they came in.
  if (expiries.length === 0) return { ok: false, reason: 'no expires_at caveat' };
  const expiresAt = Math.min(...expiries);
  if (expiresAt <= ctx.now) return { ok: false, reason: 'expired' };
  const cap = maxSats.length > 0 ? Math.min(...maxSats) : null;
  if (cap !== null && ctx.requestSats !== undefined && ctx.requestSats > cap) {
    return { ok: false, reason: `caveat max_sats_per_request=${cap} exceeded` };
  }
  // Every ops caveat must allow the operation (attenuation narrows: the lists intersect).
  if (ctx.op !== undefined) {
    const denying = opLists.find((ops) => !ops.includes(ctx.op!));
    if (denying) return { ok: false, reason: `caveat ops=${denying.filter((o) => /^[a-z]{1,16}$/.test(o)).join(',')} does not allow ${ctx.op}` };
  }
  return { ok: true, sessionId, expiresAt, maxSats: cap };
}

/** Names an unknown key in a reason only when it is short and plain, so reasons never carry arbitrary text. */
function printableKey(key: string): string {
  return /^[A-Za-z0-9_.-]{1,32}$/.test(key) ? key : '';
}

// ---- HTTP headers --------------------------------------------------------------------------------

/**
 * `Bearer <mac>`, `L402 <mac>:<preimage hex>` and the legacy `LSAT <mac>:<preimage hex>`; the scheme is
 * case-insensitive. Null for anything else, so the route answers one clear 401.
 */
export function parseAuthorization(header: string | undefined): Authorization | null {
  if (typeof header !== 'string' || header.length > MAX_MACAROON_CHARS + 128) return null;
  const m = /^\s*([A-Za-z0-9]+)[ \t]+(\S+)\s*$/.exec(header);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  const cred = m[2]!;
  if (scheme === 'bearer') return BASE64_CHARS.test(cred) ? { scheme: 'bearer', macaroon: cred } : null;
  if (scheme !== 'l402' && scheme !== 'lsat') return null;
  const colon = cred.lastIndexOf(':');
  const macaroon = cred.slice(0, colon);
  const preimage = cred.slice(colon + 1);
  // One macaroon only: the multi-macaroon (comma) form is for discharges, which we never issue.
  if (colon <= 0 || !BASE64_CHARS.test(macaroon) || !HEX64.test(preimage)) return null;
  return { scheme: 'l402', macaroon, preimage: preimage.toLowerCase() };
}

/**
 * WWW-Authenticate values for a 402, newest form first. Send both (two headers, or one joined with
 * ", "): current clients read `token`, older ones `macaroon`. @getalby/lightning-tools 9 fetchWithL402
 * reads the joined value (fetch's Headers.get joins repeated headers with ", "), takes `token`, and
 * retries with `Authorization: L402 <token>:<preimage as its wallet returned it>`.
 */
export function l402Challenge(macaroon: string, bolt11: string): string[] {
  // Both values end up inside quoted-strings: refuse anything that could break out of them.
  if (!BASE64_CHARS.test(macaroon)) throw new MacaroonError('macaroon must be base64');
  if (!/^[A-Za-z0-9]+$/.test(bolt11)) throw new MacaroonError('invoice must be a bech32 payment request');
  return [
    `L402 version="0", token="${macaroon}", invoice="${bolt11}"`,
    `L402 macaroon="${macaroon}", invoice="${bolt11}"`,
  ];
}
