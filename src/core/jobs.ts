// The paid AI job service (SPEC 3): intake -> eval invoice -> eval -> work invoice -> work -> result.
// Every move goes through the transition table and is persisted, with the events it publishes, the
// invoice it issues or settles and the credits it moves, in one transaction before any side effect.
// Whoever wins the compare-and-set runs the next step, so each step runs once per process.
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import * as store from '../store/jobs.ts';
import { creditBalanceMsats } from '../store/credits.ts';
import type { CreditEntry } from '../store/credits.ts';
import type { Agent } from '../ai/agent.ts';
import type { Invoice, PaymentBackend } from '../payments/payments.ts';
import type { PriceOracle } from '../pricing/oracle.ts';
import { actualCostUsd, costLedger, quoteWork, usdToSats, type PricingBreakdown, type PricingParams } from '../pricing/pricing.ts';
import * as sessions from '../store/sessions.ts';
import type { LedgerEntry } from '../store/sessions.ts';
import type { Usage } from '../ai/agent.ts';
import { JOB_INITIAL_STATES, nextJobState, TransitionError, UNPAID_JOB_STATES, type JobEvent, type JobState } from './job-machine.ts';
import { KeyedMutex } from './mutex.ts';
import type { InvoiceRecord, Job, NewJob, PublishIntent } from './types.ts';

export interface JobSettings {
  evalFeeSats: number;
  invoiceExpirySecs: number;
  maxOpenUnpaidPerClient: number;
  maxOpenUnpaidTotal: number;
}

export interface JobDeps {
  db: Db;
  payments: PaymentBackend;
  agent: Agent;
  oracle: PriceOracle;
  pricing: PricingParams;
  settings: JobSettings;
  log: Logger;
  /** Called after a commit that recorded events to publish. */
  onIntents: () => void;
  /** Called with every invoice issued, so a polling backend can watch it. */
  onInvoice?: (invoice: Invoice) => void;
  /** Test-only fault points (see README, TIMMY_FAULT). */
  fault: (point: string) => void;
}

export type SubmitOutcome =
  | { status: 'created'; job: Job; invoice: Invoice | null }
  | { status: 'duplicate' }
  | { status: 'deferred' } // shutting down: not recorded, so a relay hands it back after the restart
  | { status: 'refused'; reason: string };

/** A refusal answered with NIP-90 `error`; the prefix says why, as relays do (`rate-limited:`). */
export class Refusal extends Error {
  override name = 'Refusal';
}

type InvoiceRow = Omit<InvoiceRecord, 'status' | 'paidAt'>;

const sats = (msats: number) => `${msats / 1000} sats`;

/** The credits account of a job's payer: its pubkey, or the job itself for anonymous HTTP jobs. */
export function creditAccount(job: Pick<NewJob, 'customerPubkey' | 'id'>): string {
  return job.customerPubkey ?? `job:${job.id}`;
}

/**
 * Whether the customer has paid anything for this job. Relay URLs a customer names are dialled only
 * then: an unpaid request cannot make Timmy connect anywhere.
 */
export function customerHasPaid(job: Pick<Job, 'state' | 'evalPaymentHash' | 'evalCreditMsats'>): boolean {
  if (['evaluating', 'awaiting_work_payment', 'executing', 'complete', 'rejected'].includes(job.state)) return true;
  return job.state === 'failed' && (job.evalPaymentHash !== null || job.evalCreditMsats > 0);
}

export class JobService {
  private readonly inflightIds = new Set<string>(); // submissions between dedupe check and insert
  private readonly running = new Map<string, Promise<void>>(); // background eval/work per job
  private readonly accounts = new KeyedMutex(); // serialises credit spending per account
  private stopping = false;

  constructor(private readonly d: JobDeps) {}

  private get log() {
    return this.d.log;
  }

