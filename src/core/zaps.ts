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
import { atomically, atomicallyIf, type Db } from '../store/db.ts';
import * as store from '../store/zaps.ts';
import { getJob } from '../store/jobs.ts';
import { insertInvoice, markInvoice } from '../store/invoices.ts';
import { addCredit } from '../store/credits.ts';
import { insertIntents } from '../store/outbox.ts';
import { msatsText, type InvoiceBook, type SubjectHandler } from './book.ts';
import type { JobService } from './jobs.ts';
import type { SessionService } from './sessions.ts';
import { errorFeedback, forSource } from './job-moves.ts';
import type { Clock, Publisher } from './ports.ts';
import { Refusal } from './refusal.ts';
import type { BookInvoice, CreditEntry, PublishIntent } from './types.ts';

export interface ZapDeps {
  db: Db;
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
    const known = store.getZap(this.d.db, req.id);
    if (known) {
      if (known.amountMsats !== amountMsats) throw Refusal.of('conflict', 'this zap request was already invoiced for another amount');
      return this.d.book.get(known.paymentHash)!.bolt11;
    }
    // A profile zap (no `e`) from a pubkey a session is bound to pays that session's open deposit or top-up.
    const session = req.targetEventId ? null : store.openSessionInvoiceOf(this.d.db, req.sender);
    return this.issue({
      id: req.id,
      senderPubkey: req.sender,
      targetEventId: req.targetEventId,
      targetJobId: req.targetEventId ? store.jobOfEvent(this.d.db, req.targetEventId) : null,
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
    if (this.d.book.openCount('zap') >= this.d.maxOpenZaps) throw Refusal.of('rate-limited', 'too many unpaid zap invoices are open, try again later');
    const descriptionHash = createHash('sha256').update(z.requestJson, 'utf8').digest('hex');
    const inv = await this.d.book.issue({ subjectKind: 'zap', subjectId: z.id, pubkey: z.senderPubkey || null, purpose: 'zap', amountMsats: z.amountMsats, memo: z.memo, descriptionHash });
    const now = this.d.clock.nowMs();
    atomically(this.d.db, () => {
      insertInvoice(this.d.db, inv, now);
      const { memo: _, ...row } = z;
      store.insertZap(this.d.db, { ...row, paymentHash: inv.paymentHash, createdAt: now });
    });
    this.d.log.info({ zap: z.id, targetJobId: z.targetJobId, amountSats: z.amountMsats / 1000 }, 'zap invoice issued');
    return inv.bolt11;
  }

  /** The zap subject's side of the book: what a paid zap does (always handled: a zap is never late). */
  private handler(): SubjectHandler {
    return {
      paid: (inv) => {
        const zap = store.getZap(this.d.db, inv.subjectId);
        if (!zap) return false;
        const outcome = { value: 'tip' as store.ZapOutcome };
        const done = atomicallyIf(this.d.db, () => {
          const now = this.d.clock.nowMs();
          if (!markInvoice(this.d.db, inv.paymentHash, 'paid', now)) return false;
          outcome.value = zap.targetJobId ? this.payJob(zap, inv) : zap.targetPaymentHash ? this.paySession(zap, inv) : 'tip';
          store.settleZap(this.d.db, zap.id, outcome.value, now);
          if (!zap.id.startsWith('tip:')) {
            const receipt: PublishIntent = { type: 'zap_receipt', zapRequest: zap.requestJson, bolt11: inv.bolt11, paidAt: Math.floor(now / 1000), relays: zap.relays };
            insertIntents(this.d.db, zap.id, [receipt], now);
          }
          return true;
        });
        if (done) {
          this.d.log.info({ zap: zap.id, outcome: outcome.value, targetJobId: zap.targetJobId, amountSats: inv.amountMsats / 1000 }, 'zap paid');
          this.d.publisher.wake();
        }
        return done;
      },
      expired: () => false, // nothing waits on a zap invoice: the book expires it
      late: (inv) => ({ reason: `zap ${inv.subjectId.slice(0, 12)} paid twice`, intents: [] }),
    };
  }

  /** Inside the zap's transaction: pays the job's waiting stage, or credits the zapper (and tells the customer why). */
  private payJob(zap: store.ZapRow, inv: BookInvoice): store.ZapOutcome {
    const job = getJob(this.d.db, zap.targetJobId!);
    const credit = (amountMsats: number, reason: string): void => {
      const entry: CreditEntry = { account: zap.senderPubkey, deltaMsats: amountMsats, reason, jobId: zap.targetJobId, ref: `zap:${zap.id}` };
      addCredit(this.d.db, entry);
    };
    const stage = job?.state === 'awaiting_eval_payment' ? 'eval' : job?.state === 'awaiting_work_payment' ? 'work' : null;
    const stageHash = stage === 'eval' ? job!.evalPaymentHash : stage === 'work' ? job!.workPaymentHash : null;
    const due = stageHash ? this.d.book.get(stageHash)?.amountMsats ?? null : null;
    if (!job || !stage || !stageHash || due === null) {
      credit(inv.amountMsats, `zap after the job was ${job?.state ?? 'gone'}`);
      if (job) this.tell(job, `the zap of ${msatsText(inv.amountMsats)} came after the job was ${job.state}: it was credited to the zapper, spent automatically on their next request`);
      return 'credited';
    }
    if (inv.amountMsats < due) {
      credit(inv.amountMsats, `zap below the ${msatsText(due)} due`);
      this.tell(job, `the zap of ${msatsText(inv.amountMsats)} is ${msatsText(due - inv.amountMsats)} short of the ${msatsText(due)} due: it was credited to the zapper, spent automatically on their next request; the invoice is still open`);
      return 'credited';
    }
    if (!this.d.jobs.paidByZap(job, stageHash)) {
      credit(inv.amountMsats, 'zap for a stage paid meanwhile');
      return 'credited';
    }
    if (inv.amountMsats > due) credit(inv.amountMsats - due, `zap above the ${msatsText(due)} due`);
    return stage === 'eval' ? 'paid_eval' : 'paid_work';
  }

  /** Inside the zap's transaction: pays the session invoice the zap was for, or credits the zapper. */
  private paySession(zap: store.ZapRow, inv: BookInvoice): store.ZapOutcome {
    const target = this.d.book.get(zap.targetPaymentHash);
    const credit = (amountMsats: number, reason: string) =>
      addCredit(this.d.db, { account: zap.senderPubkey, deltaMsats: amountMsats, reason, jobId: null, ref: `zap:${zap.id}` });
    if (!target || target.amountMsats > inv.amountMsats || !this.d.sessions.paidByZap(target)) {
      credit(inv.amountMsats, target && target.amountMsats > inv.amountMsats ? `zap below the ${msatsText(target.amountMsats)} the session invoice asks` : 'zap for a session invoice no longer open');
      return 'credited';
    }
    if (inv.amountMsats > target.amountMsats) credit(inv.amountMsats - target.amountMsats, `zap above the ${msatsText(target.amountMsats)} the session invoice asks`);
    return target.purpose === 'deposit' ? 'paid_deposit' : 'paid_topup';
  }

  private tell(job: NonNullable<ReturnType<typeof getJob>>, words: string): void {
    insertIntents(this.d.db, job.id, forSource(job, [errorFeedback('credited', `credited: ${words}`)]), this.d.clock.nowMs());
  }
}
