// The paid AI job (SPEC 3), submission side: a parsed request is deduped, checked against the caps and its
// bid, charged (credit first, then the eval invoice) and recorded; or run on a pre-funded session; or
// refused with a typed reason. Also the job's invoice handler (paid, expired, late), NIP-09 cancel, and
// reads. The working side (evaluate, quote, execute) is job-runner.ts.
import type * as store from '../store/jobs.ts';
import type { StoreOps } from '../store/store.ts';
import { creditAccount, creditedTo, msatsText, type InvoiceBook, type SubjectHandler } from './book.ts';
import { JOB_INITIAL_STATES, nextJobState, UNPAID_JOB_STATES, type JobState } from './job-machine.ts';
import { errorFeedback, forSource, processing, refusalFeedback, type JobMoves } from './job-moves.ts';
import { Refusal } from './refusal.ts';
import type { Health } from './ports.ts';
import type { Quoter } from './quote.ts';
import type { BookInvoice, CreditEntry, Job, NewBookInvoice, NewJob, PublishIntent } from './types.ts';

export interface JobSettings {
  evalFeeSats: number;
  retentionDays: number; // unserved requests are purged after this many days; 0 keeps them
  maxOpenUnpaidPerClient: number;
  maxOpenUnpaidTotal: number;
  /** NIP-13 difficulty (leading zero bits of the request id) demanded while many unpaid jobs are open; 0: never. */
  powDifficulty: number;
  /** How many open unpaid jobs make proof of work required. */
  powAboveOpenUnpaid: number;
}

/** What a transport knows about the effort behind a request: NIP-13 difficulty of a Nostr event id. */
export interface RequestProof {
  powBits: number;
}

export interface JobDeps {
  moves: JobMoves;
  /** The AI backend's state (last seen; checked afresh when it was seen down): while down, no new work. */
  aiHealth: () => Promise<Health>;
  book: InvoiceBook;
  quoter: Quoter;
  settings: JobSettings;
}

export type SubmitOutcome =
  | { status: 'created'; job: Job; invoice: NewBookInvoice | null }
  | { status: 'duplicate' }
  | { status: 'deferred' } // shutting down: not recorded, so a relay hands it back after the restart
  | { status: 'refused'; refusal: Refusal };

export type SessionOpenOutcome =
  | { status: 'created'; job: Job }
  | { status: 'duplicate' }
  | { status: 'insufficient'; balanceMsats: number; neededMsats: number };

/** The payer of a job: its pubkey, or the job itself for anonymous HTTP jobs. */
export const jobPayer = (job: Pick<NewJob, 'customerPubkey' | 'id'>) => ({ subjectKind: 'job' as const, subjectId: job.id, pubkey: job.customerPubkey });

export class JobService {
  private readonly inflightIds = new Set<string>(); // submissions between dedupe check and insert
  private stopping = false;

  constructor(private readonly d: JobDeps) {
    d.book.handle('job', this.invoiceHandler());
  }

  private get store() {
    return this.d.moves.c.store;
  }

  private get log() {
    return this.d.moves.c.log;
  }

  private lease() {
    return { owner: this.d.moves.c.worker.id, ms: this.d.moves.c.worker.leaseMs };
  }

  get(id: string): Promise<Job | undefined> {
    return this.store.jobs.getJob(id);
  }

  /** Whether a request id is already recorded (served, refused, or in flight). */
  async known(id: string): Promise<boolean> {
    return this.inflightIds.has(id) || (await this.store.jobs.jobExists(id));
  }

  /**
   * Accepts a parsed request: dedupes it, applies the caps, proof of work under load and the bid, charges
   * the eval fee. `proof` is what a Nostr request carries (an HTTP request has none to give).
   */
  async submit(req: NewJob, proof?: RequestProof): Promise<SubmitOutcome> {
    if (this.stopping) return { status: 'deferred' };
    if (this.inflightIds.has(req.id)) return { status: 'duplicate' };
    this.inflightIds.add(req.id);
    try {
      if (await this.store.jobs.jobExists(req.id)) return { status: 'duplicate' };
      await this.checkAi();
      if (req.params.session) return await this.openOnNostrSession(req, req.params.session);
      if (proof) await this.checkPow(proof, this.store);
      await this.checkCaps(req, this.store);
      await this.checkBid(req);
      return await this.d.book.underAccount(creditAccount(jobPayer(req)), () => this.open(req, proof));
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      // A Nostr request is recorded so the same event from other relays is answered once; an HTTP
      // caller gets the refusal in the response and has nothing to dedupe.
      if (req.source === 'nostr') await this.refuse(req, err);
      return { status: 'refused', refusal: err };
    } finally {
      this.inflightIds.delete(req.id);
    }
  }

