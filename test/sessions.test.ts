// Pre-funded sessions: L402 with Alby's real client, debits by actual usage, concurrency, top-ups,
// credential attacks, a crash during a reservation, and sessions bound to a Nostr pubkey.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchWithL402 } from '@getalby/lightning-tools';
import { startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, paymentHash, tag } from './helpers/customer.ts';
import { query, queryOne } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';
import { attenuate, generateRootKey, mintSessionMacaroon } from '../src/core/macaroons.ts';
import { actualCostUsd, usdToSats } from '../src/pricing/pricing.ts';

let relay: RelayProc;
let daemon: DaemonProc;

beforeAll(async () => {
  relay = await startRelay();
  daemon = await startDaemon({ relays: [relay.url], env: { L402_DEPOSIT_SATS: '30', MAX_OPEN_UNPAID_PER_CLIENT: '50' } });
});
afterAll(async () => {
  await daemon?.kill();
  await relay?.stop();
});

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

async function api(d: DaemonProc, method: string, path: string, body?: unknown, auth?: string): Promise<{ status: number; body: Json; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) headers.authorization = auth;
  const res = await fetch(`${d.api}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function payStubHash(d: DaemonProc, hash: string): Promise<string> {
  const r = await api(d, 'POST', `/api/dev/stub/pay/${hash}`);
  if (r.status !== 200) throw new Error(`pay: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.preimage;
}

/** An active session with `sats` deposited. */
async function fundedSession(d: DaemonProc, sats: number, pubkey?: string) {
  const created = await api(d, 'POST', '/api/sessions', { amountSats: sats, ...(pubkey ? { pubkey } : {}) });
  expect(created.status).toBe(201);
  await payStubHash(d, created.body.depositInvoice.paymentHash);
  const bearer = `Bearer ${created.body.macaroon}`;
  await waitFor(async () => (await api(d, 'GET', `/api/sessions/${created.body.sessionId}`, undefined, bearer)).body.state === 'active', 'session active');
  return { id: created.body.sessionId as string, macaroon: created.body.macaroon as string, bearer };
}

async function ledgerSum(d: DaemonProc, id: string): Promise<number> {
  return (await queryOne<{ s: number }>(d.dataDir, 'select coalesce(sum(amount_msats),0) s from session_ledger where session_id = ?', id))!.s;
}

describe('L402 with @getalby/lightning-tools', () => {
  it('402 -> pay -> 200; the credential is reused without paying; when spent, a 402 for a top-up of the same session', async () => {
    const paid: string[] = [];
    const wallet = {
      payInvoice: async ({ invoice }: { invoice: string }) => {
        paid.push(invoice);
        return { preimage: await payStubHash(daemon, paymentHash(invoice)) };
      },
    };
    // fetchWithL402 mutates the init it is given: a fresh one per call.
    const init = () => ({ method: 'POST', headers: { 'content-type': 'application/json' } as Record<string, string>, body: JSON.stringify({ request: 'hi' }) });
    const url = `${daemon.api}/api/l402/request`;
    const first = await fetchWithL402(url, init(), { wallet });
    expect(first.status).toBe(200);
    const firstBody = (await first.json()) as Json;
    expect(firstBody.result).toContain('stub agent');
    expect(paid).toHaveLength(1);
    const credentials = first.payment!.credentials!;

    // Reuse until the 30-sat deposit is spent.
    let last: Response | null = null;
    for (let i = 0; i < 20; i++) {
      last = await fetchWithL402(url, init(), { wallet: { payInvoice: async () => ({ preimage: '00'.repeat(32) }) }, credentials });
      if (last.status !== 200) break;
    }
    expect(paid).toHaveLength(1);
    expect(last!.status).toBe(402);
    const challenge = last!.headers.get('www-authenticate')!;
    expect(challenge).toMatch(/^L402 version="0", token="[^"]+", invoice="lnbcrt/);
    const topup = (await last!.json()) as Json;
    // Asking again while that top-up is open hands out the same invoice, not a new one.
    const again402 = await fetchWithL402(url, init(), { wallet: { payInvoice: async () => ({ preimage: '00'.repeat(32) }) }, credentials });
    expect(again402.status).toBe(402);
    expect(((await again402.json()) as Json).invoice.paymentHash).toBe(topup.invoice.paymentHash);
    const sessionId = (await queryOne<{ session_id: string }>(daemon.dataDir, "select subject_id as session_id from invoice_book where subject_kind = 'session' and payment_hash = ?", topup.invoice.paymentHash))!.session_id;
    const firstSession = (await queryOne<{ session_id: string }>(daemon.dataDir, "select subject_id as session_id from invoice_book where subject_kind = 'session' and purpose = 'deposit' and payment_hash = ?", paymentHash(paid[0]!)))!.session_id;
    expect(sessionId).toBe(firstSession);

    // Paying that top-up (as the wallet would) and presenting its macaroon revives the same session.
    const preimage = await payStubHash(daemon, topup.invoice.paymentHash);
    const i = init();
    i.headers.authorization = `L402 ${topup.macaroon}:${preimage}`;
    const revived = await fetch(url, i);
    expect(revived.status).toBe(200);
    const balance = (await queryOne<{ s: number }>(daemon.dataDir, 'select sum(amount_msats) s from session_ledger where session_id = ?', sessionId))!.s;
    expect(balance).toBe((await revived.json() as Json).balanceSats * 1000);
  });
});