  /** Accepts a parsed request: dedupes it, applies the caps and the bid, issues the eval invoice. */
  async submit(req: NewJob): Promise<SubmitOutcome> {
    if (this.stopping) return { status: 'deferred' };
    if (this.inflightIds.has(req.id) || store.jobExists(this.d.db, req.id)) return { status: 'duplicate' };
    this.inflightIds.add(req.id);
    try {
      if (req.params.session) return await this.openOnNostrSession(req, req.params.session);
      this.checkCaps(req);
      await this.checkBid(req);
      return await this.accounts.run(creditAccount(req), () => this.open(req));
    } catch (err) {
      if (err instanceof Refusal) {
        // A Nostr request is recorded so the same event from other relays is answered once; an HTTP
        // caller gets the reason in the response and has nothing to dedupe.
        if (req.source === 'nostr') this.refuse(req, err.message);
        return { status: 'refused', reason: err.message };
      }
      throw err;
    } finally {
      this.inflightIds.delete(req.id);
    }
  }

  /** Creates the job with its eval invoice, spending the payer's credit first. Runs under the account lock. */
  private async open(req: NewJob): Promise<SubmitOutcome> {
    const account = creditAccount(req);
    const feeMsats = this.d.settings.evalFeeSats * 1000;
    const creditMsats = req.customerPubkey ? Math.min(feeMsats, creditBalanceMsats(this.d.db, account)) : 0;
    const dueMsats = feeMsats - creditMsats;
    const invoice = dueMsats > 0 ? await this.createInvoice(dueMsats, `Timmy: evaluation fee for job ${req.id.slice(0, 12)}`) : null;
    const creditNote = creditMsats > 0 ? ` (${sats(creditMsats)} paid from your credit)` : '';
    const intents: PublishIntent[] = invoice
      ? [
          {
            type: 'feedback',
            status: 'payment-required',
            message: `Pay the evaluation fee of ${sats(dueMsats)} to have your request reviewed${creditNote}.`,
            amountMsats: invoice.amountMsats,
            bolt11: invoice.bolt11,
          },
        ]
      : [];
    const spend: CreditEntry[] =
      creditMsats > 0 ? [{ account, deltaMsats: -creditMsats, reason: 'spent on the evaluation fee', jobId: req.id, ref: `spend-eval:${req.id}` }] : [];
    const created = store.createJob(this.d.db, {
      job: req,
      state: JOB_INITIAL_STATES.invoiced,
      patch: { evalPaymentHash: invoice?.paymentHash ?? null, evalCreditMsats: creditMsats },
      invoice: invoice ? this.invoiceRow(invoice, req.id, 'eval') : undefined,
      intents: this.forSource(req, intents),
      credits: spend,
    });
    if (!created) return { status: 'duplicate' };
    if (invoice) this.d.onInvoice?.(invoice);
    this.d.onIntents();
    this.log.info({ jobId: req.id, source: req.source, creditMsats }, 'job created');
    let job = store.getJob(this.d.db, req.id)!;
    if (!invoice) {
      const message = creditMsats > 0 ? `Evaluation fee paid from your credit${creditNote}; evaluating.` : 'Evaluating your request.';
      this.advance(job, 'eval_paid', {}, [this.processing(message)]);
      job = store.getJob(this.d.db, req.id)!;
    }
    return { status: 'created', job, invoice };
  }

  get(id: string): Job | undefined {
    return store.getJob(this.d.db, id);
  }

  invoice(paymentHash: string | null): InvoiceRecord | undefined {
    return paymentHash ? store.getInvoice(this.d.db, paymentHash) : undefined;
  }

  /**
   * Returns the job after asking the backend about the invoice it waits on: a payment the push path
   * missed (watcher down) advances the job here, exactly once like any other report.
   */
  async refresh(id: string): Promise<Job | undefined> {
    const job = store.getJob(this.d.db, id);
    if (!job) return undefined;
    const hash = job.state === 'awaiting_eval_payment' ? job.evalPaymentHash : job.state === 'awaiting_work_payment' ? job.workPaymentHash : null;
    if (hash && (await this.safeIsPaid(hash))) {
      await this.onInvoicePaid(hash);
      return store.getJob(this.d.db, id);
    }
    return job;
  }

