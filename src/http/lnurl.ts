// Timmy as its own zap endpoint (NIP-57 over LUD-06/LUD-16): `GET /.well-known/lnurlp/<ZAP_NAME>` answers
// LNURL-pay with `allowsNostr` and Timmy's `nostrPubkey`; its callback checks the zap request (Appendix D)
// and returns an invoice committing to the request's SHA-256. Errors are LNURL's {status: "ERROR", reason}.
// Only mounted with PUBLIC_URL set: the callback must be reachable where wallets can see it.
import type { Context } from 'hono';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { Refusal } from '../core/refusal.ts';
import type { ZapService } from '../core/zaps.ts';
import { checkZapRequest } from '../nostr/zaps.ts';
import { REFUSAL_STATUS } from './errors.ts';

export interface LnurlDeps {
  zaps: Pick<ZapService, 'invoiceFor' | 'invoiceForTip'>;
  /** The HTTP API's public base (PUBLIC_URL), without a trailing slash. */
  publicUrl: string;
  name: string;
  pubkey: string; // hex: the zap receipts' signer
  minSendableMsats: number;
  maxSendableMsats: number;
  /** The relay URLs of a zap request that receipts may be sent to (the relay policy). */
  acceptRelays(urls: string[]): string[];
}

const lnurlError = (c: Context, status: 400 | 404 | 429 | 503 | 409 | 401 | 402 | 410, reason: string) => c.json({ status: 'ERROR', reason }, status);

export function mountLnurlRoutes(app: OpenAPIHono, d: LnurlDeps): void {
  const host = new URL(d.publicUrl).host;
  const metadata = JSON.stringify([
    ['text/plain', 'Pay Timmy, a paid AI agent on Nostr (zap a payment-required event to pay that job)'],
    ['text/identifier', `${d.name}@${host}`],
  ]);

  app.get('/.well-known/lnurlp/:name', (c) => {
    if (c.req.param('name') !== d.name) return lnurlError(c, 404, `no such user: ${c.req.param('name').slice(0, 64)}`);
    return c.json({
      tag: 'payRequest',
      callback: `${d.publicUrl}/lnurlp/${encodeURIComponent(d.name)}/callback`,
      minSendable: d.minSendableMsats,
      maxSendable: d.maxSendableMsats,
      metadata,
      allowsNostr: true,
      nostrPubkey: d.pubkey,
      commentAllowed: 0,
    });
  });

  app.get('/lnurlp/:name/callback', async (c) => {
    if (c.req.param('name') !== d.name) return lnurlError(c, 404, `no such user: ${c.req.param('name').slice(0, 64)}`);
    const raw = c.req.query('amount') ?? '';
    const amountMsats = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(amountMsats)) return lnurlError(c, 400, 'amount (msats) is required and must be a whole number');
    if (amountMsats < d.minSendableMsats || amountMsats > d.maxSendableMsats) {
      return lnurlError(c, 400, `amount must be between ${d.minSendableMsats} and ${d.maxSendableMsats} msats`);
    }
    if (amountMsats % 1000 !== 0) return lnurlError(c, 400, 'amount must be whole sats (a multiple of 1000 msats)');
    const nostr = c.req.query('nostr');
    try {
      if (nostr === undefined) return c.json({ pr: await d.zaps.invoiceForTip(metadata, amountMsats), routes: [] });
      const check = checkZapRequest(nostr, { recipient: d.pubkey, amountMsats });
      if (!check.ok) return lnurlError(c, 400, check.reason);
      const pr = await d.zaps.invoiceFor(
        { id: check.event.id, sender: check.sender, targetEventId: check.eventId, json: nostr, relays: d.acceptRelays(check.relays) },
        amountMsats,
      );
      return c.json({ pr, routes: [] });
    } catch (err) {
      if (err instanceof Refusal) return lnurlError(c, REFUSAL_STATUS[err.code] as 400, err.message);
      throw err;
    }
  });
}