describe('debits', () => {
  it('debit = actual usage priced per SPEC 5, rounded up; deposits - debits = balance; the ledger lists each', async () => {
    const s = await fundedSession(daemon, 1000);
    const r = await api(daemon, 'POST', `/api/sessions/${s.id}/request`, { request: 'Explain a UTXO.' }, s.bearer);
    expect(r.status).toBe(200);
    const ledger = r.body.costLedger;
    const pricing = { work: { model: 'm', inputUsdPerMtok: 3, outputUsdPerMtok: 15 }, infraMonthlyUsd: 20, infraMonthlyRequests: 10_000, marginPct: 20, minWorkFeeSats: 1 };
    const expected = usdToSats(actualCostUsd(pricing, ledger.actualInputTokens, ledger.actualOutputTokens), 100_000);
    expect(ledger.chargedSats).toBe(expected);
    expect(r.body.balanceSats).toBe(1000 - expected);

    const l = await api(daemon, 'GET', `/api/sessions/${s.id}/ledger`, undefined, s.bearer);
    expect(l.body.entries.map((e: Json) => e.kind)).toEqual(['deposit', 'reserve', 'release', 'debit']);
    expect(l.body.balanceMsats).toBe((1000 - expected) * 1000);
    expect(l.body.entries.find((e: Json) => e.kind === 'debit').amountMsats).toBe(-expected * 1000);
    expect(await ledgerSum(daemon, s.id)).toBe(l.body.balanceMsats);
    const view = await api(daemon, 'GET', `/api/sessions/${s.id}`, undefined, s.bearer);
    expect(view.body).toMatchObject({ sessionId: s.id, state: 'active', balanceSats: 1000 - expected });
    expect(Date.parse(view.body.expiresAt)).toBeGreaterThan(Date.now() + 29 * 86_400_000); // SESSION_TTL_S: 30 days
  });

  it('200 concurrent requests against a balance that covers some: never negative, each served or refused with 402, ledger exact', async () => {
    const s = await fundedSession(daemon, 60);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => api(daemon, 'POST', `/api/sessions/${s.id}/request`, { request: `question ${i}` }, s.bearer)),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 402);
    expect(ok.length + refused.length).toBe(200);
    expect(ok.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    const debited = ok.reduce((sum, r) => sum + r.body.costLedger.chargedSats, 0);
    const balance = await ledgerSum(daemon, s.id);
    expect(balance).toBeGreaterThanOrEqual(0);
    expect(balance).toBe((60 - debited) * 1000);
    const kinds = await query<{ kind: string; n: number }>(daemon.dataDir, 'select kind, count(*) n from session_ledger where session_id = ? group by kind', s.id);
    const count = (k: string) => kinds.find((x) => x.kind === k)?.n ?? 0;
    expect(count('reserve')).toBe(ok.length);
    expect(count('release')).toBe(ok.length);
    expect(count('debit')).toBe(ok.length);
  });

  it('a top-up reported twice credits once; top-ups racing debits lose nothing', async () => {
    const s = await fundedSession(daemon, 20);
    const t = await api(daemon, 'POST', `/api/sessions/${s.id}/topup`, { amountSats: 50 }, s.bearer);
    expect(t.status).toBe(200);
    await payStubHash(daemon, t.body.invoice.paymentHash);
    await payStubHash(daemon, t.body.invoice.paymentHash); // reported again
    await waitFor(async () => (await ledgerSum(daemon, s.id)) === 70_000, 'top-up credited');

    const topups = await Promise.all(Array.from({ length: 10 }, () => api(daemon, 'POST', `/api/sessions/${s.id}/topup`, { amountSats: 5 }, s.bearer)));
    const work = Array.from({ length: 20 }, (_, i) => api(daemon, 'POST', `/api/sessions/${s.id}/request`, { request: `race ${i}` }, s.bearer));
    const pays = topups.map((tp) => payStubHash(daemon, tp.body.invoice.paymentHash));
    const [results] = await Promise.all([Promise.all(work), Promise.all(pays)]);
    await waitFor(async () => (await queryOne<{ n: number }>(daemon.dataDir, "select count(*) n from session_ledger where session_id = ? and kind = 'topup'", s.id))!.n === 11, 'all top-ups in the ledger');
    const debited = results.filter((r) => r.status === 200).reduce((sum, r) => sum + r.body.costLedger.chargedSats, 0);
    expect(await ledgerSum(daemon, s.id)).toBe((20 + 50 + 10 * 5 - debited) * 1000);
  });
});

