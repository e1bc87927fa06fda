// The invoice book: one for every payable thing (a job's eval or work stage, a session's deposit or top-up,
// a node order). It issues invoices (spending the payer's credit first), follows settlements (pushed,
// polled, or asked for by a reader), expires what ran out, and hands each settlement to its subject's
// handler exactly once. One policy for an unreachable backend: nothing is expired that could not be asked
// about. One late-payment rule: money for a subject that no longer waits for it is credited to the
// invoice's account (the payer's pubkey, else `<subject kind>:<subject id>`), never lost.
import type { Logger } from '../log.ts';
import type { Store, StoreOps } from '../store/store.ts';
import { CreditRaced } from '../store/credits.ts';
import type { Clock, PaymentBackend, Publisher } from './ports.ts';
import { KeyedMutex } from './mutex.ts';
import { Refusal } from './refusal.ts';
import type { BookInvoice, CreditEntry, InvoicePurpose, NewBookInvoice, PublishIntent, SubjectKind } from './types.ts';

/** What a subject kind does with its invoices. Each move marks the invoice in the same transaction. */
export interface SubjectHandler {
  /**
   * Moves the subject for its paid invoice; false when the subject no longer waits for this money, 'already'
   * when another report of the same payment (another worker's, a poll's) moved it first.
   */
  paid(inv: BookInvoice): Promise<boolean | 'already'>;
  /** Moves the subject for its invoice that ran out unpaid; false when the subject does not wait on it. */
  expired(inv: BookInvoice): Promise<boolean>;
  /** Why money arrived late (the credit's reason) and what to tell the payer (published with the credit). */
  late(inv: BookInvoice): Promise<{ reason: string; intents: PublishIntent[] }>;
}

export interface BookDeps {
  store: Store;
  payments: PaymentBackend;
  publisher: Publisher;
  clock: Clock;
  log: Logger;
  invoiceExpirySecs: number;
}

/** Who pays for a subject: the invoice's credits account. */
export interface Payer {
  subjectKind: SubjectKind;
  subjectId: string;
  pubkey: string | null; // hex; anonymous (HTTP) payers are credited on the subject's own account
}

/** The credits account of a payer: their pubkey, else the subject itself (`job:<id>`, `bootstrap:<id>`, ...). */
export function creditAccount(p: Payer): string {
  return p.pubkey ?? `${p.subjectKind}:${p.subjectId}`;
}

/** Where credit for a payer went, in the customer's words. */
export function creditedTo(p: Payer): string {
  return p.pubkey ? 'your pubkey' : creditAccount(p);
}

/** Money received for work that was not delivered goes back as credit: once per subject (`fail:<id>`). */
export function refundCredit(p: Payer, amountMsats: number, why: string): CreditEntry {
  return { account: creditAccount(p), deltaMsats: amountMsats, reason: `refund: ${why}`, jobId: p.subjectId, ref: `fail:${p.subjectId}` };
}

/** The result of a charge: the credit spent (as a ledger entry to commit) and the invoice for the rest. */
export interface Charge {
  creditMsats: number;
  dueMsats: number;
  invoice: NewBookInvoice | null; // null when credit covered the whole price
  credits: CreditEntry[];
}

/** Payable: open (its subject waits for it) or withdrawn (its subject gave up on it; money is credited). */
export const isLive = (inv: Pick<BookInvoice, 'status'>) => inv.status === 'open' || inv.status === 'withdrawn';

export const msatsText = (msats: number) => `${msats / 1000} sats`;

export class InvoiceBook {
  private readonly handlers = new Map<SubjectKind, SubjectHandler>();
  private readonly accounts = new KeyedMutex(); // serialises credit spending per account
  private stopping = false;

  constructor(private readonly d: BookDeps) {}

  /** Before anything is issued: the open-invoice counters are kept in step; a crash of an older version may not have. */
  async start(): Promise<void> {
    await this.d.store.invoices.recountOpenInvoices();
  }

  /** Registers the handler of a subject kind (each service registers its own). */
  handle(kind: SubjectKind, handler: SubjectHandler): void {
    this.handlers.set(kind, handler);
  }

  async get(paymentHash: string | null, t: StoreOps = this.d.store): Promise<BookInvoice | undefined> {
    return paymentHash ? t.invoices.getInvoice(paymentHash) : undefined;
  }