  /** Creates the job with its eval invoice, spending the payer's credit first. Runs under the account lock. */
  private async open(req: NewJob, proof?: RequestProof): Promise<SubmitOutcome> {
    const charge = await this.d.book.charge({
      ...jobPayer(req),
      purpose: 'eval',
      priceMsats: this.d.settings.evalFeeSats * 1000,
      memo: `Timmy: evaluation fee for job ${req.id.slice(0, 12)}`,
    });
    const creditNote = charge.creditMsats > 0 ? ` (${msatsText(charge.creditMsats)} paid from your credit)` : '';
    // Nothing left to pay (credit, or no fee): the job starts evaluating, in the same commit.
    const intents: PublishIntent[] = charge.invoice
      ? [
          {
            type: 'feedback',
            status: 'payment-required',
            message: `Pay the evaluation fee of ${msatsText(charge.dueMsats)} to have your request reviewed${creditNote}.`,
            amountMsats: charge.invoice.amountMsats,
            bolt11: charge.invoice.bolt11,
          },
        ]
      : [processing(charge.creditMsats > 0 ? `Evaluation fee paid from your credit${creditNote}; evaluating.` : 'Evaluating your request.')];
    const row: store.CreateJobArgs = {
      job: req,
      state: charge.invoice ? JOB_INITIAL_STATES.invoiced : JOB_INITIAL_STATES.credited,
      patch: { evalPaymentHash: charge.invoice?.paymentHash ?? null, evalCreditMsats: charge.creditMsats },
      invoice: charge.invoice ?? undefined,
      intents: forSource(req, intents),
      credits: charge.credits,
      // Paid in full from credit: created evaluating, leased to this worker.
      lease: charge.invoice ? undefined : this.lease(),
    };
    // Grouped with the other creations of this turn: one commit for a burst of requests. The caps are
    // checked again inside it (and the proof of work, whose threshold they move), so a burst that passed the
    // first check together cannot overshoot them; at the total cap the oldest unpaid evaluation makes room in
    // the same commit.
    const created = await this.store.group(async (t) => {
      if (charge.invoice) {
        await t.limits.holdCaps('job'); // first: the counts below stay exact until this commit, across workers
        if (proof) await this.checkPow(proof, t);
        await this.checkCaps(req, t);
        await this.makeRoom(t);
      }
      return t.jobs.createJob(row);
    });
    if (!created) return { status: 'duplicate' };
    this.d.moves.c.publisher.wake();
    this.log.info({ jobId: req.id, source: req.source, creditSats: charge.creditMsats / 1000 }, 'job created');
    if (!charge.invoice) this.d.moves.onWorking(req.id);
    return { status: 'created', job: (await this.store.jobs.getJob(req.id))!, invoice: charge.invoice };
  }

  /** A Nostr request naming a session: only the session's bound pubkey may spend it. */
  private async openOnNostrSession(req: NewJob, sessionId: string): Promise<SubmitOutcome> {
    const session = await this.store.sessions.getSession(sessionId);
    if (!session || !req.customerPubkey || session.pubkey !== req.customerPubkey) {
      throw Refusal.of('unauthorized', 'that session does not exist or is not bound to your pubkey');
    }
    const r = await this.openOnSession(req, sessionId, null);
    if (r.status === 'insufficient') {
      throw Refusal.of('payment-required', `the session balance is ${msatsText(r.balanceMsats)}, this request needs ${msatsText(r.neededMsats)}; top it up`);
    }
    if (r.status === 'duplicate') return { status: 'duplicate' };
    return { status: 'created', job: r.job, invoice: null };
  }