describe('credentials', () => {
  it('tampered, stripped, expired, foreign, other-root-key and over-cap macaroons get 401 and nothing is debited', async () => {
    const a = await fundedSession(daemon, 500);
    const b = await fundedSession(daemon, 500);
    const before = await ledgerSum(daemon, a.id);
    const rootKey = new Uint8Array(Buffer.from(readFileSync(join(daemon.dataDir, 'macaroon.key'), 'utf8').trim(), 'hex'));
    const raw = Buffer.from(a.macaroon, 'base64');
    const tampered = Buffer.from(raw);
    tampered[tampered.length - 1]! ^= 1;
    const stripped = mintSessionMacaroon(generateRootKey(), { paymentHash: 'ab'.repeat(32), caveats: { sessionId: a.id, expiresAt: 2_000_000_000 } });
    const expired = mintSessionMacaroon(rootKey, { paymentHash: 'ab'.repeat(32), caveats: { sessionId: a.id, expiresAt: Math.floor(Date.now() / 1000) - 1 } });
    // "caveat stripped": a legitimately minted macaroon's bytes with its last caveat cut out keeps the old signature.
    const withCap = attenuate(a.macaroon, 'max_sats_per_request=1');
    const cases: [string, string, RegExp][] = [
      ['tampered signature', `Bearer ${tampered.toString('base64')}`, /invalid signature/],
      ['another root key', `Bearer ${stripped}`, /invalid signature/],
      ['expired', `Bearer ${expired}`, /expired/],
      ["another session's macaroon", b.bearer, /another session/],
      ['max_sats_per_request exceeded', `Bearer ${withCap}`, /max_sats_per_request=1 exceeded/],
      ['garbage', 'Bearer !!!notamacaroon', /malformed|unauthorized/],
      ['no credential', '', /unauthorized/],
      ['L402 with a preimage of no invoice of the session', `L402 ${a.macaroon}:${'11'.repeat(32)}`, /preimage/],
    ];
    for (const [name, auth, reason] of cases) {
      const r = await api(daemon, 'POST', `/api/sessions/${a.id}/request`, { request: 'hi' }, auth || undefined);
      expect(r.status, name).toBe(401);
      expect(r.body.error, name).toMatch(reason);
      expect(r.headers.get('www-authenticate'), name).toBeNull();
    }
    // A caveat stripped from the binary form: cut the last caveat of an attenuated macaroon, keep the signature.
    const att = Buffer.from(attenuate(a.macaroon, 'max_sats_per_request=2'), 'base64');
    const marker = Buffer.from('max_sats_per_request=2');
    const at = att.indexOf(marker);
    const strippedBin = Buffer.concat([att.subarray(0, at - 2), att.subarray(at + marker.length + 1)]);
    const r = await api(daemon, 'POST', `/api/sessions/${a.id}/request`, { request: 'hi' }, `Bearer ${strippedBin.toString('base64')}`);
    expect(r.status).toBe(401);
    expect(await ledgerSum(daemon, a.id)).toBe(before);
  });
});

