// The paid AI job (SPEC 3), working side: evaluate a paid request, quote and charge the work, execute it,
// and end it (complete, debited on its session, or failed with what was paid credited back). Whoever wins
// the compare-and-set runs the next step, so each step runs once per process; after a crash it runs again.
import type { LedgerEntry } from '../store/sessions.ts';
import { actualCostUsd, costLedger, usdToSats, type PricingBreakdown, type PricingParams } from '../pricing/pricing.ts';
import type { Quoter } from './quote.ts';
import { systemClock, type Agent, type Clock, type StreamHooks, type Usage, type WorkAnswer } from './ports.ts';
import { creditAccount, creditedTo, msatsText, refundCredit, type InvoiceBook } from './book.ts';
import { jobPayer } from './jobs.ts';
import { errorFeedback, isWorking, processing, type JobMoves } from './job-moves.ts';
import { LeaseKeeper } from './leases.ts';
import type { Claimed } from '../store/leases.ts';
import type { CreditEntry, Job } from './types.ts';

export interface RunnerDeps {
  moves: JobMoves;
  book: InvoiceBook;
  agent: Agent;
  quoter: Quoter;
  pricing: PricingParams;
  clock?: Clock;
}

/** NIP-90 `partial` feedback of a streamed Nostr job: at most one per this many ms. */
export const PARTIAL_FEEDBACK_EVERY_MS = 2000;

export class JobRunner {
  private readonly running = new Map<string, Promise<void>>(); // background eval/work per job
  private readonly again = new Set<string>(); // jobs whose running step asked for the next one
  private readonly live = new Map<string, StreamHooks>(); // jobs whose caller follows the answer as it comes
  private stopping = false;

  private readonly leases: LeaseKeeper;

  constructor(private readonly d: RunnerDeps) {
    d.moves.onWorking = (jobId) => this.runInBackground(jobId);
    const c = d.moves.c;
    this.leases = new LeaseKeeper({
      store: c.store,
      table: 'jobs',
      worker: c.worker,
      log: c.log,
      onClaimed: (claimed) => void this.takenOver(claimed).catch((err) => this.log.error({ err, jobId: claimed.id }, 'taking over a job step failed')),
    });
  }

  private get store() {
    return this.d.moves.c.store;
  }

  private get log() {
    return this.d.moves.c.log;
  }

  /** Resolves when the job's running steps (if any, including one queued behind them) have committed. */
  async settled(jobId: string): Promise<Job | undefined> {
    for (let p = this.running.get(jobId); p; p = this.running.get(jobId)) await p;
    return this.store.jobs.getJob(jobId);
  }

  /**
   * Follows a job's answer as it is generated (a streamed HTTP request): set before the job is opened, it is
   * used by the work step and dropped after it. An abort of `hooks.signal` stops the generation; what was
   * generated until then is charged.
   */
  attach(jobId: string, hooks: StreamHooks): void {
    this.live.set(jobId, hooks);
  }

  detach(jobId: string): void {
    this.live.delete(jobId);
  }

  /** Jobs whose evaluation or work is running now. */
  get runningIds(): string[] {
    return [...this.running.keys()];
  }

  private runInBackground(jobId: string): void {
    if (this.stopping) return;
    if (this.running.has(jobId)) {
      // A step moved its own job into the next working state (evaluation accepted, work paid from credit):
      // run that step once this one has finished.
      this.again.add(jobId);
      return;
    }
    const p = this.step(jobId)
      .catch((err) => this.log.error({ err, jobId }, 'job step crashed'))
      .finally(() => {
        this.running.delete(jobId);
        if (this.again.delete(jobId)) this.runInBackground(jobId);
      });
    this.running.set(jobId, p);
  }

  private async step(jobId: string): Promise<void> {
    const job = await this.store.jobs.getJob(jobId);
    if (!job || !isWorking(job.state)) return;
    if (job.leaseOwner !== this.d.moves.c.worker.id) return; // another worker's step
    this.leases.hold(job.id, job.leaseEpoch);
    try {
      if (job.state === 'evaluating') await this.evaluate(job);
      else await this.execute(job);
    } finally {
      this.leases.release(job.id, job.leaseEpoch);
    }
  }