  /** A Nostr request naming a session: only the session's bound pubkey may spend it. */
  private async openOnNostrSession(req: NewJob, sessionId: string): Promise<SubmitOutcome> {
    const session = sessions.getSession(this.d.db, sessionId);
    if (!session || !req.customerPubkey || session.pubkey !== req.customerPubkey) {
      throw new Refusal('unauthorized: that session does not exist or is not bound to your pubkey');
    }
    const r = await this.openOnSession(req, sessionId, null);
    if (r.status === 'insufficient') {
      throw new Refusal(`payment-required: the session balance is ${sats(r.balanceMsats)}, this request needs ${sats(r.neededMsats)}; top it up`);
    }
    if (r.status === 'refused') throw new Refusal(r.reason);
    if (r.status === 'duplicate') return { status: 'duplicate' };
    return { status: 'created', job: r.job, invoice: null };
  }

  /**
   * Runs a request on a pre-funded session (SPEC 6): reserves the quoted price (refusing when the balance
   * cannot cover it or it exceeds `maxSatsPerRequest`), then works; the actual cost is debited at the end.
   */
  async openOnSession(
    req: NewJob,
    sessionId: string,
    maxSatsPerRequest: number | null,
  ): Promise<
    | { status: 'created'; job: Job }
    | { status: 'duplicate' }
    | { status: 'insufficient'; balanceMsats: number; neededMsats: number }
    | { status: 'refused'; reason: string }
  > {
    if (this.stopping) return { status: 'refused', reason: 'unavailable: shutting down, try again shortly' };
    const btc = await this.d.oracle.btcUsd();
    const pricing = quoteWork(this.d.pricing, req.input, btc.usd, req.params.maxTokens);
    if (maxSatsPerRequest !== null && pricing.amountSats > maxSatsPerRequest) {
      return { status: 'refused', reason: `caveat max_sats_per_request=${maxSatsPerRequest} exceeded: this request needs up to ${pricing.amountSats} sats` };
    }
    const reserveMsats = pricing.amountSats * 1000;
    const outcome = store.createSessionJob(this.d.db, {
      job: { ...req, params: { ...req.params, session: sessionId } },
      state: JOB_INITIAL_STATES.session,
      patch: { pricingJson: JSON.stringify(pricing), reason: 'paid by a pre-funded session' },
      intents: this.forSource(req, [this.processing(`Reserved up to ${pricing.amountSats} sats on your session; working on it.`, JSON.stringify(pricing))]),
      sessionId,
      reserveMsats,
    });
    if (outcome === 'duplicate') return { status: 'duplicate' };
    if (outcome === 'unavailable') return { status: 'refused', reason: 'unavailable: the session is not active (unpaid, expired or closed)' };
    if (outcome === 'insufficient') {
      const session = sessions.getSession(this.d.db, sessionId);
      if (session?.state === 'active') sessions.moveSession(this.d.db, { sessionId, from: ['active'], to: 'depleted' });
      return { status: 'insufficient', balanceMsats: sessions.balanceMsats(this.d.db, sessionId), neededMsats: reserveMsats };
    }
    this.d.onIntents();
    this.log.info({ jobId: req.id, sessionId, reserveMsats }, 'session job reserved');
    this.runInBackground(req.id);
    return { status: 'created', job: store.getJob(this.d.db, req.id)! };
  }

  /** Resolves when the job's running step (if any) has committed. */
  async settled(jobId: string): Promise<Job | undefined> {
    await this.running.get(jobId);
    return store.getJob(this.d.db, jobId);
  }

  /** Records a request that cannot be served and answers it with `error` (once per request id). */
  refuse(req: NewJob, reason: string): void {
    const created = store.createJob(this.d.db, {
      job: req,
      state: JOB_INITIAL_STATES.refused,
      patch: { errorMessage: reason },
      intents: this.forSource(req, [{ type: 'feedback', status: 'error', message: reason }]),
    });
    if (created) {
      this.log.info({ jobId: req.id, reason }, 'request refused');
      this.d.onIntents();
    }
  }

  private checkCaps(req: NewJob): void {
    const { maxOpenUnpaidPerClient, maxOpenUnpaidTotal } = this.d.settings;
    if (store.countJobs(this.d.db, UNPAID_JOB_STATES) >= maxOpenUnpaidTotal) {
      throw new Refusal('rate-limited: too many unpaid jobs are open, try again later');
    }
    const perClient = req.customerPubkey
      ? store.countJobs(this.d.db, UNPAID_JOB_STATES, { customerPubkey: req.customerPubkey })
      : req.clientAddress
        ? store.countJobs(this.d.db, UNPAID_JOB_STATES, { clientAddress: req.clientAddress })
        : 0;
    if (perClient >= maxOpenUnpaidPerClient) {
      throw new Refusal(`rate-limited: you have ${perClient} unpaid jobs open; pay them or let them expire first`);
    }
  }