  of(kind: SubjectKind, subjectId: string): Promise<BookInvoice[]> {
    return this.d.store.invoices.invoicesOf(kind, subjectId);
  }

  /** How many invoices of a subject kind are open (one counter row). */
  openCount(kind: SubjectKind, t: StoreOps = this.d.store): Promise<number> {
    return t.invoices.openInvoiceCount(kind);
  }

  /** The oldest open invoices of a subject kind and purpose (candidates to make room under a flood). */
  oldestOpen(kind: SubjectKind, purpose: InvoicePurpose, limit: number, t: StoreOps = this.d.store): Promise<BookInvoice[]> {
    return t.invoices.oldestOpen(kind, purpose, limit);
  }

  /**
   * Withdraws an open invoice its subject no longer waits on: uncounted, still followed and payable until it
   * runs out (the money then credited). Call inside the transaction that decided so. False when not open.
   */
  withdraw(paymentHash: string, t: StoreOps): Promise<boolean> {
    return t.invoices.markInvoice(paymentHash, 'withdrawn', this.d.clock.nowMs());
  }

  /** Issues an invoice addressed to its subject; the subject's transaction records it (store insertInvoice). */
  async issue(a: Payer & { purpose: InvoicePurpose; amountMsats: number; memo: string; descriptionHash?: string }): Promise<NewBookInvoice> {
    let inv;
    try {
      inv = await this.d.payments.createInvoice({ amountMsats: a.amountMsats, memo: a.memo, expirySecs: this.d.invoiceExpirySecs, descriptionHash: a.descriptionHash });
    } catch (err) {
      this.d.log.error({ err, subjectKind: a.subjectKind, purpose: a.purpose }, 'invoice creation failed');
      throw Refusal.of('unavailable', 'the payment backend cannot issue an invoice right now, try again later');
    }
    return { ...inv, subjectKind: a.subjectKind, subjectId: a.subjectId, purpose: a.purpose, account: creditAccount(a) };
  }

  /** Records an invoice whose subject exists already (a session top-up). */
  record(inv: NewBookInvoice): Promise<void> {
    return this.d.store.invoices.recordInvoice(inv, this.d.clock.nowMs());
  }

  /**
   * Spends the payer's credit first (only a known pubkey has credit to spend) and invoices the rest. Run it
   * inside `underAccount` and commit the returned entries with the subject's move: the store refuses a spend
   * the balance no longer covers, and `underAccount` charges again.
   */
  async charge(a: Payer & { purpose: InvoicePurpose; priceMsats: number; memo: string }): Promise<Charge> {
    const account = creditAccount(a);
    const creditMsats = a.pubkey ? Math.max(0, Math.min(a.priceMsats, await this.d.store.credits.creditBalanceMsats(account))) : 0;
    const dueMsats = a.priceMsats - creditMsats;
    const invoice = dueMsats > 0 ? await this.issue({ ...a, amountMsats: dueMsats }) : null;
    const credits: CreditEntry[] =
      creditMsats > 0
        ? [{ account, deltaMsats: -creditMsats, reason: `spent on the ${a.purpose} of ${a.subjectKind} ${a.subjectId.slice(0, 12)}`, jobId: a.subjectId, ref: `spend-${a.purpose}:${a.subjectId}` }]
        : [];
    if (creditMsats > 0) this.d.log.info({ account, subjectKind: a.subjectKind, subjectId: a.subjectId, purpose: a.purpose, creditSats: creditMsats / 1000 }, 'credit spent');
    return { creditMsats, dueMsats, invoice, credits };
  }

