// Pre-funded sessions (SPEC 6): deposit and top-up invoices credit the ledger exactly once; macaroons
// carry the session; requests are reserved, worked and debited by the job service.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import * as store from '../store/sessions.ts';
import type { Invoice, PaymentBackend } from '../payments/payments.ts';
import { nextSessionState, type SessionEvent, type SessionState } from './session-machine.ts';
import { mintSessionMacaroon, verifySessionMacaroon } from './macaroons.ts';
import type { Job, NewJob } from './types.ts';
import type { JobService } from './jobs.ts';

export interface SessionSettings {
  invoiceExpirySecs: number;
  sessionTtlSecs: number;
  maxOpenUnpaidPerClient: number;
  maxDepositSats: number;
}

export interface SessionDeps {
  db: Db;
  payments: PaymentBackend;
  jobs: JobService;
  rootKey: Uint8Array;
  settings: SessionSettings;
  log: Logger;
  onInvoice?: (invoice: Invoice) => void;
}

export interface SessionView {
  sessionId: string;
  state: SessionState;
  balanceSats: number;
  expiresAt: number; // unix s: when it expires if unused
  pubkey: string | null;
}

export class SessionError extends Error {
  override name = 'SessionError';
  constructor(
    message: string,
    readonly status: 400 | 401 | 404 | 409 | 429 | 503,
  ) {
    super(message);
  }
}

export type SessionRunOutcome =
  | { status: 'done'; job: Job; balanceMsats: number }
  | { status: 'failed'; job: Job }
  | { status: 'insufficient'; balanceMsats: number; neededMsats: number }
  | { status: 'refused'; reason: string };

export class SessionService {
  constructor(private readonly d: SessionDeps) {}

  view(id: string): SessionView | undefined {
    const s = store.getSession(this.d.db, id);
    if (!s) return undefined;
    return {
      sessionId: s.id,
      state: s.state,
      balanceSats: Math.floor(store.balanceMsats(this.d.db, id) / 1000),
      expiresAt: Math.floor(s.lastUsedAt / 1000) + this.d.settings.sessionTtlSecs,
      pubkey: s.pubkey,
    };
  }

  ledger(id: string) {
    return store.ledger(this.d.db, id);
  }

  private async invoice(amountSats: number, memo: string): Promise<Invoice> {
    if (!Number.isSafeInteger(amountSats) || amountSats < 1 || amountSats > this.d.settings.maxDepositSats) {
      throw new SessionError(`amountSats must be a whole number from 1 to ${this.d.settings.maxDepositSats}`, 400);
    }
    try {
      return await this.d.payments.createInvoice({ amountMsats: amountSats * 1000, memo, expirySecs: this.d.settings.invoiceExpirySecs });
    } catch (err) {
      this.d.log.error({ err }, 'session invoice creation failed');
      throw new SessionError('unavailable: the payment backend cannot issue an invoice right now', 503);
    }
  }

  private mint(sessionId: string, paymentHash: string): string {
    return mintSessionMacaroon(this.d.rootKey, {
      paymentHash,
      caveats: { sessionId, expiresAt: Math.floor(Date.now() / 1000) + this.d.settings.sessionTtlSecs },
    });
  }

  /** Opens a session: a deposit invoice, and the macaroon that works once it is paid. */
  async create(a: { amountSats: number; pubkey?: string | null; clientAddress: string | null; origin: 'http' | 'l402' }) {
    if (a.clientAddress && store.countSessions(this.d.db, ['awaiting_deposit'], a.clientAddress) >= this.d.settings.maxOpenUnpaidPerClient) {
      throw new SessionError(`rate-limited: ${this.d.settings.maxOpenUnpaidPerClient} unpaid sessions are already open from your address`, 429);
    }
    const id = randomBytes(16).toString('hex');
    const inv = await this.invoice(a.amountSats, `Timmy: session deposit ${id.slice(0, 12)}`);
    store.createSession(
      this.d.db,
      { id, state: 'awaiting_deposit', pubkey: a.pubkey ?? null, clientAddress: a.clientAddress, origin: a.origin },
      { paymentHash: inv.paymentHash, sessionId: id, purpose: 'deposit', amountMsats: inv.amountMsats, bolt11: inv.bolt11, expiresAt: inv.expiresAt },
    );
    this.d.onInvoice?.(inv);
    this.d.log.info({ sessionId: id, amountSats: a.amountSats, origin: a.origin }, 'session created');
    return { sessionId: id, macaroon: this.mint(id, inv.paymentHash), invoice: inv };
  }

