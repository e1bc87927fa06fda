// Showing a Lightning invoice to a person: amount, when it expires, how to pay it, and a QR code only when
// it fits the terminal (80x24 when the size is unknown).
import qrcode from 'qrcode-terminal';
import { decode as decodeBolt11 } from 'light-bolt11-decoder';

export interface Screen {
  columns: number;
  rows: number;
}

/** The terminal's size when stdout is one, else the classic 80x24. */
export function screenSize(): Screen {
  const tty = process.stdout.isTTY;
  return { columns: (tty && process.stdout.columns) || 80, rows: (tty && process.stdout.rows) || 24 };
}

/** The smallest rendering qrcode-terminal has (half blocks, error level L): its lines, and its size in characters. */
export function renderQr(text: string): { lines: string[]; columns: number; rows: number } {
  let drawn = '';
  qrcode.generate(text, { small: true }, (q) => (drawn = q));
  const lines = drawn.split('\n').filter((l) => l.length > 0);
  return { lines, columns: Math.max(...lines.map((l) => [...l].length)), rows: lines.length };
}

/** Unix seconds when the invoice expires, or null when it cannot be read. */
export function invoiceExpiresAt(bolt11: string): number | null {
  try {
    const d = decodeBolt11(bolt11);
    const ts = d.sections.find((s) => s.name === 'timestamp');
    if (!ts || !('value' in ts)) return null;
    return Number(ts.value) + (d.expiry ?? 3600); // BOLT 11: one hour when the invoice names no expiry
  } catch {
    return null;
  }
}

function inWords(seconds: number): string {
  if (seconds <= 0) return 'expired';
  if (seconds < 120) return `expires in ${seconds} s`;
  if (seconds < 7200) return `expires in ${Math.round(seconds / 60)} min`;
  return `expires in ${Math.round(seconds / 3600)} h`;
}

export interface ShowOptions {
  qr: boolean;
  /** Paid by the CLI itself (--pay-stub): no need to say how to pay. */
  payStub?: boolean;
  screen?: Screen;
  /** Columns the caller's `out` puts before each line. */
  indent?: number;
  nowS?: number;
}

/** Prints an invoice: amount, expiry, how to pay it, and (when asked and when it fits) its QR code. */
export function showInvoice(out: (l: string) => void, bolt11: string, amountSats: number, o: ShowOptions): void {
  const expiresAt = invoiceExpiresAt(bolt11);
  const now = o.nowS ?? Math.floor(Date.now() / 1000);
  const when = expiresAt === null ? '' : `, ${inWords(expiresAt - now)} (${new Date(expiresAt * 1000).toISOString().replace('.000Z', 'Z')})`;
  out(`invoice (${amountSats} sats${when}): ${bolt11}`);
  if (o.qr && !o.payStub) {
    // Nobody needs to scan what the CLI pays itself.
    const screen = o.screen ?? screenSize();
    const code = renderQr(bolt11.toUpperCase()); // upper case: what wallets expect of a bech32 QR
    if (code.columns + (o.indent ?? 0) <= screen.columns && code.rows <= screen.rows) {
      for (const l of code.lines) out(l);
    } else {
      out(`(no QR code: it needs ${code.columns}x${code.rows} characters, more than this ${screen.columns}x${screen.rows} terminal; enlarge it, or paste the invoice; --no-qr skips this)`);
    }
  }
  if (o.payStub) return;
  if (bolt11.toLowerCase().startsWith('lnbcrt')) {
    out('pay it: a regtest invoice from the stub backend, paid with `npx timmy dev pay <invoice>` (or run again with --pay-stub)');
  } else {
    out(`pay it with any Lightning wallet: ${o.qr ? 'scan the QR code or ' : ''}paste the invoice`);
  }
}