  /** A step whose lease this worker took (after a restart, or from a worker that died): run it again. */
  private async takenOver(claimed: Claimed): Promise<void> {
    const job = await this.store.jobs.getJob(claimed.id);
    if (!job || !isWorking(job.state) || job.leaseEpoch !== claimed.epoch) return;
    if (job.sessionId && job.source === 'http') {
      // Its HTTP caller went with the worker that died: release the reservation instead of rerunning.
      await this.fail(job, 'interrupted', 'interrupted by a restart');
      return;
    }
    this.log.info({ jobId: job.id, state: job.state }, 'resuming job');
    this.runInBackground(job.id);
  }

  private async evaluate(job: Job): Promise<void> {
    let verdict;
    try {
      verdict = await this.d.agent.evaluate(job.input);
    } catch (err) {
      await this.fail(job, 'evaluation failed', `evaluation failed: ${(err as Error).message}`);
      return;
    }
    if (!verdict.accept) {
      await this.d.moves.advance(job, 'rejected', { reason: verdict.reason }, [errorFeedback('rejected', verdict.reason)]);
      return;
    }
    const pricing = await this.d.quoter.counted(job.input, job.params.maxTokens);
    try {
      await this.d.book.underAccount(creditAccount(jobPayer(job)), () => this.quote(job, verdict.reason, pricing));
    } catch (err) {
      this.log.warn({ err, jobId: job.id }, 'work invoice not issued');
      await this.fail(job, 'unavailable', 'unavailable: the payment backend could not issue the work invoice');
    }
  }

  /** Charges the work (credit first, then an invoice) and moves to awaiting_work_payment. Under the account lock. */
  private async quote(job: Job, reason: string, pricing: PricingBreakdown): Promise<void> {
    const charge = await this.d.book.charge({ ...jobPayer(job), purpose: 'work', priceMsats: pricing.amountSats * 1000, memo: `Timmy: work for job ${job.id.slice(0, 12)}` });
    const creditNote = charge.creditMsats > 0 ? ` (${msatsText(charge.creditMsats)} paid from your credit)` : '';
    const patch = { reason, pricingJson: JSON.stringify(pricing), workPaymentHash: charge.invoice?.paymentHash ?? null, workCreditMsats: charge.creditMsats };
    if (!charge.invoice) {
      // Paid in full from credit: accepted and working in one move (nothing can strand between the two).
      await this.d.moves.advance(job, 'accepted_on_credit', patch, [processing(`Accepted; the work was paid from your credit${creditNote}. Working on it.`, JSON.stringify(pricing))], {
        credits: charge.credits,
      });
      return;
    }
    await this.d.moves.advance(
      job,
      'accepted',
      patch,
      [
        {
          type: 'feedback',
          status: 'payment-required',
          message: `Accepted. Pay ${msatsText(charge.dueMsats)} for the work${creditNote}.`,
          amountMsats: charge.invoice.amountMsats,
          bolt11: charge.invoice.bolt11,
          content: JSON.stringify(pricing),
        },
      ],
      { invoice: charge.invoice, credits: charge.credits },
    );
  }