  /**
   * An invoice that adds to the balance when paid, and a macaroon bound to it (L402). With `reuseOpen`,
   * an open top-up invoice of at least that amount is handed out again instead of a new one, so repeated
   * 402s cannot pile up invoices.
   */
  async topup(sessionId: string, amountSats: number, opts: { reuseOpen?: boolean } = {}): Promise<{ invoice: Invoice; macaroon: string }> {
    const s = store.getSession(this.d.db, sessionId);
    if (!s) throw new SessionError('no such session', 404);
    if (s.state === 'closed') throw new SessionError('the session is closed', 409);
    if (opts.reuseOpen) {
      const soon = Math.floor(Date.now() / 1000) + 60; // s: leave the payer time to pay
      const open = store
        .sessionInvoicesOf(this.d.db, sessionId)
        .find((i) => i.purpose === 'topup' && i.status === 'open' && i.expiresAt > soon && i.amountMsats >= amountSats * 1000);
      if (open) return { invoice: open, macaroon: this.mint(sessionId, open.paymentHash) };
    }
    const inv = await this.invoice(amountSats, `Timmy: session top-up ${sessionId.slice(0, 12)}`);
    store.addSessionInvoice(this.d.db, { paymentHash: inv.paymentHash, sessionId, purpose: 'topup', amountMsats: inv.amountMsats, bolt11: inv.bolt11, expiresAt: inv.expiresAt });
    this.d.onInvoice?.(inv);
    return { invoice: inv, macaroon: this.mint(sessionId, inv.paymentHash) };
  }

  /** A settlement report for a session invoice; credits the ledger exactly once. False when not ours. */
  onInvoicePaid(paymentHash: string): boolean {
    const inv = store.getSessionInvoice(this.d.db, paymentHash);
    if (!inv) return false;
    if (inv.status === 'paid') return true;
    const s = store.getSession(this.d.db, inv.sessionId);
    const entry: store.LedgerEntry = { sessionId: inv.sessionId, kind: inv.purpose, amountMsats: inv.amountMsats, paymentHash, ref: `${inv.purpose}:${paymentHash}` };
    const settle = { paymentHash, status: 'paid' as const };
    if (!s) {
      // Purged unpaid session (the invoice expired first): nobody to credit but the operator's books.
      store.setSessionInvoiceStatus(this.d.db, paymentHash, 'paid');
      this.d.log.error({ sessionId: inv.sessionId, paymentHash, amountMsats: inv.amountMsats }, 'payment for a purged session; refund by hand');
      return true;
    }
    if (s.state === 'closed') {
      const credits = s.pubkey
        ? [{ account: s.pubkey, deltaMsats: inv.amountMsats, reason: 'payment to a closed session', jobId: null, ref: `late:${paymentHash}` }]
        : [];
      store.moveSession(this.d.db, { sessionId: s.id, from: ['closed'], to: null, settle, credits });
      this.d.log.warn({ sessionId: s.id, paymentHash }, 'payment to a closed session');
      return true;
    }
    const event: SessionEvent | null = s.state === 'awaiting_deposit' ? 'deposit_paid' : s.state === 'active' ? null : 'topped_up';
    const to = event ? nextSessionState(s.state, event) : null;
    const moved = store.moveSession(this.d.db, { sessionId: s.id, from: [s.state], to, settle, ledger: [entry], touch: true });
    if (moved) this.d.log.info({ sessionId: s.id, purpose: inv.purpose, amountMsats: inv.amountMsats, to: to ?? s.state }, 'session funded');
    else return this.onInvoicePaid(paymentHash); // the state moved under us: read again and retry
    return true;
  }

  /**
   * Checks a credential for a session route. `preimage` (L402): must open one of the session's invoices,
   * any of them; a paid one the watcher missed is settled here.
   */
  async authorize(macaroon: string, ctx: { sessionId?: string; preimage?: string }): Promise<{ sessionId: string; maxSatsPerRequest: number | null }> {
    const v = verifySessionMacaroon(this.d.rootKey, macaroon, { now: Math.floor(Date.now() / 1000), sessionId: ctx.sessionId });
    if (!v.ok) throw new SessionError(`unauthorized: ${v.reason}`, 401);
    const s = store.getSession(this.d.db, v.sessionId);
    if (!s) throw new SessionError('unauthorized: unknown session', 401);
    if (ctx.preimage !== undefined) {
      const hash = createHash('sha256').update(Buffer.from(ctx.preimage, 'hex')).digest('hex');
      const inv = store.getSessionInvoice(this.d.db, hash);
      if (!inv || inv.sessionId !== s.id) throw new SessionError('unauthorized: the preimage does not pay an invoice of this session', 401);
      if (inv.status !== 'paid') this.onInvoicePaid(hash); // the preimage is proof of payment
    }
    return { sessionId: s.id, maxSatsPerRequest: v.maxSatsPerRequest };
  }

