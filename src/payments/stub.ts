// The in-process stub Lightning backend: real, decodable regtest BOLT11 invoices with real preimages,
// settled only when someone pays them through the dev route (POST /api/dev/stub/pay/:paymentHash).
import { createHash, randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import type { Store } from '../store/store.ts';
import type { Invoice, InvoiceRequest, PaymentBackend } from '../core/ports.ts';
import { PaymentError } from '../core/ports.ts';

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
const NODE_KEY = 'stub_node_key';

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

  constructor(private readonly store: Store) {}

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
      await this.store.stubInvoices.markStubInvoicePaid(paymentHash, Date.now());
    }
    // Reported every time, as a real backend may; the core is idempotent.
    queueMicrotask(() => this.listener(paymentHash));
    return { paid: true, preimage: inv.preimage };
  }

  async close(): Promise<void> {}
}