  /**
   * Runs a request on a pre-funded session (SPEC 6): reserves the quoted price (refusing when it exceeds
   * `maxSatsPerRequest`, reporting when the balance cannot cover it), then works; the actual cost is
   * debited at the end (job-runner.ts).
   */
  async openOnSession(req: NewJob, sessionId: string, maxSatsPerRequest: number | null): Promise<SessionOpenOutcome> {
    if (this.stopping) throw Refusal.of('unavailable', 'shutting down, try again shortly');
    await this.checkAi();
    const pricing = await this.d.quoter.counted(req.input, req.params.maxTokens, req.params.chat);
    if (maxSatsPerRequest !== null && pricing.amountSats > maxSatsPerRequest) {
      throw new Refusal('caveat', `caveat max_sats_per_request=${maxSatsPerRequest} exceeded: this request needs up to ${pricing.amountSats} sats`);
    }
    const reserveMsats = pricing.amountSats * 1000;
    const outcome = await this.store.jobs.createSessionJob({
      job: { ...req, params: { ...req.params, session: sessionId } },
      state: JOB_INITIAL_STATES.session,
      patch: { pricingJson: JSON.stringify(pricing), reason: 'paid by a pre-funded session' },
      intents: forSource(req, [processing(`Reserved up to ${pricing.amountSats} sats on your session; working on it.`, JSON.stringify(pricing))]),
      sessionId,
      reserveMsats,
      lease: this.lease(),
    });
    if (outcome === 'duplicate') return { status: 'duplicate' };
    if (outcome === 'unavailable') throw Refusal.of('unavailable', 'the session is not active (unpaid, expired or closed)');
    if (outcome === 'insufficient') {
      const session = await this.store.sessions.getSession(sessionId);
      if (session?.state === 'active') await this.store.sessions.moveSession({ sessionId, from: ['active'], to: 'depleted' });
      return { status: 'insufficient', balanceMsats: await this.store.sessions.balanceMsats(sessionId), neededMsats: reserveMsats };
    }
    this.d.moves.c.publisher.wake();
    this.log.info({ jobId: req.id, sessionId, reservedSats: reserveMsats / 1000 }, 'session job reserved');
    this.d.moves.onWorking(req.id);
    return { status: 'created', job: (await this.store.jobs.getJob(req.id))! };
  }

  /** Records a request that cannot be served and answers it with `error` (once per request id). */
  async refuse(req: NewJob, refusal: Refusal): Promise<void> {
    const created = await this.store.jobs.createJob({
      job: req,
      state: JOB_INITIAL_STATES.refused,
      patch: { errorMessage: refusal.message },
      intents: forSource(req, [refusalFeedback(refusal)]),
    });
    if (created) {
      this.log.info({ jobId: req.id, code: refusal.code, reason: refusal.message }, 'request refused');
      this.d.moves.c.publisher.wake();
    }
  }

  /** Refuses before invoicing while the AI backend is down: an eval fee for work that cannot run is not taken. */
  private async checkAi(): Promise<void> {
    const ai = await this.d.aiHealth();
    if (!ai.ok) throw Refusal.of('unavailable', `the AI backend is not answering right now (${ai.detail}); nothing was charged, try again later`);
  }

  /** The NIP-13 difficulty a Nostr request needs right now: none until many unpaid jobs are open. */
  async powRequired(t: StoreOps = this.store): Promise<number> {
    const { powDifficulty, powAboveOpenUnpaid } = this.d.settings;
    return powDifficulty > 0 && (await this.d.book.openCount('job', t)) >= powAboveOpenUnpaid ? powDifficulty : 0;
  }

  private async checkPow(proof: RequestProof, t: StoreOps): Promise<void> {
    const needed = await this.powRequired(t);
    if (proof.powBits >= needed) return;
    throw Refusal.of(
      'pow-required',
      `difficulty ${needed} (NIP-13: many unpaid requests are open, so a request id needs ${needed} leading zero bits; add a nonce tag and mine it, then send it again)`,
    );
  }

  /**
   * Open unpaid jobs per customer (a bounded range of the customer's index) and in total (one counter row of
   * the invoice book): the cost of the check does not grow with the number of open jobs. The total refuses
   * only when nothing can make room (every open invoice is for work whose evaluation was paid).
   */
  private async checkCaps(req: NewJob, t: StoreOps): Promise<void> {
    const { maxOpenUnpaidPerClient, maxOpenUnpaidTotal } = this.d.settings;
    const by = req.customerPubkey ? { customerPubkey: req.customerPubkey } : req.clientAddress ? { clientAddress: req.clientAddress } : null;
    const perClient = by ? await t.jobs.countJobsOf(UNPAID_JOB_STATES, by, maxOpenUnpaidPerClient) : 0;
    if (perClient >= maxOpenUnpaidPerClient) {
      throw Refusal.of('rate-limited', `you have ${perClient} unpaid jobs open; pay them or let them expire first`);
    }
    if ((await this.d.book.openCount('job', t)) >= maxOpenUnpaidTotal && (await this.d.book.oldestOpen('job', 'eval', 1, t)).length === 0) {
      throw Refusal.of('rate-limited', 'too many unpaid jobs are open, try again later');
    }
  }