  /** Asks the backend about the session's open invoices (a GET after the watcher was down). */
  async refresh(sessionId: string): Promise<void> {
    for (const inv of store.sessionInvoicesOf(this.d.db, sessionId)) {
      if (inv.status !== 'open') continue;
      try {
        if (await this.d.payments.isPaid(inv.paymentHash)) this.onInvoicePaid(inv.paymentHash);
      } catch (err) {
        this.d.log.warn({ err, paymentHash: inv.paymentHash }, 'session invoice check failed');
      }
    }
  }

  /** Runs one request on the session and waits for its result (HTTP). */
  async run(req: NewJob, sessionId: string, maxSatsPerRequest: number | null): Promise<SessionRunOutcome> {
    const r = await this.d.jobs.openOnSession(req, sessionId, maxSatsPerRequest);
    if (r.status === 'insufficient' || r.status === 'refused') return r;
    if (r.status === 'duplicate') return { status: 'refused', reason: 'duplicate request id' };
    const job = (await this.d.jobs.settled(r.job.id))!;
    if (job.state !== 'complete') return { status: 'failed', job };
    return { status: 'done', job, balanceMsats: store.balanceMsats(this.d.db, sessionId) };
  }

  /** Closes a session on request; a bound pubkey gets the remaining balance as credit. */
  close(sessionId: string): SessionView {
    const s = store.getSession(this.d.db, sessionId);
    if (!s) throw new SessionError('no such session', 404);
    if (!nextSessionState(s.state, 'closed')) throw new SessionError(`a session in state ${s.state} cannot be closed`, 409);
    const balance = store.balanceMsats(this.d.db, sessionId);
    const moveOut = s.pubkey && balance > 0;
    store.moveSession(this.d.db, {
      sessionId,
      from: [s.state],
      to: 'closed',
      ledger: moveOut ? [{ sessionId, kind: 'close', amountMsats: -balance, ref: `close:${sessionId}` }] : [],
      credits: moveOut ? [{ account: s.pubkey!, deltaMsats: balance, reason: `balance of closed session ${sessionId}`, jobId: null, ref: `session-close:${sessionId}` }] : [],
    });
    return this.view(sessionId)!;
  }

  /** Unpaid sessions expire with their deposit invoice and are purged; idle ones expire after the TTL. */
  async expireDue(nowMs = Date.now()): Promise<void> {
    for (const inv of store.dueSessionInvoices(this.d.db, Math.floor(nowMs / 1000))) {
      let paid = false;
      try {
        paid = await this.d.payments.isPaid(inv.paymentHash);
      } catch {
        continue; // ask again next pass
      }
      if (paid) {
        this.onInvoicePaid(inv.paymentHash);
        continue;
      }
      store.setSessionInvoiceStatus(this.d.db, inv.paymentHash, 'expired');
      const s = store.getSession(this.d.db, inv.sessionId);
      if (inv.purpose === 'deposit' && s?.state === 'awaiting_deposit') {
        store.deleteSession(this.d.db, s.id);
        this.d.log.info({ sessionId: s.id }, 'unpaid session purged');
      }
    }
    for (const s of store.idleSessions(this.d.db, ['active', 'depleted'], nowMs - this.d.settings.sessionTtlSecs * 1000)) {
      const balance = store.balanceMsats(this.d.db, s.id);
      const moveOut = s.pubkey && balance > 0;
      store.moveSession(this.d.db, {
        sessionId: s.id,
        from: [s.state],
        to: 'expired',
        ledger: moveOut ? [{ sessionId: s.id, kind: 'expire', amountMsats: -balance, ref: `expire:${s.id}:${s.lastUsedAt}` }] : [],
        credits: moveOut ? [{ account: s.pubkey!, deltaMsats: balance, reason: `balance of expired session ${s.id}`, jobId: null, ref: `session-expire:${s.id}:${s.lastUsedAt}` }] : [],
      });
      this.d.log.info({ sessionId: s.id, balanceMsats: balance }, 'idle session expired');
    }
  }

  /** After a restart: settle deposits and top-ups paid while we were down. */
  async resume(): Promise<void> {
    let after = '';
    for (;;) {
      const page = store.openSessionInvoices(this.d.db, after);
      if (page.length === 0) return;
      for (const inv of page) {
        if (this.d.payments.watch) {
          this.d.payments.watch(inv.paymentHash, inv.expiresAt);
          continue;
        }
        try {
          if (await this.d.payments.isPaid(inv.paymentHash)) this.onInvoicePaid(inv.paymentHash);
        } catch (err) {
          this.d.log.warn({ err, paymentHash: inv.paymentHash }, 'session invoice check failed');
        }
      }
      after = page[page.length - 1]!.paymentHash;
    }
  }
}
