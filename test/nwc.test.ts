// The NWC (NIP-47) payment backend against a fake wallet service on a real relay: invoices, settlements by
// notification and by lookup, NIP-44 and NIP-04 wallets, the quirks of real wallets, lost notifications
// recovered after a relay outage, and connection strings that cannot work.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { decode } from 'light-bolt11-decoder';
import { NwcPayments, NwcWalletError, parseNwcUrl, NwcUrlError } from '../src/payments/nwc.ts';
import { initCrypto } from '../src/nostr/crypto.ts';
import { createLogger } from '../src/log.ts';
import { startRelay, type RelayProc } from './helpers/procs.ts';
import { FakeNwcWallet, type FakeWalletOptions } from './fakes/nwc-wallet.ts';
import { TIME_SCALE, waitFor } from './helpers/wait.ts';

const log = createLogger('silent', pino.destination({ dest: '/dev/null', sync: true }));
let relay: RelayProc | undefined;
let wallet: FakeNwcWallet | undefined;
let backend: NwcPayments | undefined;
afterEach(async () => {
  await backend?.close();
  await wallet?.close();
  await relay?.stop();
  backend = wallet = relay = undefined;
});

async function setup(o: Omit<FakeWalletOptions, 'relayUrl'> = {}, url?: (w: FakeNwcWallet) => string) {
  await initCrypto();
  relay = await startRelay();
  wallet = await new FakeNwcWallet({ relayUrl: relay.url, ...o }).start();
  backend = new NwcPayments({ url: url ? url(wallet) : wallet.url, log, pollIntervalMs: 200, replyTimeoutMs: 10_000 * TIME_SCALE });
  const settled: string[] = [];
  backend.onSettled((h) => settled.push(h));
  backend.start();
  await waitFor(() => backend!.relayConnected, 'the NWC relay connection');
  return { wallet, backend, settled };
}

const hashOf = (bolt: string) => (decode(bolt).sections.find((s) => s.name === 'payment_hash') as { value: string }).value;