  private async execute(job: Job): Promise<void> {
    const pricing = job.pricing;
    if (!pricing) {
      await this.fail(job, 'internal', 'internal: work started without a quote');
      return;
    }
    let answer;
    try {
      answer = await this.work(job, pricing.estimatedOutputTokens);
    } catch (err) {
      await this.fail(job, 'work failed', `work failed: ${(err as Error).message}`);
      return;
    } finally {
      this.live.delete(job.id);
    }
    if (!answer.text.trim()) {
      // Only the output is free when it is empty: the input the model read is charged like any other.
      const inputMsats = usdToSats(actualCostUsd(this.d.pricing, answer.usage.inputTokens, 0), pricing.btcPriceUsd) * 1000;
      const why = answer.aborted ? 'the client went away before the model wrote anything' : 'the model returned no output';
      await this.fail(job, 'work failed', `work failed: ${why}`, { msats: inputMsats, what: `the ${answer.usage.inputTokens} input tokens it read` });
      return;
    }
    if (answer.aborted) this.log.info({ jobId: job.id, usage: answer.usage }, 'caller went away mid-answer; charging what was generated');
    if (job.sessionId) {
      await this.completeOnSession(job, pricing, answer);
      return;
    }
    const ledger = costLedger(this.d.pricing, answer.usage, pricing.amountSats);
    await this.d.moves.advance(job, 'completed', { result: answer.text, costLedgerJson: JSON.stringify(ledger) }, [
      { type: 'result' },
      { type: 'feedback', status: 'success', message: 'Done. Thank you for using Timmy.' },
    ]);
  }

  /**
   * The work call: streamed when someone follows the answer (a live HTTP caller, a Nostr request with
   * `stream`) or when the job is a conversation; else the plain call on the request text.
   */
  private work(job: Job, maxTokens: number): Promise<WorkAnswer> {
    const live = this.live.get(job.id);
    const partials = job.source === 'nostr' && job.params.stream ? this.partialFeedback(job) : undefined;
    const agent = this.d.agent;
    if (!agent.workStream || (!live && !partials && !job.params.chat)) return agent.work(job.input, maxTokens);
    const prompt = job.params.chat ?? { turns: [{ role: 'user' as const, content: job.input }] };
    const onText = (delta: string) => {
      live?.onText?.(delta);
      partials?.push(delta);
    };
    // The last partial is recorded before the result's transition (else, on a pool, the result could get
    // the lower outbox id and go out first).
    return agent.workStream(prompt, maxTokens, { onText, signal: live?.signal }).then(async (answer) => {
      await partials?.recorded();
      return answer;
    });
  }

  /**
   * NIP-90 `partial` feedback with the text so far (encrypted like the rest for encrypted requests): the
   * first as soon as text comes, then at most one per PARTIAL_FEEDBACK_EVERY_MS. Not a transition: the
   * intent is recorded alone, and the result follows as usual.
   */
  private partialFeedback(job: Job): { push(delta: string): void; recorded(): Promise<void> } {
    const clock = this.d.clock ?? systemClock;
    let text = '';
    let lastMs = -Infinity;
    let last: Promise<void> = Promise.resolve();
    const push = (delta: string) => {
      text += delta;
      const now = clock.nowMs();
      if (now - lastMs < PARTIAL_FEEDBACK_EVERY_MS || !text.trim()) return;
      lastMs = now;
      const content = text;
      last = last
        .then(() => this.store.outbox.insertIntents(job.id, [{ type: 'feedback', status: 'partial', message: 'Working on it; the answer so far is in the content.', content }], Date.now()))
        .then(() => this.d.moves.c.publisher.wake())
        .catch((err) => this.log.warn({ err, jobId: job.id }, 'partial feedback not recorded'));
    };
    return { push, recorded: () => last };
  }

  /** Debits the actual cost (at the reservation's BTC price, rounded up, never above the reservation). */
  private async completeOnSession(job: Job, pricing: PricingBreakdown, answer: { text: string; usage: Usage }): Promise<void> {
    const sessionId = job.sessionId!;
    const costUsd = actualCostUsd(this.d.pricing, answer.usage.inputTokens, answer.usage.outputTokens);
    // The balance is read and the debit committed in one transaction: nothing else can move it meanwhile.
    const { moved, debitMsats, balanceAfter } = await this.store.tx(async (t) => {
      const reservedMsats = await t.sessions.reservedFor(job.id);
      const debitMsats = Math.min(reservedMsats, usdToSats(costUsd, pricing.btcPriceUsd) * 1000);
      const ledger = costLedger(this.d.pricing, answer.usage, debitMsats / 1000);
      const balanceAfter = (await t.sessions.balanceMsats(sessionId)) + reservedMsats - debitMsats;
      const moved = await this.d.moves.advance(
      job,
      'completed',
      { result: answer.text, costLedgerJson: JSON.stringify(ledger) },
      [
        { type: 'result', balanceMsats: balanceAfter },
        { type: 'feedback', status: 'success', message: `Done. ${msatsText(debitMsats)} debited from your session.` },
      ],
      { sessionLedger: settleReservation(job, reservedMsats, debitMsats) },
      t,
    );
      if (moved && balanceAfter <= 0) await t.sessions.moveSession({ sessionId, from: ['active'], to: 'depleted' });
      return { moved, debitMsats, balanceAfter };
    });
    if (moved) this.log.info({ jobId: job.id, sessionId, debitSats: debitMsats / 1000, balanceSats: balanceAfter / 1000 }, 'session debited');
  }

