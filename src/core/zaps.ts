// Zaps as payment (NIP-57): Timmy is its own LNURL-pay endpoint. A zap request becomes an invoice in the
// book (subject kind `zap`) committing to the request's SHA-256. When it is paid, in one transaction:
// - a zap of a job's request or of its `payment-required` feedback, while that stage waits, for at least the
//   amount due, pays the stage (the stage's own invoice is withdrawn: paid too, it is credited like any late
//   payment); more than due is credited to the zapper;
// - a zap for less, or for a job that no longer waits, is credited to the zapper, and the job's customer is
//   told the shortfall; never a silent loss;
// - a profile zap (no `e`) from the pubkey a session is bound to pays that session's open deposit or top-up
//   invoice the same way (for less: credited);
// - a zap of anything else is a tip, recorded;
// and every paid zap request gets its receipt (kind 9735) in the outbox, to the request's relays and ours.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../log.ts';
import type * as store from '../store/zaps.ts';
import type { Store, StoreOps } from '../store/store.ts';
import { msatsText, type InvoiceBook, type SubjectHandler } from './book.ts';
import type { JobService } from './jobs.ts';
import type { SessionService } from './sessions.ts';
import { errorFeedback, forSource } from './job-moves.ts';
import type { Clock, Publisher } from './ports.ts';
import { Refusal } from './refusal.ts';
import type { BookInvoice, CreditEntry, Job, PublishIntent } from './types.ts';

export interface ZapDeps {
  store: Store;
  book: InvoiceBook;
  jobs: Pick<JobService, 'paidByZap'>;
  sessions: Pick<SessionService, 'paidByZap'>;
  publisher: Publisher;
  clock: Clock;
  log: Logger;
  maxOpenZaps: number;
}

/** A checked zap request (nostr/zaps.ts checkZapRequest), in the core's terms. */
export interface ZapRequest {
  id: string;
  sender: string;
  targetEventId: string | null;
  /** The request exactly as received: its SHA-256 is the invoice's description hash, and the receipt quotes it. */
  json: string;
  /** Where the receipt goes besides Timmy's relays (already through the relay policy). */
  relays: string[];
}

export class ZapService {
  constructor(private readonly d: ZapDeps) {
    d.book.handle('zap', this.handler());
  }

  /** The invoice for a zap request of `amountMsats` (the same request asked twice gets the same invoice). */
  async invoiceFor(req: ZapRequest, amountMsats: number): Promise<string> {
    const known = await this.d.store.zaps.getZap(req.id);
    if (known) {
      if (known.amountMsats !== amountMsats) throw Refusal.of('conflict', 'this zap request was already invoiced for another amount');
      return (await this.d.book.get(known.paymentHash))!.bolt11;
    }
    // A profile zap (no `e`) from a pubkey a session is bound to pays that session's open deposit or top-up.
    const session = req.targetEventId ? null : await this.d.store.zaps.openSessionInvoiceOf(req.sender);
    return this.issue({
      id: req.id,
      senderPubkey: req.sender,
      targetEventId: req.targetEventId,
      targetJobId: req.targetEventId ? await this.d.store.zaps.jobOfEvent(req.targetEventId) : null,
      targetSessionId: session?.sessionId ?? null,
      targetPaymentHash: session?.paymentHash ?? null,
      requestJson: req.json,
      relays: req.relays,
      amountMsats,
      memo: 'Zap to Timmy',
    });
  }

  /** A plain LNURL-pay payment (no zap request): a tip, committing to the LNURL metadata. */
  async invoiceForTip(metadata: string, amountMsats: number): Promise<string> {
    const id = `tip:${randomBytes(16).toString('hex')}`;
    return this.issue({ id, senderPubkey: '', targetEventId: null, targetJobId: null, targetSessionId: null, targetPaymentHash: null, requestJson: metadata, relays: [], amountMsats, memo: 'Tip to Timmy' });
  }

  private async issue(z: Omit<store.NewZap, 'paymentHash' | 'createdAt'> & { memo: string }): Promise<string> {
    if ((await this.d.book.openCount('zap')) >= this.d.maxOpenZaps) throw Refusal.of('rate-limited', 'too many unpaid zap invoices are open, try again later');
    const descriptionHash = createHash('sha256').update(z.requestJson, 'utf8').digest('hex');
    const inv = await this.d.book.issue({ subjectKind: 'zap', subjectId: z.id, pubkey: z.senderPubkey || null, purpose: 'zap', amountMsats: z.amountMsats, memo: z.memo, descriptionHash });
    const now = this.d.clock.nowMs();
    await this.d.store.tx(async (t) => {
      await t.invoices.insertInvoice(inv, now);
      const { memo: _, ...row } = z;
      await t.zaps.insertZap({ ...row, paymentHash: inv.paymentHash, createdAt: now });
    });
    this.d.log.info({ zap: z.id, targetJobId: z.targetJobId, amountSats: z.amountMsats / 1000 }, 'zap invoice issued');
    return inv.bolt11;
  }