  /**
   * At the total cap, the unpaid evaluations that waited longest are dropped (their invoices withdrawn:
   * still payable until they run out, the money then credited) so a flood of throwaway keys cannot lock
   * honest customers out. Runs inside the new job's transaction; throws when nothing can go.
   */
  private async makeRoom(t: StoreOps): Promise<void> {
    const excess = (await this.d.book.openCount('job', t)) - this.d.settings.maxOpenUnpaidTotal + 1;
    if (excess <= 0) return;
    let evicted = 0;
    for (const inv of await this.d.book.oldestOpen('job', 'eval', excess, t)) {
      const job = await t.jobs.getJob(inv.subjectId);
      if (!job || job.state !== 'awaiting_eval_payment' || job.evalPaymentHash !== inv.paymentHash) {
        // Open, yet nothing waits on it (left by an older version): withdrawing it makes room just the same.
        if (await this.d.book.withdraw(inv.paymentHash, t)) evicted++;
        continue;
      }
      const words = `expired: dropped unpaid to make room for newer requests (too many unpaid requests are open); if you pay its invoice anyway, the amount is credited to ${creditedTo(jobPayer(job))} and spent on your next request`;
      const moved = await this.d.moves.advance(
        job,
        'evicted',
        { errorMessage: 'dropped unpaid to make room (total unpaid cap)' },
        [errorFeedback('expired', words)],
        { settle: { paymentHash: inv.paymentHash, status: 'withdrawn' }, credits: this.refundOfAppliedCredit(job) },
        t,
      );
      if (moved) evicted++;
    }
    if (evicted < excess) throw Refusal.of('rate-limited', 'too many unpaid jobs are open, try again later');
    this.log.info({ evicted }, 'oldest unpaid jobs dropped to make room');
  }

  private async checkBid(req: NewJob): Promise<void> {
    if (req.bidMsats == null) return;
    // Before any payment: the estimate, never a call to the AI backend.
    const quote = await this.d.quoter.estimated(req.input, req.params.maxTokens);
    const priceMsats = (this.d.settings.evalFeeSats + quote.amountSats) * 1000;
    if (req.bidMsats < priceMsats) {
      throw Refusal.of(
        'bid-too-low',
        `${req.bidMsats} msats offered, the price is ${priceMsats} msats (${this.d.settings.evalFeeSats} sats evaluation + ${quote.amountSats} sats estimated work)`,
      );
    }
  }

  /**
   * Returns the job after asking the backend about the invoice it waits on: a payment the push path
   * missed (watcher down) advances the job here, exactly once like any other report.
   */
  async refresh(id: string): Promise<Job | undefined> {
    const job = await this.store.jobs.getJob(id);
    if (!job) return undefined;
    const hash = job.state === 'awaiting_eval_payment' ? job.evalPaymentHash : job.state === 'awaiting_work_payment' ? job.workPaymentHash : null;
    if (!hash) return job;
    await this.d.book.refresh(hash);
    return this.store.jobs.getJob(id);
  }

  /**
   * A zap paid the stage the job waits on (NIP-57, core/zaps.ts): the job moves as if its own invoice were
   * paid, and that invoice is withdrawn (still payable: paid as well, it is credited like any late payment).
   * False when the job no longer waits on `stageHash`. Runs inside the zap's transaction.
   */
  async paidByZap(job: Job, stageHash: string, t: StoreOps): Promise<boolean> {
    const eval_ = job.state === 'awaiting_eval_payment';
    if (!eval_ && job.state !== 'awaiting_work_payment') return false;
    if ((eval_ ? job.evalPaymentHash : job.workPaymentHash) !== stageHash) return false;
    return this.d.moves.advance(
      job,
      eval_ ? 'eval_paid' : 'work_paid',
      {},
      [processing(eval_ ? 'Zap received; evaluating your request.' : 'Zap received; working on your request.')],
      { settle: { paymentHash: stageHash, status: 'withdrawn' } },
      t,
    );
  }