  /**
   * Ends a working job as failed; what the customer paid for the failed step becomes credit, less `kept`
   * (the input a model did read, charged even when its output was empty).
   */
  private async fail(job: Job, label: string, message: string, kept: { msats: number; what: string } | null = null): Promise<void> {
    if (job.sessionId) {
      const reserved = await this.store.sessions.reservedFor(job.id);
      const debitMsats = Math.min(reserved, kept?.msats ?? 0);
      const note = debitMsats > 0 ? `${msatsText(debitMsats)} debited for ${kept!.what}` : 'nothing was debited';
      this.log.warn({ jobId: job.id, message, debitSats: debitMsats / 1000, releasedSats: (reserved - debitMsats) / 1000 }, 'session job failed; reservation released');
      await this.d.moves.advance(job, 'failed', { errorMessage: message }, [errorFeedback(label, `${message}; ${note}`)], {
        sessionLedger: settleReservation(job, reserved, debitMsats),
      });
      return;
    }
    const stage = job.state === 'evaluating' ? 'eval' : 'work';
    const invoiced = (await this.d.book.get(stage === 'eval' ? job.evalPaymentHash : job.workPaymentHash))?.amountMsats ?? 0;
    const paidMsats = invoiced + (stage === 'eval' ? job.evalCreditMsats : job.workCreditMsats);
    const keptMsats = Math.min(paidMsats, kept?.msats ?? 0);
    const refundMsats = paidMsats - keptMsats;
    const credits: CreditEntry[] = refundMsats > 0 ? [refundCredit(jobPayer(job), refundMsats, message)] : [];
    const keptNote = keptMsats > 0 ? `; ${msatsText(keptMsats)} kept for ${kept!.what}` : '';
    const note = refundMsats > 0 ? `${keptNote}; ${msatsText(refundMsats)} credited to ${creditedTo(jobPayer(job))}, spent automatically on your next request` : keptNote;
    this.log.warn({ jobId: job.id, message, creditedSats: refundMsats / 1000, keptSats: keptMsats / 1000 }, 'job failed');
    await this.d.moves.advance(job, 'failed', { errorMessage: message }, [errorFeedback(label, `${message}${note}`)], { credits });
  }

  /**
   * After a restart: reruns owed work (the AI call may repeat; the customer still sees one result), then keeps
   * this worker's leases and takes over the steps of workers that died (see leases.ts).
   */
  async resume(): Promise<void> {
    await this.leases.start();
  }

  /** Stops starting new work and waits (up to `graceMs`) for running steps to commit. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    this.leases.stop();
    const all = Promise.allSettled([...this.running.values()]);
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.leases.giveUp();
  }
}

function settleReservation(job: Job, reservedMsats: number, debitMsats: number): LedgerEntry[] {
  const sessionId = job.sessionId!;
  const entries: LedgerEntry[] = [{ sessionId, kind: 'release', amountMsats: reservedMsats, jobId: job.id, ref: `release:${job.id}` }];
  if (debitMsats > 0) entries.push({ sessionId, kind: 'debit', amountMsats: -debitMsats, jobId: job.id, ref: `debit:${job.id}` });
  return entries;
}