  private async checkBid(req: NewJob): Promise<void> {
    if (req.bidMsats == null) return;
    const btc = await this.d.oracle.btcUsd();
    const quote = quoteWork(this.d.pricing, req.input, btc.usd, req.params.maxTokens);
    const priceMsats = (this.d.settings.evalFeeSats + quote.amountSats) * 1000;
    if (req.bidMsats < priceMsats) {
      throw new Refusal(
        `bid too low: ${req.bidMsats} msats offered, the price is ${priceMsats} msats (${this.d.settings.evalFeeSats} sats evaluation + ${quote.amountSats} sats estimated work)`,
      );
    }
  }

  private async createInvoice(amountMsats: number, memo: string): Promise<Invoice> {
    try {
      return await this.d.payments.createInvoice({ amountMsats, memo, expirySecs: this.d.settings.invoiceExpirySecs });
    } catch (err) {
      this.log.error({ err }, 'invoice creation failed');
      throw new Refusal('unavailable: the payment backend cannot issue an invoice right now, try again later');
    }
  }

  private invoiceRow(inv: Invoice, jobId: string, purpose: 'eval' | 'work'): InvoiceRow {
    return { paymentHash: inv.paymentHash, jobId, purpose, amountMsats: inv.amountMsats, bolt11: inv.bolt11, expiresAt: inv.expiresAt };
  }

  /** HTTP jobs publish nothing to relays. */
  private forSource(job: Pick<NewJob, 'source'>, intents: PublishIntent[]): PublishIntent[] {
    return job.source === 'nostr' ? intents : [];
  }

  private processing(message: string, content?: string): PublishIntent {
    return { type: 'feedback', status: 'processing', message, ...(content ? { content } : {}) };
  }

  /** Applies `event` through the table; true when this call made the move. */
  private advance(
    job: Job,
    event: JobEvent,
    patch: store.JobPatch,
    intents: PublishIntent[],
    extra: Pick<store.TransitionArgs, 'settle' | 'credits' | 'sessionLedger'> & { invoice?: InvoiceRow } = {},
  ): boolean {
    const to = nextJobState(job.state, event);
    if (!to) throw new TransitionError(job.state, event);
    const moved = store.transitionJob(this.d.db, { jobId: job.id, from: job.state, to, patch, intents: this.forSource(job, intents), ...extra });
    if (moved) {
      this.log.info({ jobId: job.id, from: job.state, to }, 'job transition');
      if (intents.length) this.d.onIntents();
      this.d.fault(`after-commit:${to}`);
      if (to === 'evaluating' || to === 'executing') this.runInBackground(job.id);
    }
    return moved;
  }

  /** A settlement report (pushed, polled or from the dev route). Idempotent. */
  async onInvoicePaid(paymentHash: string): Promise<void> {
    const inv = store.getInvoice(this.d.db, paymentHash);
    if (!inv) {
      this.log.debug({ paymentHash }, 'settlement for an unknown invoice ignored');
      return;
    }
    const job = store.getJob(this.d.db, inv.jobId);
    if (!job) return;
    const waiting: JobState = inv.purpose === 'eval' ? 'awaiting_eval_payment' : 'awaiting_work_payment';
    const ownInvoice = (inv.purpose === 'eval' ? job.evalPaymentHash : job.workPaymentHash) === paymentHash;
    if (job.state === waiting && ownInvoice) {
      const message = inv.purpose === 'eval' ? 'Payment received; evaluating your request.' : 'Payment received; working on your request.';
      this.advance(job, inv.purpose === 'eval' ? 'eval_paid' : 'work_paid', {}, [this.processing(message)], {
        settle: { paymentHash, status: 'paid' },
      });
    } else if (inv.status !== 'paid') {
      // Money for a job that no longer waits for it (expired, cancelled): never lost, credited.
      const account = creditAccount(job);
      const credited = store.settleLate(this.d.db, {
        paymentHash,
        jobId: job.id,
        credit: { account, deltaMsats: inv.amountMsats, reason: `payment after the job was ${job.state}`, jobId: job.id, ref: `late:${paymentHash}` },
        intents: this.forSource(job, [
          {
            type: 'feedback',
            status: 'error',
            message: `payment received after the job was ${job.state}: ${sats(inv.amountMsats)} credited to ${job.customerPubkey ? 'your pubkey' : account}, spent automatically on your next request`,
          },
        ]),
      });
      if (credited) {
        this.log.warn({ jobId: job.id, paymentHash, amountMsats: inv.amountMsats, state: job.state }, 'late payment credited');
        this.d.onIntents();
      }
    }
  }