describe('NWC connection strings', () => {
  it('parses a wallet connection string and names what is wrong with a bad one, never the secret', () => {
    const secret = 'ab'.repeat(32);
    const c = parseNwcUrl(`nostr+walletconnect://${'c'.repeat(64)}?relay=wss%3A%2F%2Frelay.example.com&relay=wss://two.example&secret=${secret}&lud16=a@b.c`);
    expect(c.walletPubkey).toBe('c'.repeat(64));
    expect(c.relays).toEqual(['wss://relay.example.com', 'wss://two.example']);
    expect(c.clientPubkey).toMatch(/^[0-9a-f]{64}$/);
    const bad: [string, RegExp][] = [
      ['https://example.com', /must look like nostr\+walletconnect:/],
      [`nostr+walletconnect://nothex?relay=wss://r.example&secret=${secret}`, /wallet pubkey .* 64 hex/],
      [`nostr+walletconnect://${'c'.repeat(64)}?secret=${secret}`, /no relay=/],
      [`nostr+walletconnect://${'c'.repeat(64)}?relay=https://r.example&secret=${secret}`, /ws:\/\/ or wss:\/\//],
      [`nostr+walletconnect://${'c'.repeat(64)}?relay=wss://r.example`, /no secret=/],
      [`nostr+walletconnect://${'c'.repeat(64)}?relay=wss://r.example&secret=${secret.slice(2)}zz`, /secret= must be 64 hex/],
    ];
    for (const [url, why] of bad) {
      const err = (() => {
        try {
          parseNwcUrl(url);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err, url).toBeInstanceOf(NwcUrlError);
      expect(err!.message).toMatch(why);
      expect(err!.message).not.toContain(secret.slice(0, 16));
    }
  });
});

describe('NWC backend', () => {
  it('makes real invoices over NIP-44 and learns of payments from payment_received notifications', async () => {
    const { wallet, backend, settled } = await setup();
    const inv = await backend.createInvoice({ amountMsats: 21_000, memo: 'Timmy: test', expirySecs: 600 });
    expect(hashOf(inv.bolt11)).toBe(inv.paymentHash);
    expect(inv.amountMsats).toBe(21_000);
    expect(backend.encryption).toBe('nip44_v2');
    expect(wallet.requests[0]).toMatchObject({ method: 'make_invoice', params: { amount: 21_000, description: 'Timmy: test', expiry: 600 }, encryption: 'nip44_v2' });
    expect(await backend.isPaid(inv.paymentHash)).toBe(false);
    expect(await backend.isPaid('f'.repeat(64))).toBe(false); // NOT_FOUND: not this wallet's
    const before = wallet.requests.length;
    wallet.pay(inv.paymentHash);
    await waitFor(() => settled.includes(inv.paymentHash), 'the notification');
    expect(wallet.notificationsSent).toBe(1);
    expect(await backend.isPaid(inv.paymentHash)).toBe(true);
    expect(wallet.requests.slice(before).map((r) => r.method)).toEqual(['lookup_invoice']); // no polling while notified
    expect(backend.health()).toMatchObject({ ok: true });
  });

  it('speaks NIP-04 to a wallet whose info has no encryption tag, and takes the payment hash from the bolt11 when the reply omits it', async () => {
    const { wallet, backend, settled } = await setup({ nip04Only: true, omitPaymentHash: true });
    const inv = await backend.createInvoice({ amountMsats: 5_000, memo: 'x', expirySecs: 60 });
    expect(backend.encryption).toBe('nip04');
    expect(wallet.requests.every((r) => r.encryption === 'nip04')).toBe(true);
    expect(inv.paymentHash).toBe(hashOf(inv.bolt11));
    wallet.pay(inv.paymentHash);
    await waitFor(() => settled.includes(inv.paymentHash), 'the NIP-04 notification (kind 23196)');
  });

  it('polls lookup_invoice when the wallet sends no notifications', async () => {
    const { wallet, backend, settled } = await setup({ noNotifications: true });
    const inv = await backend.createInvoice({ amountMsats: 1_000, memo: 'x', expirySecs: 60 });
    wallet.pay(inv.paymentHash);
    await waitFor(() => settled.includes(inv.paymentHash), 'a poll to find the payment');
    expect(wallet.notificationsSent).toBe(0);
  });

  it('a RATE_LIMITED reply is a clear error naming the code; the next call works', async () => {
    const { wallet, backend } = await setup();
    await backend.isPaid('a'.repeat(64)); // info read, connection warm
    wallet.rateLimitNext(1);
    const err = await backend.createInvoice({ amountMsats: 1_000, memo: 'x', expirySecs: 60 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NwcWalletError);
    expect((err as NwcWalletError).code).toBe('RATE_LIMITED');
    expect((err as Error).message).toMatch(/RATE_LIMITED: slow down \(the wallet asks us to slow down/);
    await expect(backend.createInvoice({ amountMsats: 1_000, memo: 'x', expirySecs: 60 })).resolves.toMatchObject({ amountMsats: 1_000 });
  });

  it('a connection the wallet does not know is UNAUTHORIZED, and health says so', async () => {
    const { backend } = await setup({}, (w) => w.url.replace(/secret=[0-9a-f]+/, `secret=${'12'.repeat(32)}`));
    const err = await backend.createInvoice({ amountMsats: 1_000, memo: 'x', expirySecs: 60 }).catch((e: unknown) => e);
    expect((err as NwcWalletError).code).toBe('UNAUTHORIZED');
    expect((err as Error).message).toMatch(/make a new connection string/);
    expect(backend.health()).toMatchObject({ ok: false });
  });

  it('a payment whose notification was lost while the relay was down is found by lookup after the reconnect', async () => {
    const { wallet, backend, settled } = await setup();
    const inv = await backend.createInvoice({ amountMsats: 2_000, memo: 'x', expirySecs: 600 });
    const { port, dbPath } = relay!;
    await relay!.stop();
    await waitFor(() => !backend.relayConnected && !wallet.connected, 'the backend and the wallet to notice the relay is gone');
    wallet.pay(inv.paymentHash); // nobody hears it: the notification is lost
    expect(wallet.notificationsSent).toBe(0);
    relay = await startRelay({ port, dbPath });
    await waitFor(() => settled.includes(inv.paymentHash), 'the lookup after the reconnect');
  });
});
