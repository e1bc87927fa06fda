// The paid AI job service (SPEC 3): intake -> eval invoice -> eval -> work invoice -> work -> result.
// Every move goes through the transition table and is persisted, with the events it publishes,
// before any side effect; whoever wins the compare-and-set runs the work, so it runs once.
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import * as store from '../store/jobs.ts';
import type { Agent } from '../ai/agent.ts';
import type { Invoice, PaymentBackend } from '../payments/payments.ts';
import type { PriceOracle } from '../pricing/oracle.ts';
import { costLedger, quoteWork, type PricingParams } from '../pricing/pricing.ts';
import { nextJobState, TransitionError, UNPAID_JOB_STATES, type JobEvent } from './job-machine.ts';
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

export class JobService {
  private readonly inflightIds = new Set<string>(); // submissions between dedupe check and insert
  private readonly running = new Map<string, Promise<void>>(); // background eval/work per job
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
      this.checkCaps(req);
      await this.checkBid(req);
      const feeMsats = this.d.settings.evalFeeSats * 1000;
      const invoice =
        feeMsats > 0
          ? await this.createInvoice(feeMsats, `Timmy: evaluation fee for job ${req.id.slice(0, 12)}`)
          : null;
      const intents: PublishIntent[] = invoice
        ? [
            {
              type: 'feedback',
              status: 'payment-required',
              message: `Pay the evaluation fee of ${this.d.settings.evalFeeSats} sats to have your request reviewed.`,
              amountMsats: invoice.amountMsats,
              bolt11: invoice.bolt11,
            },
          ]
        : [];
      const created = store.createJob(this.d.db, {
        job: req,
        state: 'awaiting_eval_payment',
        patch: { evalPaymentHash: invoice?.paymentHash ?? null },
        invoice: invoice ? this.invoiceRecord(invoice, req.id, 'eval') : undefined,
        intents: this.forSource(req, intents),
      });
      if (!created) return { status: 'duplicate' };
      this.d.onIntents();
      this.log.info({ jobId: req.id, source: req.source }, 'job created');
      const job = store.getJob(this.d.db, req.id)!;
      if (!invoice) this.advance(job, 'eval_paid', {}, [this.processing('Evaluating your request.')]);
      return { status: 'created', job, invoice };
    } catch (err) {
      if (err instanceof Refusal) {
        this.refuse(req, err.message);
        return { status: 'refused', reason: err.message };
      }
      throw err;
    } finally {
      this.inflightIds.delete(req.id);
    }
  }

  /** Records a request that cannot be served and answers it with `error` (once per request id). */
  refuse(req: NewJob, reason: string): void {
    const created = store.createJob(this.d.db, {
      job: req,
      state: 'failed',
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
      throw new Refusal('rate-limited: too many unpaid jobs open, try again later');
    }
    if (req.customerPubkey && store.countJobs(this.d.db, UNPAID_JOB_STATES, req.customerPubkey) >= maxOpenUnpaidPerClient) {
      throw new Refusal(`rate-limited: you have ${maxOpenUnpaidPerClient} unpaid jobs open; pay or let them expire first`);
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

  private invoiceRecord(inv: Invoice, jobId: string, purpose: 'eval' | 'work'): Omit<InvoiceRecord, 'status' | 'paidAt'> {
    return { paymentHash: inv.paymentHash, jobId, purpose, amountMsats: inv.amountMsats, bolt11: inv.bolt11, expiresAt: inv.expiresAt };
  }

  /** HTTP jobs publish nothing to relays. */
  private forSource(job: Pick<NewJob, 'source'>, intents: PublishIntent[]): PublishIntent[] {
    return job.source === 'nostr' ? intents : [];
  }

  private processing(message: string): PublishIntent {
    return { type: 'feedback', status: 'processing', message };
  }

  /** Applies `event` to the job through the table; true when this call made the move. */
  private advance(
    job: Job,
    event: JobEvent,
    patch: store.JobPatch,
    intents: PublishIntent[],
    invoice?: Omit<InvoiceRecord, 'status' | 'paidAt'>,
  ): boolean {
    const to = nextJobState(job.state, event);
    if (!to) throw new TransitionError(job.state, event);
    const moved = store.transitionJob(this.d.db, { jobId: job.id, from: job.state, to, patch, invoice, intents: this.forSource(job, intents) });
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
    store.markInvoicePaid(this.d.db, paymentHash);
    const job = store.getJob(this.d.db, inv.jobId);
    if (!job) return;
    const event: JobEvent = inv.purpose === 'eval' ? 'eval_paid' : 'work_paid';
    const expected = inv.purpose === 'eval' ? 'awaiting_eval_payment' : 'awaiting_work_payment';
    if (job.state === expected) {
      const message = inv.purpose === 'eval' ? 'Payment received; evaluating your request.' : 'Payment received; working on your request.';
      this.advance(job, event, {}, [this.processing(message)]);
    } else if (job.state === 'expired' || job.state === 'cancelled') {
      // Credits for late payments arrive with the credits ledger; until then the operator must see this.
      this.log.warn({ jobId: job.id, paymentHash, amountMsats: inv.amountMsats }, 'payment arrived for a job no longer payable');
    }
  }

  private runInBackground(jobId: string): void {
    if (this.running.has(jobId) || this.stopping) return;
    const p = this.work(jobId)
      .catch((err) => this.log.error({ err, jobId }, 'job step crashed'))
      .finally(() => this.running.delete(jobId));
    this.running.set(jobId, p);
  }

  private async work(jobId: string): Promise<void> {
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
    let invoice: Invoice;
    try {
      invoice = await this.d.payments.createInvoice({
        amountMsats: pricing.amountSats * 1000,
        memo: `Timmy: work for job ${job.id.slice(0, 12)}`,
        expirySecs: this.d.settings.invoiceExpirySecs,
      });
    } catch (err) {
      this.fail(job, `the payment backend could not issue the work invoice: ${(err as Error).message}`);
      return;
    }
    this.advance(
      job,
      'accepted',
      { reason: verdict.reason, pricingJson: JSON.stringify(pricing), workPaymentHash: invoice.paymentHash },
      [
        {
          type: 'feedback',
          status: 'payment-required',
          message: `Accepted. Pay ${pricing.amountSats} sats for the work.`,
          amountMsats: invoice.amountMsats,
          bolt11: invoice.bolt11,
          content: JSON.stringify(pricing),
        },
      ],
      this.invoiceRecord(invoice, job.id, 'work'),
    );
  }

  private async execute(job: Job): Promise<void> {
    const pricing = job.pricing;
    const inv = job.workPaymentHash ? store.getInvoice(this.d.db, job.workPaymentHash) : undefined;
    if (!pricing || !inv) {
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
    const ledger = costLedger(this.d.pricing, answer.usage, inv.amountMsats / 1000);
    this.advance(job, 'completed', { result: answer.text, costLedgerJson: JSON.stringify(ledger) }, [
      { type: 'result' },
      { type: 'feedback', status: 'success', message: 'Done. Thank you for using Timmy.' },
    ]);
  }

  private fail(job: Job, message: string): void {
    this.log.warn({ jobId: job.id, message }, 'job failed');
    this.advance(job, 'failed', { errorMessage: message }, [{ type: 'feedback', status: 'error', message }]);
  }

  /** After a restart: rerun owed work and look at every open invoice once, a page at a time. */
  async resume(): Promise<void> {
    for (const job of store.listJobs(this.d.db, { states: ['evaluating', 'executing'] })) {
      this.log.info({ jobId: job.id, state: job.state }, 'resuming job');
      this.runInBackground(job.id);
    }
    let after = '';
    for (;;) {
      const page = store.openInvoices(this.d.db, after);
      if (page.length === 0) break;
      for (const inv of page) {
        if (this.stopping) return;
        if (await this.safeIsPaid(inv.paymentHash)) await this.onInvoicePaid(inv.paymentHash);
      }
      after = page[page.length - 1]!.paymentHash;
    }
  }

  private async safeIsPaid(paymentHash: string): Promise<boolean> {
    try {
      return await this.d.payments.isPaid(paymentHash);
    } catch (err) {
      this.log.warn({ err, paymentHash }, 'invoice status check failed');
      return false;
    }
  }

  /** Expires jobs whose invoice ran out unpaid (checking once more that it really is unpaid). */
  async expireDue(nowS = Math.floor(Date.now() / 1000)): Promise<void> {
    for (const inv of store.dueInvoices(this.d.db, nowS)) {
      if (await this.safeIsPaid(inv.paymentHash)) {
        await this.onInvoicePaid(inv.paymentHash);
        continue;
      }
      store.markInvoiceExpired(this.d.db, inv.paymentHash);
      const job = store.getJob(this.d.db, inv.jobId);
      const waiting = inv.purpose === 'eval' ? 'awaiting_eval_payment' : 'awaiting_work_payment';
      if (job && job.state === waiting) {
        this.advance(job, 'invoice_expired', { errorMessage: 'invoice expired unpaid' }, [
          { type: 'feedback', status: 'error', message: 'expired: the invoice was not paid in time' },
        ]);
      }
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