  /** NIP-09: the requester deleted an unpaid request. True when it was cancelled. */
  cancel(jobId: string, byPubkey: string): boolean {
    const job = store.getJob(this.d.db, jobId);
    if (!job || job.customerPubkey !== byPubkey || !nextJobState(job.state, 'deleted')) return false;
    return this.advance(
      job,
      'deleted',
      { errorMessage: 'cancelled by the customer' },
      [{ type: 'feedback', status: 'error', message: 'cancelled: the request was deleted by its author' }],
      { credits: this.refundOfAppliedCredit(job) },
    );
  }

  /** Credit applied to the invoice a job was waiting on goes back when that invoice dies unpaid. */
  private refundOfAppliedCredit(job: Job): CreditEntry[] {
    const stage = job.state === 'awaiting_eval_payment' ? 'eval' : 'work';
    const applied = stage === 'eval' ? job.evalCreditMsats : job.workCreditMsats;
    if (applied <= 0) return [];
    return [{ account: creditAccount(job), deltaMsats: applied, reason: `credit returned: the ${stage} invoice was not paid`, jobId: job.id, ref: `refund-${stage}:${job.id}` }];
  }

  private runInBackground(jobId: string): void {
    if (this.running.has(jobId) || this.stopping) return;
    const p = this.step(jobId)
      .catch((err) => this.log.error({ err, jobId }, 'job step crashed'))
      .finally(() => this.running.delete(jobId));
    this.running.set(jobId, p);
  }

  private async step(jobId: string): Promise<void> {
    const job = store.getJob(this.d.db, jobId);
    if (!job) return;
    if (job.state === 'evaluating') await this.evaluate(job);
    else if (job.state === 'executing') await this.execute(job);
  }

  private async evaluate(job: Job): Promise<void> {
    let verdict;
    try {
      verdict = await this.d.agent.evaluate(job.input);
    } catch (err) {
      this.fail(job, `evaluation failed: ${(err as Error).message}`);
      return;
    }
    if (!verdict.accept) {
      this.advance(job, 'rejected', { reason: verdict.reason }, [{ type: 'feedback', status: 'error', message: verdict.reason }]);
      return;
    }
    const btc = await this.d.oracle.btcUsd();
    const pricing = quoteWork(this.d.pricing, job.input, btc.usd, job.params.maxTokens);
    try {
      await this.accounts.run(creditAccount(job), () => this.quote(job, verdict.reason, pricing));
    } catch (err) {
      this.fail(job, `the payment backend could not issue the work invoice: ${(err as Error).message}`);
    }
  }

