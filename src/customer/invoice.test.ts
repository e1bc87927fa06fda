// Invoices shown to people: expiry, how to pay, and a QR code that is drawn only where it fits.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import { invoiceExpiresAt, renderQr, showInvoice } from './invoice.ts';

function invoice(prefix: 'bcrt' | 'bc', expirySecs: number, timestamp: number): string {
  const network = prefix === 'bc'
    ? { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] }
    : { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
  const unsigned = bolt11.encode({
    network,
    millisatoshis: '10000',
    timestamp,
    tags: [
      { tagName: 'payment_hash', data: randomBytes(32).toString('hex') },
      { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
      { tagName: 'description', data: 'Timmy test' },
      { tagName: 'expire_time', data: expirySecs },
    ],
  });
  return bolt11.sign(unsigned, randomBytes(32).toString('hex')).paymentRequest!;
}

const lines = (f: (out: (l: string) => void) => void) => {
  const got: string[] = [];
  f((l) => got.push(l));
  return got;
};

describe('showInvoice', () => {
  const now = 1_700_000_000;
  it('says when it expires and how to pay a stub invoice', () => {
    const inv = invoice('bcrt', 600, now);
    expect(invoiceExpiresAt(inv)).toBe(now + 600);
    const out = lines((o) => showInvoice(o, inv, 10, { qr: false, nowS: now + 60 }));
    expect(out[0]).toBe(`invoice (10 sats, expires in 9 min (2023-11-14T22:23:20Z)): ${inv}`);
    expect(out[1]).toContain('npx timmy dev pay <invoice>');
    expect(lines((o) => showInvoice(o, inv, 10, { qr: false, nowS: now + 700 }))[0]).toContain('10 sats, expired (');
  });

  it('draws the QR code only when it fits the screen, else says why; never with --no-qr or --pay-stub', () => {
    const inv = invoice('bc', 3600, now);
    const code = renderQr(inv.toUpperCase());
    const big = { columns: code.columns, rows: code.rows };
    const drawn = lines((o) => showInvoice(o, inv, 10, { qr: true, screen: big, nowS: now }));
    expect(drawn.slice(1, 1 + code.rows)).toEqual(code.lines);
    expect(drawn.at(-1)).toBe('pay it with any Lightning wallet: scan the QR code or paste the invoice');
    const small = lines((o) => showInvoice(o, inv, 10, { qr: true, screen: { columns: 80, rows: code.rows - 1 }, nowS: now }));
    expect(small).toHaveLength(3);
    expect(small[1]).toBe(`(no QR code: it needs ${code.columns}x${code.rows} characters, more than this 80x${code.rows - 1} terminal; enlarge it, or paste the invoice; --no-qr skips this)`);
    expect(lines((o) => showInvoice(o, inv, 10, { qr: true, screen: big, indent: 2, nowS: now }))[1]).toMatch(/^\(no QR code/);
    expect(lines((o) => showInvoice(o, inv, 10, { qr: false, screen: big, nowS: now }))).toHaveLength(2);
    expect(lines((o) => showInvoice(o, inv, 10, { qr: true, payStub: true, screen: big, nowS: now }))).toHaveLength(1);
  });

  it('a short text fits 80x24 in the smallest rendering', () => {
    const code = renderQr('LNBC1');
    expect(code.rows).toBeLessThanOrEqual(24);
    expect(code.columns).toBeLessThanOrEqual(80);
  });
});
