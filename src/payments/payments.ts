// The payments interface the core owns: create invoices, learn when they are paid.

/** An invoice as the core and clients see it. */
export interface Invoice {
  paymentHash: string; // hex
  bolt11: string;
  amountMsats: number;
  expiresAt: number; // unix s
}

export interface InvoiceRequest {
  amountMsats: number;
  memo: string;
  expirySecs: number;
}

/** What the core needs of a Lightning backend (stub, LNbits). */
export interface PaymentBackend {
  readonly name: 'stub' | 'lnbits';
  createInvoice(req: InvoiceRequest): Promise<Invoice>;
  /** Asks the backend whether an invoice is settled (the poll path; settlements are also pushed). */
  isPaid(paymentHash: string): Promise<boolean>;
  /** Registers the one settlement listener; it may be called more than once per invoice. */
  onSettled(listener: (paymentHash: string) => void): void;
  /**
   * Puts an invoice from an earlier process under watch (settlements are then pushed or polled, paced by
   * the backend). Backends without it are asked with isPaid instead.
   */
  watch?(paymentHash: string, expiresAt: number): void;
  close(): Promise<void>;
}

export class PaymentError extends Error {
  override name = 'PaymentError';
}
