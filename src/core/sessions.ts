// Pre-funded sessions (SPEC 6): deposit and top-up invoices (in the invoice book) credit the ledger exactly
// once; macaroons carry the session; requests are reserved, worked and debited by the job service.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Store, StoreOps } from '../store/store.ts';
import { nextSessionState, type SessionEvent, type SessionState } from './session-machine.ts';
import { mintSessionMacaroon, verifySessionMacaroon, type SessionOp } from './macaroons.ts';
import type { InvoiceBook, SubjectHandler } from './book.ts';
import type { JobService } from './jobs.ts';
import type { JobRunner } from './job-runner.ts';
import { Refusal } from './refusal.ts';
import type { Clock, StreamHooks } from './ports.ts';
import type { BookInvoice, Job, NewBookInvoice, NewJob } from './types.ts';

export interface SessionSettings {
  sessionTtlSecs: number;
  maxOpenUnpaidPerClient: number;
  maxDepositSats: number;
}

export interface SessionDeps {
  store: Store;
  book: InvoiceBook;
  jobs: Pick<JobService, 'openOnSession'>;
  runner: Pick<JobRunner, 'settled' | 'attach' | 'detach'>;
  rootKey: Uint8Array;
  settings: SessionSettings;
  clock: Clock;
  log: Logger;
}

export interface SessionView {
  sessionId: string;
  state: SessionState;
  balanceSats: number;
  expiresAt: number; // unix s: when it expires if unused
  pubkey: string | null;
}

export type SessionRunOutcome =
  | { status: 'done'; job: Job; balanceMsats: number }
  | { status: 'failed'; job: Job; debitedMsats: number } // debited: the input a model read, when its output was empty
  | { status: 'insufficient'; balanceMsats: number; neededMsats: number };

export class SessionService {
  constructor(private readonly d: SessionDeps) {
    d.book.handle('session', this.invoiceHandler());
  }

  private nowS(): number {
    return Math.floor(this.d.clock.nowMs() / 1000);
  }

  async view(id: string): Promise<SessionView | undefined> {
    const s = await this.d.store.sessions.getSession(id);
    if (!s) return undefined;
    return {
      sessionId: s.id,
      state: s.state,
      balanceSats: Math.floor((await this.d.store.sessions.balanceMsats(id)) / 1000),
      expiresAt: Math.floor(s.lastUsedAt / 1000) + this.d.settings.sessionTtlSecs,
      pubkey: s.pubkey,
    };
  }

  ledger(id: string) {
    return this.d.store.sessions.ledger(id);
  }

  private async invoice(s: { id: string; pubkey: string | null }, purpose: 'deposit' | 'topup', amountSats: number): Promise<NewBookInvoice> {
    if (!Number.isSafeInteger(amountSats) || amountSats < 1 || amountSats > this.d.settings.maxDepositSats) {
      throw new Refusal('invalid', `amountSats must be a whole number from 1 to ${this.d.settings.maxDepositSats}`);
    }
    const memo = `Timmy: session ${purpose === 'deposit' ? 'deposit' : 'top-up'} ${s.id.slice(0, 12)}`;
    return this.d.book.issue({ subjectKind: 'session', subjectId: s.id, pubkey: s.pubkey, purpose, amountMsats: amountSats * 1000, memo });
  }

  private mint(sessionId: string, paymentHash: string): string {
    return mintSessionMacaroon(this.d.rootKey, {
      paymentHash,
      caveats: { sessionId, expiresAt: this.nowS() + this.d.settings.sessionTtlSecs },
    });
  }

  /** Opens a session: a deposit invoice, and the macaroon that works once it is paid. */
  async create(a: { amountSats: number; pubkey?: string | null; clientAddress: string | null; origin: 'http' | 'l402' }) {
    const max = this.d.settings.maxOpenUnpaidPerClient;
    if (a.clientAddress && (await this.d.store.sessions.countSessionsOf(['awaiting_deposit'], a.clientAddress, max)) >= max) {
      throw Refusal.of('rate-limited', `${max} unpaid sessions are already open from your address`);
    }
    const id = randomBytes(16).toString('hex');
    const pubkey = a.pubkey ?? null;
    const inv = await this.invoice({ id, pubkey }, 'deposit', a.amountSats);
    await this.d.store.sessions.createSession({ id, state: 'awaiting_deposit', pubkey, clientAddress: a.clientAddress, origin: a.origin }, inv);
    this.d.log.info({ sessionId: id, amountSats: a.amountSats, origin: a.origin }, 'session created');
    return { sessionId: id, macaroon: this.mint(id, inv.paymentHash), invoice: inv };
  }

