// How a text job moves: through the transition table, persisted with the events it publishes, the invoice
// it issues or settles and the money it moves, in one transaction before any side effect. Shared by the
// submission side (jobs.ts) and the working side (job-runner.ts).
import type { Logger } from '../log.ts';
import type * as store from '../store/jobs.ts';
import type { Store, StoreOps } from '../store/store.ts';
import type { Publisher } from './ports.ts';
import { nextJobState, TransitionError, type JobEvent } from './job-machine.ts';
import type { Job, NewJob, PublishIntent } from './types.ts';
import { REFUSAL_LABELS, type Refusal } from './refusal.ts';

export interface JobContext {
  store: Store;
  log: Logger;
  publisher: Publisher;
  /** Test-only fault points (see README, TIMMY_FAULT). */
  fault: (point: string) => void;
  /** This worker: the owner named by the leases it takes, and how long they last between renewals. */
  worker: Worker;
}

export interface Worker {
  id: string;
  leaseMs: number;
}

/** The states in which a job's step runs under a lease. */
export const isWorking = (state: Job['state']) => state === 'evaluating' || state === 'executing';

export type MoveExtras = Pick<store.TransitionArgs, 'settle' | 'credits' | 'sessionLedger' | 'invoice'>;

export class JobMoves {
  /** Called after a commit that put a job in a working state (evaluating, executing): run its step. */
  onWorking: (jobId: string) => void = () => {};

  constructor(readonly c: JobContext) {}

  get(id: string, t: StoreOps = this.c.store): Promise<Job | undefined> {
    return t.jobs.getJob(id);
  }

  /**
   * Applies `event` through the table; true when this call made the move. Inside a transaction (`t`), what
   * follows the move (wake-up, the next step) waits for its commit.
   */
  async advance(job: Job, event: JobEvent, patch: store.JobPatch, intents: PublishIntent[], extra: MoveExtras = {}, t: StoreOps = this.c.store): Promise<boolean> {
    const to = nextJobState(job.state, event);
    if (!to) throw new TransitionError(job.state, event);
    // Into a step: this worker leases it. Out of one (or on to the next): only the lease holder may move it.
    const lease = isWorking(to) ? { owner: this.c.worker.id, ms: this.c.worker.leaseMs } : undefined;
    const fence = isWorking(job.state) ? { owner: this.c.worker.id, epoch: job.leaseEpoch } : undefined;
    const moved = await t.jobs.transitionJob({ jobId: job.id, from: job.state, to, patch, intents: forSource(job, intents), ...extra, lease, fence });
    if (moved) {
      this.c.log.info({ jobId: job.id, from: job.state, to }, 'job transition');
      t.afterCommit(() => {
        if (intents.length) this.c.publisher.wake();
        this.c.fault(`after-commit:${to}`);
        if (to === 'evaluating' || to === 'executing') this.onWorking(job.id);
      });
    }
    return moved;
  }
}

/** HTTP jobs publish nothing to relays. */
export function forSource(job: Pick<NewJob, 'source'>, intents: PublishIntent[]): PublishIntent[] {
  return job.source === 'nostr' ? intents : [];
}

export function processing(message: string, content?: string): PublishIntent {
  return { type: 'feedback', status: 'processing', message, ...(content ? { content } : {}) };
}

/** An `error` feedback; `label` is the public prefix (all an encrypted request's error shows in the clear). */
export function errorFeedback(label: string, message: string): PublishIntent {
  return { type: 'feedback', status: 'error', message, label };
}

/** The NIP-90 feedback of a refusal: its words, and its code's label as the public prefix. */
export function refusalFeedback(r: Refusal): PublishIntent {
  return errorFeedback(REFUSAL_LABELS[r.code], r.message);
}