  /** The zap subject's side of the book: what a paid zap does (always handled: a zap is never late). */
  private handler(): SubjectHandler {
    return {
      paid: async (inv) => {
        const zap = await this.d.store.zaps.getZap(inv.subjectId);
        if (!zap) return false;
        const outcome = { value: 'tip' as store.ZapOutcome };
        const done = await this.d.store.txIf(async (t) => {
          const now = this.d.clock.nowMs();
          if (!(await t.invoices.markInvoice(inv.paymentHash, 'paid', now))) return false;
          outcome.value = zap.targetJobId ? await this.payJob(zap, inv, t) : zap.targetPaymentHash ? await this.paySession(zap, inv, t) : 'tip';
          await t.zaps.settleZap(zap.id, outcome.value, now);
          if (!zap.id.startsWith('tip:')) {
            const receipt: PublishIntent = { type: 'zap_receipt', zapRequest: zap.requestJson, bolt11: inv.bolt11, paidAt: Math.floor(now / 1000), relays: zap.relays };
            await t.outbox.insertIntents(zap.id, [receipt], now);
          }
          return true;
        });
        if (done) {
          this.d.log.info({ zap: zap.id, outcome: outcome.value, targetJobId: zap.targetJobId, amountSats: inv.amountMsats / 1000 }, 'zap paid');
          this.d.publisher.wake();
        }
        return done;
      },
      expired: async () => false, // nothing waits on a zap invoice: the book expires it
      late: async (inv) => ({ reason: `zap ${inv.subjectId.slice(0, 12)} paid twice`, intents: [] }),
    };
  }

  /** Inside the zap's transaction: pays the job's waiting stage, or credits the zapper (and tells the customer why). */
  private async payJob(zap: store.ZapRow, inv: BookInvoice, t: StoreOps): Promise<store.ZapOutcome> {
    const job = await t.jobs.getJob(zap.targetJobId!);
    const credit = async (amountMsats: number, reason: string): Promise<void> => {
      const entry: CreditEntry = { account: zap.senderPubkey, deltaMsats: amountMsats, reason, jobId: zap.targetJobId, ref: `zap:${zap.id}` };
      await t.credits.addCredit(entry);
    };
    const stage = job?.state === 'awaiting_eval_payment' ? 'eval' : job?.state === 'awaiting_work_payment' ? 'work' : null;
    const stageHash = stage === 'eval' ? job!.evalPaymentHash : stage === 'work' ? job!.workPaymentHash : null;
    const due = stageHash ? ((await this.d.book.get(stageHash, t))?.amountMsats ?? null) : null;
    if (!job || !stage || !stageHash || due === null) {
      await credit(inv.amountMsats, `zap after the job was ${job?.state ?? 'gone'}`);
      if (job) await this.tell(t, job, `the zap of ${msatsText(inv.amountMsats)} came after the job was ${job.state}: it was credited to the zapper, spent automatically on their next request`);
      return 'credited';
    }
    if (inv.amountMsats < due) {
      await credit(inv.amountMsats, `zap below the ${msatsText(due)} due`);
      await this.tell(t, job, `the zap of ${msatsText(inv.amountMsats)} is ${msatsText(due - inv.amountMsats)} short of the ${msatsText(due)} due: it was credited to the zapper, spent automatically on their next request; the invoice is still open`);
      return 'credited';
    }
    if (!(await this.d.jobs.paidByZap(job, stageHash, t))) {
      await credit(inv.amountMsats, 'zap for a stage paid meanwhile');
      return 'credited';
    }
    if (inv.amountMsats > due) await credit(inv.amountMsats - due, `zap above the ${msatsText(due)} due`);
    return stage === 'eval' ? 'paid_eval' : 'paid_work';
  }

  /** Inside the zap's transaction: pays the session invoice the zap was for, or credits the zapper. */
  private async paySession(zap: store.ZapRow, inv: BookInvoice, t: StoreOps): Promise<store.ZapOutcome> {
    const target = await this.d.book.get(zap.targetPaymentHash, t);
    const credit = (amountMsats: number, reason: string) =>
      t.credits.addCredit({ account: zap.senderPubkey, deltaMsats: amountMsats, reason, jobId: null, ref: `zap:${zap.id}` });
    if (!target || target.amountMsats > inv.amountMsats || !(await this.d.sessions.paidByZap(target, t))) {
      await credit(inv.amountMsats, target && target.amountMsats > inv.amountMsats ? `zap below the ${msatsText(target.amountMsats)} the session invoice asks` : 'zap for a session invoice no longer open');
      return 'credited';
    }
    if (inv.amountMsats > target.amountMsats) await credit(inv.amountMsats - target.amountMsats, `zap above the ${msatsText(target.amountMsats)} the session invoice asks`);
    return target.purpose === 'deposit' ? 'paid_deposit' : 'paid_topup';
  }

  private async tell(t: StoreOps, job: Job, words: string): Promise<void> {
    await t.outbox.insertIntents(job.id, forSource(job, [errorFeedback('credited', `credited: ${words}`)]), this.d.clock.nowMs());
  }
}