  /**
   * An invoice that adds to the balance when paid, and a macaroon bound to it (L402). With `reuseOpen`,
   * an open top-up invoice of at least that amount is handed out again instead of a new one, so repeated
   * 402s cannot pile up invoices.
   */
  async topup(sessionId: string, amountSats: number, opts: { reuseOpen?: boolean } = {}): Promise<{ invoice: NewBookInvoice; macaroon: string }> {
    const s = await this.d.store.sessions.getSession(sessionId);
    if (!s) throw new Refusal('not-found', 'no such session');
    if (s.state === 'closed') throw new Refusal('conflict', 'the session is closed');
    // Unpaid invoices are capped like everywhere else: none before the deposit is paid, a few open at once.
    if (s.state === 'awaiting_deposit') throw new Refusal('conflict', 'pay the deposit invoice first; the session is not funded yet');
    const openTopups = (await this.d.book.of('session', sessionId)).filter((i) => i.purpose === 'topup' && i.status === 'open');
    if (opts.reuseOpen) {
      const soon = this.nowS() + 60; // s: leave the payer time to pay
      const open = openTopups.find((i) => i.expiresAt > soon && i.amountMsats >= amountSats * 1000);
      if (open) return { invoice: open, macaroon: this.mint(sessionId, open.paymentHash) };
    }
    const max = this.d.settings.maxOpenUnpaidPerClient;
    if (openTopups.length >= max) throw Refusal.of('rate-limited', `${max} top-up invoices of this session are open; pay one or let them expire first`);
    const inv = await this.invoice(s, 'topup', amountSats);
    await this.d.book.record(inv);
    return { invoice: inv, macaroon: this.mint(sessionId, inv.paymentHash) };
  }

  /** The session's side of the invoice book: deposits and top-ups credit the ledger once. */
  private invoiceHandler(): SubjectHandler {
    const paid = async (inv: BookInvoice): Promise<boolean | 'already'> => {
      // A withdrawn invoice was paid by a zap already (paidByZap): this second payment is credited.
      if (inv.status === 'withdrawn') return false;
      for (;;) {
        const s = await this.d.store.sessions.getSession(inv.subjectId);
        if (!s || s.state === 'closed') return false; // purged or closed: the book credits the payer
        const event: SessionEvent | null = s.state === 'awaiting_deposit' ? 'deposit_paid' : s.state === 'active' ? null : 'topped_up';
        const to = event ? nextSessionState(s.state, event) : null;
        const moved = await this.d.store.sessions.moveSession({
          sessionId: s.id,
          from: [s.state],
          to,
          settle: { paymentHash: inv.paymentHash, status: 'paid' },
          ledger: [{ sessionId: s.id, kind: inv.purpose as 'deposit' | 'topup', amountMsats: inv.amountMsats, paymentHash: inv.paymentHash, ref: `${inv.purpose}:${inv.paymentHash}` }],
          touch: true,
        });
        if (moved) {
          this.d.log.info({ sessionId: s.id, purpose: inv.purpose, amountSats: inv.amountMsats / 1000, to: to ?? s.state }, 'session funded');
          return true;
        }
        if ((await this.d.book.get(inv.paymentHash))?.status === 'paid') return 'already'; // reported twice: counted once
        // else the session's state moved under us: read it again
      }
    };
    return {
      paid,
      expired: async (inv) => {
        if (inv.purpose !== 'deposit' || (await this.d.store.sessions.getSession(inv.subjectId))?.state !== 'awaiting_deposit') return false;
        const purged = await this.d.store.sessions.purgeUnpaidSession(inv.subjectId, inv.paymentHash);
        if (purged) this.d.log.info({ sessionId: inv.subjectId }, 'unpaid session purged');
        return purged;
      },
      late: async (inv) => ({ reason: (await this.d.store.sessions.getSession(inv.subjectId)) ? 'payment to a closed session' : 'payment to a session purged unpaid', intents: [] }),
    };
  }

