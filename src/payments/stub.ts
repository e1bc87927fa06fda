// The in-process stub Lightning backend: real, decodable regtest BOLT11 invoices with real preimages,
// settled only when someone pays them through the dev route (POST /api/dev/stub/pay/:paymentHash). Every
// process on the store follows it: the one whose dev route paid hears at once, the others (and a restarted one)
// by polling the stub invoices paid since they last looked.
import { createHash, randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import type { Store } from '../store/store.ts';
import type { Logger } from '../log.ts';
import type { Invoice, InvoiceRequest, PaymentBackend } from '../core/ports.ts';
import { PaymentError } from '../core/ports.ts';

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
const NODE_KEY = 'stub_node_key';
/** How far back a starting process looks for payments: one marked just before a worker died is still heard. */
const LOOK_BACK_MS = 10 * 60_000;
/**
 * Each poll reads again this far behind the newest payment seen (ms): `paid_at` is the paying process's clock,
 * taken before its commit, so a payment can become visible after a later-stamped one (or carry a skewed clock).
 */
const OVERLAP_MS = 10_000;
const PAGE = 500;

export interface StubPaymentsOptions {
  /** ms between polls for payments made through other processes (default 1000). */
  pollIntervalMs?: number;
  log?: Logger;
}

export class StubInvoiceNotFound extends PaymentError {
  override name = 'StubInvoiceNotFound';
}
export class StubInvoiceExpired extends PaymentError {
  override name = 'StubInvoiceExpired';
}

export class StubPayments implements PaymentBackend {
  readonly name = 'stub' as const;
  private listener: (paymentHash: string) => void = () => {};
  private nodeKey: Promise<string> | null = null; // hex secp256k1 key that signs the invoices, kept in the store
  private cursorMs = Date.now() - LOOK_BACK_MS; // unix ms: the newest payment seen (polls read from OVERLAP_MS before it)
  private readonly reported = new Map<string, number>(); // payment hash -> paid_at (ms), within the overlap
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly opts: StubPaymentsOptions = {},
  ) {}

  private key(): Promise<string> {
    // Workers starting together each propose a key; the first one stored signs for all of them.
    this.nodeKey ??= this.store.kv.getOrCreate(NODE_KEY, randomBytes(32).toString('hex'));
    return this.nodeKey;
  }

  async createInvoice(req: InvoiceRequest): Promise<Invoice> {
    const preimage = randomBytes(32);
    const paymentHash = createHash('sha256').update(preimage).digest('hex');
    const timestamp = Math.floor(Date.now() / 1000);
    const unsigned = bolt11.encode({
      network: REGTEST,
      millisatoshis: String(req.amountMsats),
      timestamp,
      tags: [
        { tagName: 'payment_hash', data: paymentHash },
        { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
        req.descriptionHash ? { tagName: 'purpose_commit_hash', data: req.descriptionHash } : { tagName: 'description', data: req.memo },
        { tagName: 'expire_time', data: req.expirySecs },
        { tagName: 'min_final_cltv_expiry', data: 18 },
      ],
    });
    const bolt = bolt11.sign(unsigned, await this.key()).paymentRequest;
    if (!bolt) throw new PaymentError('stub invoice encoding failed');
    const invoice = { paymentHash, bolt11: bolt, amountMsats: req.amountMsats, expiresAt: timestamp + req.expirySecs };
    await this.store.group((t) => t.stubInvoices.insertStubInvoice({ ...invoice, preimage: preimage.toString('hex') }));
    return invoice;
  }

  async isPaid(paymentHash: string): Promise<boolean> {
    return (await this.store.stubInvoices.getStubInvoice(paymentHash))?.paidAt != null;
  }

  onSettled(listener: (paymentHash: string) => void): void {
    this.listener = listener;
  }

  /** Pays an invoice as a wallet would; paying twice answers the same preimage. */
  async pay(paymentHash: string): Promise<{ paid: true; preimage: string }> {
    const inv = await this.store.stubInvoices.getStubInvoice(paymentHash);
    if (!inv) throw new StubInvoiceNotFound(`no invoice with payment hash ${paymentHash}`);
    if (inv.paidAt == null) {
      if (inv.expiresAt <= Math.floor(Date.now() / 1000)) throw new StubInvoiceExpired('invoice expired');
      const atMs = Date.now();
      if (await this.store.stubInvoices.markStubInvoicePaid(paymentHash, atMs)) this.reported.set(paymentHash, atMs); // heard here: no need to hear it again from the poll
    }
    // Reported every time, as a real backend may; the core is idempotent.
    queueMicrotask(() => this.listener(paymentHash));
    return { paid: true, preimage: inv.preimage };
  }

  /** Follows the payments made through other processes' dev routes (and before this one started). */
  start(): void {
    if (this.timer || this.stopped) return;
    const tick = () => {
      this.polling = this.poll()
        .catch((err) => this.opts.log?.warn({ err }, 'stub payments: polling for payments failed; trying again'))
        .finally(() => {
          this.polling = null;
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.pollIntervalMs ?? 1000).unref();
        });
    };
    tick();
  }

  /** Reports every payment since the cursor not reported yet, a page at a time. */
  private async poll(): Promise<void> {
    let after = this.cursorMs - OVERLAP_MS;
    for (;;) {
      const page = await this.store.stubInvoices.paidSince(after, PAGE);
      for (const { paymentHash, paidAt } of page) {
        if (this.stopped) return;
        this.cursorMs = Math.max(this.cursorMs, paidAt);
        if (this.reported.has(paymentHash)) continue;
        this.reported.set(paymentHash, paidAt);
        this.listener(paymentHash);
      }
      // A full page: read on from its last payment's ms (ties across the page's edge are read again, and skipped).
      const last = page.at(-1)?.paidAt;
      if (page.length < PAGE || last === undefined || last - 1 <= after) break;
      after = last - 1;
    }
    // What the next poll cannot read again need not be remembered.
    for (const [hash, paidAt] of this.reported) if (paidAt <= this.cursorMs - OVERLAP_MS) this.reported.delete(hash);
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
  }
}