  /** Issues the work invoice (credit first) and moves to awaiting_work_payment. Runs under the account lock. */
  private async quote(job: Job, reason: string, pricing: ReturnType<typeof quoteWork>): Promise<void> {
    const account = creditAccount(job);
    const priceMsats = pricing.amountSats * 1000;
    const creditMsats = job.customerPubkey ? Math.min(priceMsats, creditBalanceMsats(this.d.db, account)) : 0;
    const dueMsats = priceMsats - creditMsats;
    const invoice = dueMsats > 0 ? await this.d.payments.createInvoice({ amountMsats: dueMsats, memo: `Timmy: work for job ${job.id.slice(0, 12)}`, expirySecs: this.d.settings.invoiceExpirySecs }) : null;
    const creditNote = creditMsats > 0 ? ` (${sats(creditMsats)} paid from your credit)` : '';
    const intents: PublishIntent[] = invoice
      ? [
          {
            type: 'feedback',
            status: 'payment-required',
            message: `Accepted. Pay ${sats(dueMsats)} for the work${creditNote}.`,
            amountMsats: invoice.amountMsats,
            bolt11: invoice.bolt11,
            content: JSON.stringify(pricing),
          },
        ]
      : [];
    const moved = this.advance(
      job,
      'accepted',
      { reason, pricingJson: JSON.stringify(pricing), workPaymentHash: invoice?.paymentHash ?? null, workCreditMsats: creditMsats },
      intents,
      {
        invoice: invoice ? this.invoiceRow(invoice, job.id, 'work') : undefined,
        credits: creditMsats > 0 ? [{ account, deltaMsats: -creditMsats, reason: 'spent on work', jobId: job.id, ref: `spend-work:${job.id}` }] : [],
      },
    );
    if (moved && invoice) this.d.onInvoice?.(invoice);
    if (moved && !invoice) {
      const next = store.getJob(this.d.db, job.id)!;
      this.advance(next, 'work_paid', {}, [this.processing(`Accepted; the work was paid from your credit${creditNote}. Working on it.`, JSON.stringify(pricing))]);
    }
  }

  private async execute(job: Job): Promise<void> {
    const pricing = job.pricing;
    if (!pricing) {
      this.fail(job, 'internal: work started without a quote');
      return;
    }
    let answer;
    try {
      answer = await this.d.agent.work(job.input, pricing.estimatedOutputTokens);
    } catch (err) {
      this.fail(job, `work failed: ${(err as Error).message}`);
      return;
    }
    if (!answer.text.trim()) {
      this.fail(job, 'work failed: the model returned no output');
      return;
    }
    if (job.sessionId) {
      this.completeOnSession(job, pricing, answer);
      return;
    }
    const ledger = costLedger(this.d.pricing, answer.usage, pricing.amountSats);
    this.advance(job, 'completed', { result: answer.text, costLedgerJson: JSON.stringify(ledger) }, [
      { type: 'result' },
      { type: 'feedback', status: 'success', message: 'Done. Thank you for using Timmy.' },
    ]);
  }

  /** Debits the actual cost (at the reservation's BTC price, rounded up, never above the reservation). */
  private completeOnSession(job: Job, pricing: PricingBreakdown, answer: { text: string; usage: Usage }): void {
    const sessionId = job.sessionId!;
    const reservedMsats = sessions.reservedFor(this.d.db, job.id);
    const costUsd = actualCostUsd(this.d.pricing, answer.usage.inputTokens, answer.usage.outputTokens);
    const debitMsats = Math.min(reservedMsats, usdToSats(costUsd, pricing.btcPriceUsd) * 1000);
    const ledger = costLedger(this.d.pricing, answer.usage, debitMsats / 1000);
    // Computed and committed with no await in between: nothing else can move this balance meanwhile.
    const balanceAfter = sessions.balanceMsats(this.d.db, sessionId) + reservedMsats - debitMsats;
    const moved = this.advance(
      job,
      'completed',
      { result: answer.text, costLedgerJson: JSON.stringify(ledger) },
      [
        { type: 'result', balanceMsats: balanceAfter },
        { type: 'feedback', status: 'success', message: `Done. ${sats(debitMsats)} debited from your session.` },
      ],
      { sessionLedger: this.settleReservation(job, reservedMsats, debitMsats) },
    );
    if (moved && balanceAfter <= 0) sessions.moveSession(this.d.db, { sessionId, from: ['active'], to: 'depleted' });
  }

  private settleReservation(job: Job, reservedMsats: number, debitMsats: number): LedgerEntry[] {
    const sessionId = job.sessionId!;
    const entries: LedgerEntry[] = [{ sessionId, kind: 'release', amountMsats: reservedMsats, jobId: job.id, ref: `release:${job.id}` }];
    if (debitMsats > 0) entries.push({ sessionId, kind: 'debit', amountMsats: -debitMsats, jobId: job.id, ref: `debit:${job.id}` });
    return entries;
  }