  /**
   * A zap from the session's bound pubkey paid one of its open deposit or top-up invoices (core/zaps.ts):
   * the session is funded as if that invoice were paid, and the invoice is withdrawn (paid as well, it is
   * credited). False when the invoice is no longer open or the session is closed. Runs in the zap's transaction.
   */
  async paidByZap(inv: BookInvoice, t: StoreOps): Promise<boolean> {
    const s = await t.sessions.getSession(inv.subjectId);
    if (!s || s.state === 'closed' || inv.status !== 'open') return false;
    const event: SessionEvent | null = s.state === 'awaiting_deposit' ? 'deposit_paid' : s.state === 'active' ? null : 'topped_up';
    return t.sessions.moveSession({
      sessionId: s.id,
      from: [s.state],
      to: event ? nextSessionState(s.state, event) : null,
      settle: { paymentHash: inv.paymentHash, status: 'withdrawn' },
      ledger: [{ sessionId: s.id, kind: inv.purpose as 'deposit' | 'topup', amountMsats: inv.amountMsats, paymentHash: inv.paymentHash, ref: `${inv.purpose}:${inv.paymentHash}` }],
      touch: true,
    });
  }

  /**
   * Checks a credential for a session route. `preimage` (L402): must open one of the session's invoices,
   * any of them; a paid one the watcher missed is settled here.
   */
  async authorize(macaroon: string, ctx: { sessionId?: string; preimage?: string; op: SessionOp }): Promise<{ sessionId: string; maxSatsPerRequest: number | null }> {
    const v = verifySessionMacaroon(this.d.rootKey, macaroon, { now: this.nowS(), sessionId: ctx.sessionId, op: ctx.op });
    if (!v.ok) throw Refusal.of('unauthorized', v.reason);
    const s = await this.d.store.sessions.getSession(v.sessionId);
    if (!s) throw Refusal.of('unauthorized', 'unknown session');
    if (ctx.preimage !== undefined) {
      const hash = createHash('sha256').update(Buffer.from(ctx.preimage, 'hex')).digest('hex');
      const inv = await this.d.book.get(hash);
      if (!inv || inv.subjectKind !== 'session' || inv.subjectId !== s.id) throw Refusal.of('unauthorized', 'the preimage does not pay an invoice of this session');
      if (inv.status !== 'paid') await this.d.book.settle(hash); // the preimage is proof of payment
    }
    return { sessionId: s.id, maxSatsPerRequest: v.maxSatsPerRequest };
  }

  /** Asks the backend about the session's open invoices (a GET after the watcher was down). */
  async refresh(sessionId: string): Promise<void> {
    for (const inv of await this.d.book.of('session', sessionId)) if (inv.status === 'open') await this.d.book.refresh(inv.paymentHash);
  }

  /** Runs one request on the session and waits for its result (HTTP). Refusals are thrown. */
  async run(req: NewJob, sessionId: string, maxSatsPerRequest: number | null): Promise<SessionRunOutcome> {
    const r = await this.open(req, sessionId, maxSatsPerRequest);
    if (r.status === 'insufficient') return r;
    return this.outcome(req.id, sessionId);
  }

  /**
   * Reserves and starts one request on the session (HTTP); `live` follows the answer as it is generated
   * (and can stop it: what was generated is charged). Refusals are thrown.
   */
  async open(req: NewJob, sessionId: string, maxSatsPerRequest: number | null, live?: StreamHooks): Promise<{ status: 'created' } | { status: 'insufficient'; balanceMsats: number; neededMsats: number }> {
    if (live) this.d.runner.attach(req.id, live);
    let r: Awaited<ReturnType<JobService['openOnSession']>>;
    try {
      r = await this.d.jobs.openOnSession(req, sessionId, maxSatsPerRequest);
    } catch (err) {
      this.d.runner.detach(req.id);
      throw err;
    }
    // Created: the work step uses the hooks and drops them; otherwise nobody will.
    if (r.status !== 'created') this.d.runner.detach(req.id);
    if (r.status === 'duplicate') throw new Refusal('invalid', 'duplicate request id');
    return r.status === 'created' ? { status: 'created' } : r;
  }