  /**
   * Runs `fn` (a charge and the commit of its entries) while no other charge of the same account runs in this
   * process. Another worker may still spend the credit between the charge's read and the commit: the store
   * then refuses the spend (CreditRaced, nothing of the move written) and `fn` runs once more, charging
   * against the balance as it now is.
   */
  underAccount<T>(account: string, fn: () => Promise<T>): Promise<T> {
    return this.accounts.run(account, async () => {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof CreditRaced)) throw err;
        this.d.log.info({ account, balanceSats: err.balanceMsats / 1000 }, 'credit spent elsewhere meanwhile: charging again');
        return fn();
      }
    });
  }

  /**
   * A settlement report (pushed, polled, from the dev route, or a preimage shown to us). Idempotent: the
   * subject moves once; money its subject no longer waits for is credited once.
   */
  async settle(paymentHash: string): Promise<void> {
    const inv = await this.d.store.invoices.getInvoice(paymentHash);
    if (!inv) {
      this.d.log.debug({ paymentHash }, 'settlement for an unknown invoice ignored');
      return;
    }
    if (inv.status === 'paid') return;
    const handler = this.handler(inv);
    const taken = await handler.paid(inv);
    if (taken === 'already') return;
    if (taken) {
      this.d.log.info({ paymentHash, subjectKind: inv.subjectKind, subjectId: inv.subjectId, purpose: inv.purpose, amountSats: inv.amountMsats / 1000 }, 'invoice paid');
      return;
    }
    const late = await handler.late(inv);
    const credit: CreditEntry = {
      account: inv.account,
      deltaMsats: inv.amountMsats,
      reason: late.reason,
      jobId: inv.subjectKind === 'session' ? null : inv.subjectId,
      ref: `late:${paymentHash}`,
    };
    if (await this.d.store.invoices.settleLate({ paymentHash, credit, subjectId: inv.subjectId, intents: late.intents }, this.d.clock.nowMs())) {
      this.d.log.warn({ paymentHash, subjectKind: inv.subjectKind, subjectId: inv.subjectId, account: inv.account, amountSats: inv.amountMsats / 1000 }, 'late payment credited');
      if (late.intents.length) this.d.publisher.wake();
    }
  }

  /** The backend's word on an invoice; null when it cannot be asked right now. */
  private async askPaid(paymentHash: string): Promise<boolean | null> {
    try {
      return await this.d.payments.isPaid(paymentHash);
    } catch (err) {
      this.d.log.warn({ err, paymentHash }, 'invoice status check failed');
      return null;
    }
  }

  /** Asks the backend about a live invoice (a reader's GET after the push path missed it); settles it if paid. */
  async refresh(paymentHash: string | null): Promise<void> {
    const inv = await this.get(paymentHash);
    if (inv && isLive(inv) && (await this.askPaid(inv.paymentHash))) await this.settle(inv.paymentHash);
  }

  /** Expires the live invoices that ran out, checking once more with the backend that they are unpaid. */
  async expireDue(nowS = Math.floor(this.d.clock.nowMs() / 1000)): Promise<void> {
    for (const inv of await this.d.store.invoices.dueInvoices(nowS)) {
      if (this.stopping) return;
      try {
        await this.expireOne(inv);
      } catch (err) {
        // One invoice that cannot be handled must not stop the others behind it from expiring.
        this.d.log.error({ err, paymentHash: inv.paymentHash, subjectKind: inv.subjectKind }, 'expiring an invoice failed');
      }
    }
  }

  private async expireOne(inv: BookInvoice): Promise<void> {
    const paid = await this.askPaid(inv.paymentHash);
    if (paid === null) return; // unreachable: never expire what may have been paid; ask again next pass
    if (paid) return this.settle(inv.paymentHash);
    const fresh = await this.d.store.invoices.getInvoice(inv.paymentHash);
    if (!fresh || !isLive(fresh)) return;
    if (fresh.status === 'withdrawn' || !(await this.handler(fresh).expired(fresh))) await this.d.store.invoices.expireInvoice(fresh.paymentHash, this.d.clock.nowMs());
  }

  /** After a restart: every live invoice is put under watch (or asked about once), a page at a time. */
  async resume(): Promise<void> {
    let after = '';
    for (;;) {
      const page = await this.d.store.invoices.liveInvoices(after);
      if (page.length === 0) return;
      for (const inv of page) {
        if (this.stopping) return;
        if (this.d.payments.watch) this.d.payments.watch(inv.paymentHash, inv.expiresAt);
        else if (await this.askPaid(inv.paymentHash)) await this.settle(inv.paymentHash);
      }
      after = page[page.length - 1]!.paymentHash;
      await new Promise((r) => setImmediate(r)); // let I/O (HTTP, relays) in between pages
    }
  }

  stop(): void {
    this.stopping = true;
  }

  private handler(inv: BookInvoice): SubjectHandler {
    const h = this.handlers.get(inv.subjectKind);
    if (!h) throw new Error(`no handler for invoices of ${inv.subjectKind}`);
    return h;
  }
}