  /** Ends a working job as failed; what the customer paid for the failed step becomes credit. */
  private fail(job: Job, message: string): void {
    if (job.sessionId) {
      // Failed or empty output is not charged: the whole reservation goes back to the session.
      const reserved = sessions.reservedFor(this.d.db, job.id);
      this.log.warn({ jobId: job.id, message }, 'session job failed; reservation released');
      this.advance(job, 'failed', { errorMessage: message }, [{ type: 'feedback', status: 'error', message: `${message}; nothing was debited` }], {
        sessionLedger: this.settleReservation(job, reserved, 0),
      });
      return;
    }
    const stage = job.state === 'evaluating' ? 'eval' : 'work';
    const hash = stage === 'eval' ? job.evalPaymentHash : job.workPaymentHash;
    const invoiced = hash ? (store.getInvoice(this.d.db, hash)?.amountMsats ?? 0) : 0;
    const paidMsats = invoiced + (stage === 'eval' ? job.evalCreditMsats : job.workCreditMsats);
    const account = creditAccount(job);
    const credits: CreditEntry[] =
      paidMsats > 0 ? [{ account, deltaMsats: paidMsats, reason: `refund: ${message}`, jobId: job.id, ref: `fail:${job.id}` }] : [];
    const note = paidMsats > 0 ? `; ${sats(paidMsats)} credited to ${job.customerPubkey ? 'your pubkey' : account}, spent automatically on your next request` : '';
    this.log.warn({ jobId: job.id, message, creditedMsats: paidMsats }, 'job failed');
    this.advance(job, 'failed', { errorMessage: message }, [{ type: 'feedback', status: 'error', message: `${message}${note}` }], { credits });
  }

  /** After a restart: rerun owed work and look at every open invoice once, a page at a time. */
  async resume(): Promise<void> {
    for (const job of store.listJobs(this.d.db, { states: ['evaluating', 'executing'] })) {
      if (job.sessionId && job.source === 'http') {
        // Its HTTP caller is gone with the old process: release the reservation instead of rerunning.
        this.fail(job, 'interrupted by a restart');
        continue;
      }
      this.log.info({ jobId: job.id, state: job.state }, 'resuming job');
      this.runInBackground(job.id);
    }
    let after = '';
    for (;;) {
      const page = store.openInvoices(this.d.db, after);
      if (page.length === 0) break;
      for (const inv of page) {
        if (this.stopping) return;
        if (this.d.payments.watch) this.d.payments.watch(inv.paymentHash, inv.expiresAt);
        else if (await this.safeIsPaid(inv.paymentHash)) await this.onInvoicePaid(inv.paymentHash);
      }
      after = page[page.length - 1]!.paymentHash;
      await new Promise((r) => setImmediate(r)); // let I/O (HTTP, relays) in between pages
    }
  }

  /** The backend's word on an invoice; null when it cannot be asked right now. */
  private async safeIsPaid(paymentHash: string): Promise<boolean | null> {
    try {
      return await this.d.payments.isPaid(paymentHash);
    } catch (err) {
      this.log.warn({ err, paymentHash }, 'invoice status check failed');
      return null;
    }
  }

  /** Expires jobs whose invoice ran out unpaid (checking once more that it really is unpaid). */
  async expireDue(nowS = Math.floor(Date.now() / 1000)): Promise<void> {
    for (const inv of store.dueInvoices(this.d.db, nowS)) {
      const paid = await this.safeIsPaid(inv.paymentHash);
      if (paid === null) continue; // the backend is unreachable: never expire what may have been paid
      if (paid) {
        await this.onInvoicePaid(inv.paymentHash);
        continue;
      }
      const job = store.getJob(this.d.db, inv.jobId);
      const waiting: JobState = inv.purpose === 'eval' ? 'awaiting_eval_payment' : 'awaiting_work_payment';
      const moved =
        job?.state === waiting &&
        this.advance(
          job,
          'invoice_expired',
          { errorMessage: 'invoice expired unpaid' },
          [{ type: 'feedback', status: 'error', message: 'expired: the invoice was not paid in time' }],
          { settle: { paymentHash: inv.paymentHash, status: 'expired' }, credits: this.refundOfAppliedCredit(job) },
        );
      if (!moved) store.setInvoiceStatus(this.d.db, inv.paymentHash, 'expired');
    }
  }

  /** Stops starting new work and waits (up to `graceMs`) for running steps to commit. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const all = Promise.allSettled([...this.running.values()]);
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
  }

  get runningCount(): number {
    return this.running.size;
  }
}