  /** Waits for a request opened on the session to end: its result and the balance, or its failure. */
  async outcome(jobId: string, sessionId: string): Promise<Exclude<SessionRunOutcome, { status: 'insufficient' }>> {
    const job = (await this.d.runner.settled(jobId))!;
    if (job.state !== 'complete') return { status: 'failed', job, debitedMsats: await this.d.store.sessions.debitedFor(job.id) };
    return { status: 'done', job, balanceMsats: await this.d.store.sessions.balanceMsats(sessionId) };
  }

  /**
   * The L402 challenge that lets this session's holder go on: the open deposit invoice while the session
   * waits for it, else a top-up of at least `minSats` (an open one handed out again), each with its macaroon.
   */
  async challenge(sessionId: string, minSats: number): Promise<{ invoice: NewBookInvoice; macaroon: string }> {
    const s = await this.d.store.sessions.getSession(sessionId);
    if (s?.state === 'awaiting_deposit') {
      const deposit = (await this.d.book.of('session', sessionId)).find((i) => i.purpose === 'deposit' && i.status === 'open');
      if (deposit) return { invoice: deposit, macaroon: this.mint(sessionId, deposit.paymentHash) };
    }
    return this.topup(sessionId, minSats, { reuseOpen: true });
  }

  /** Closes a session on request; a bound pubkey gets the remaining balance as credit. */
  async close(sessionId: string): Promise<SessionView> {
    // The balance is read and moved out in one transaction: nothing else can move it meanwhile.
    const { balance, moveOut, pubkey } = await this.d.store.tx(async (t) => {
      const s = await t.sessions.getSession(sessionId);
      if (!s) throw new Refusal('not-found', 'no such session');
      if (!nextSessionState(s.state, 'closed')) throw new Refusal('conflict', `a session in state ${s.state} cannot be closed`);
      const balance = await t.sessions.balanceMsats(sessionId);
      const moveOut = Boolean(s.pubkey && balance > 0);
      await t.sessions.moveSession({
        sessionId,
        from: [s.state],
        to: 'closed',
        ledger: moveOut ? [{ sessionId, kind: 'close', amountMsats: -balance, ref: `close:${sessionId}` }] : [],
        credits: moveOut ? [{ account: s.pubkey!, deltaMsats: balance, reason: `balance of closed session ${sessionId}`, jobId: null, ref: `session-close:${sessionId}` }] : [],
      });
      return { balance, moveOut, pubkey: s.pubkey };
    });
    this.d.log.info({ sessionId, balanceSats: balance / 1000, creditedTo: moveOut ? pubkey : null }, 'session closed');
    return (await this.view(sessionId))!;
  }

  /** Idle sessions expire after the TTL; a bound pubkey keeps the balance as credit. (Unpaid ones go with their invoice.) */
  async expireDue(nowMs = this.d.clock.nowMs()): Promise<void> {
    for (const s of await this.d.store.sessions.idleSessions(['active', 'depleted'], nowMs - this.d.settings.sessionTtlSecs * 1000)) {
      const { balance, moveOut } = await this.d.store.tx(async (t) => {
        const balance = await t.sessions.balanceMsats(s.id);
        const moveOut = Boolean(s.pubkey && balance > 0);
        await t.sessions.moveSession({
          sessionId: s.id,
          from: [s.state],
          to: 'expired',
          ledger: moveOut ? [{ sessionId: s.id, kind: 'expire', amountMsats: -balance, ref: `expire:${s.id}:${s.lastUsedAt}` }] : [],
          credits: moveOut ? [{ account: s.pubkey!, deltaMsats: balance, reason: `balance of expired session ${s.id}`, jobId: null, ref: `session-expire:${s.id}:${s.lastUsedAt}` }] : [],
        });
        return { balance, moveOut };
      });
      this.d.log.info({ sessionId: s.id, balanceSats: balance / 1000, creditedTo: moveOut ? s.pubkey : null }, 'idle session expired');
    }
  }
}