  /** NIP-09: the requester deleted an unpaid request. True when it was cancelled. */
  async cancel(jobId: string, byPubkey: string): Promise<boolean> {
    const job = await this.store.jobs.getJob(jobId);
    if (!job || job.customerPubkey !== byPubkey || !nextJobState(job.state, 'deleted')) return false;
    // The invoice is withdrawn (no longer counted as open work, still payable until it runs out): the expiry
    // pass asks the backend about it then, and money that arrives meanwhile is credited like any late payment.
    const hash = job.state === 'awaiting_eval_payment' ? job.evalPaymentHash : job.workPaymentHash;
    return this.d.moves.advance(job, 'deleted', { errorMessage: 'cancelled by the customer' }, [errorFeedback('cancelled', 'cancelled: the request was deleted by its author')], {
      ...(hash ? { settle: { paymentHash: hash, status: 'withdrawn' as const } } : {}),
      credits: this.refundOfAppliedCredit(job),
    });
  }

  /** Credit applied to the invoice a job was waiting on goes back when that invoice dies unpaid. */
  private refundOfAppliedCredit(job: Job): CreditEntry[] {
    const stage = job.state === 'awaiting_eval_payment' ? 'eval' : 'work';
    const applied = stage === 'eval' ? job.evalCreditMsats : job.workCreditMsats;
    if (applied <= 0) return [];
    return [{ account: creditAccount(jobPayer(job)), deltaMsats: applied, reason: `credit returned: the ${stage} invoice was not paid`, jobId: job.id, ref: `refund-${stage}:${job.id}` }];
  }

  /** The job's side of the invoice book: which state waits on which invoice. */
  private invoiceHandler(): SubjectHandler {
    const waiting = async (inv: BookInvoice): Promise<Job | null> => {
      const job = await this.store.jobs.getJob(inv.subjectId);
      if (!job) return null;
      const state: JobState = inv.purpose === 'eval' ? 'awaiting_eval_payment' : 'awaiting_work_payment';
      const current = inv.purpose === 'eval' ? job.evalPaymentHash : job.workPaymentHash;
      return job.state === state && current === inv.paymentHash ? job : null;
    };
    return {
      paid: async (inv) => {
        const job = await waiting(inv);
        if (!job) return false;
        const eval_ = inv.purpose === 'eval';
        return this.d.moves.advance(
          job,
          eval_ ? 'eval_paid' : 'work_paid',
          {},
          [processing(eval_ ? 'Payment received; evaluating your request.' : 'Payment received; working on your request.')],
          { settle: { paymentHash: inv.paymentHash, status: 'paid' } },
        );
      },
      expired: async (inv) => {
        const job = await waiting(inv);
        if (!job) return false;
        return this.d.moves.advance(
          job,
          'invoice_expired',
          { errorMessage: 'invoice expired unpaid' },
          [errorFeedback('expired', 'expired: the invoice was not paid in time')],
          { settle: { paymentHash: inv.paymentHash, status: 'expired' }, credits: this.refundOfAppliedCredit(job) },
        );
      },
      late: async (inv) => {
        const job = await this.store.jobs.getJob(inv.subjectId);
        const state = job?.state ?? 'gone';
        const message = `payment received after the job was ${state}: ${msatsText(inv.amountMsats)} credited to ${creditedTo(jobPayer(job ?? { id: inv.subjectId, customerPubkey: null }))}, spent automatically on your next request`;
        return { reason: `payment after the job was ${state}`, intents: job ? forSource(job, [errorFeedback('credited', message)]) : [] };
      },
    };
  }

  /**
   * Purges requests that were never served (refused, expired, cancelled) older than the retention period,
   * with their events; invoices and credits stay. A page at a time; returns how many went.
   */
  async purgeUnserved(nowMs = Date.now()): Promise<number> {
    if (this.d.settings.retentionDays <= 0) return 0;
    const n = await this.store.jobs.purgeUnserved(nowMs - this.d.settings.retentionDays * 86_400_000);
    if (n > 0) this.log.info({ purged: n, retentionDays: this.d.settings.retentionDays }, 'unserved requests purged');
    return n;
  }

  /** Stops taking new work. */
  stop(): void {
    this.stopping = true;
  }
}