describe('ops caveat (issue 14, item 12)', () => {
  it('a token attenuated to ops=request can spend, and cannot top up, read the ledger or close the session', async () => {
    const a = await fundedSession(daemon, 500);
    const spender = `Bearer ${attenuate(a.macaroon, 'ops=request')}`;
    expect((await api(daemon, 'POST', `/api/sessions/${a.id}/request`, { request: 'hi' }, spender)).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', `/api/sessions/${a.id}/topup`, { amountSats: 10 }],
      ['GET', `/api/sessions/${a.id}`, undefined],
      ['GET', `/api/sessions/${a.id}/ledger`, undefined],
      ['DELETE', `/api/sessions/${a.id}`, undefined],
    ] as const) {
      const r = await api(daemon, method, path, body, spender);
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(r.body.error).toMatch(/^unauthorized: caveat ops=request does not allow (topup|read|close)$/);
    }
    expect((await api(daemon, 'GET', `/api/sessions/${a.id}`, undefined, a.bearer)).body.state).toBe('active'); // the full token still can
  });
});

describe('crash during a reserved request', () => {
  it('SIGKILL while reserved: after restart the reservation is released and the balance is right', async () => {
    const dataDir = tempDir();
    const d1 = await startDaemon({ relays: [relay.url], dataDir, env: { STUB_AI_DELAY_MS: '60000' } });
    const s = await fundedSession(d1, 100);
    const pending = api(d1, 'POST', `/api/sessions/${s.id}/request`, { request: 'slow one' }, s.bearer).catch(() => null);
    await waitFor(() => queryOne(dataDir, "select 1 from session_ledger where session_id = ? and kind = 'reserve'", s.id), 'reserved');
    expect(await ledgerSum(d1, s.id)).toBeLessThan(100_000);
    await d1.kill('SIGKILL');
    await pending;
    const d2 = await startDaemon({ relays: [relay.url], dataDir });
    try {
      await waitFor(async () => (await ledgerSum(d2, s.id)) === 100_000, 'reservation released');
      const kinds = (await query<{ kind: string }>(dataDir, 'select kind from session_ledger where session_id = ? order by id', s.id)).map((k) => k.kind);
      expect(kinds).toEqual(['deposit', 'reserve', 'release']);
      const view = await api(d2, 'GET', `/api/sessions/${s.id}`, undefined, s.bearer);
      expect(view.body.balanceSats).toBe(100);
    } finally {
      await d2.kill();
    }
  });
});

describe('sessions over Nostr', () => {
  it('the bound pubkey is debited (result carries balance); another pubkey naming the session is refused', async () => {
    const owner = await new Customer([relay.url], daemon.pubkey).connect();
    const other = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const s = await fundedSession(daemon, 200, owner.pubkey);
      const req = await owner.request('hello from my session', [['param', 'session', s.id]]);
      const [processing] = await owner.waitForFeedback(req.id, 'processing');
      expect(owner.feedback(req.id, 'payment-required')).toHaveLength(0);
      expect(tag(processing!, 'status')?.[2]).toMatch(/Reserved up to/);
      const result = await owner.waitForResult(req.id);
      const charged = JSON.parse(tag(result, 'cost_ledger')![1]!).chargedSats;
      expect(tag(result, 'balance')?.[1]).toBe(String((200 - charged) * 1000));
      expect(await ledgerSum(daemon, s.id)).toBe((200 - charged) * 1000);

      const before = await ledgerSum(daemon, s.id);
      const stolen = await other.request('spend their money', [['param', 'session', s.id]]);
      const [err] = await other.waitForFeedback(stolen.id, 'error');
      expect(tag(err!, 'status')?.[2]).toMatch(/^unauthorized: /);
      expect(other.feedback(stolen.id, 'payment-required')).toHaveLength(0);
      expect(await ledgerSum(daemon, s.id)).toBe(before);
    } finally {
      owner.close();
      other.close();
    }
  });
});
