// The paid AI job lifecycle (SPEC 3) as data: states, events and the one transition table.

export const JOB_STATES = [
  'awaiting_eval_payment',
  'evaluating',
  'rejected',
  'awaiting_work_payment',
  'executing',
  'complete',
  'expired',
  'cancelled',
  'failed',
] as const;
export type JobState = (typeof JOB_STATES)[number];

export const JOB_EVENTS = [
  'eval_paid',
  'accepted',
  'accepted_on_credit', // accepted, and the work paid in full from the customer's credit: one move
  'rejected',
  'work_paid',
  'completed',
  'invoice_expired',
  'evicted', // unpaid evaluation dropped to make room for a newer request (flood defence)
  'deleted',
  'failed',
] as const;
export type JobEvent = (typeof JOB_EVENTS)[number];

/** Allowed moves: state -> event -> next state. Anything not listed is forbidden. */
export const JOB_TRANSITIONS: Readonly<Record<JobState, Partial<Record<JobEvent, JobState>>>> = {
  awaiting_eval_payment: { eval_paid: 'evaluating', invoice_expired: 'expired', evicted: 'expired', deleted: 'cancelled' },
  evaluating: { accepted: 'awaiting_work_payment', accepted_on_credit: 'executing', rejected: 'rejected', failed: 'failed' },
  awaiting_work_payment: { work_paid: 'executing', invoice_expired: 'expired', deleted: 'cancelled' },
  executing: { completed: 'complete', failed: 'failed' },
  rejected: {},
  complete: {},
  expired: {},
  cancelled: {},
  failed: {},
};

/**
 * Where a job starts: invoiced for evaluation, its evaluation paid in full from credit, paid up front by a
 * session, or refused at intake.
 */
export const JOB_INITIAL_STATES = { invoiced: 'awaiting_eval_payment', credited: 'evaluating', session: 'executing', refused: 'failed' } as const satisfies Record<string, JobState>;

/** The state `event` leads to from `state`, or null when the move is forbidden. */
export function nextJobState(state: JobState, event: JobEvent): JobState | null {
  return JOB_TRANSITIONS[state][event] ?? null;
}

export const TERMINAL_JOB_STATES: readonly JobState[] = JOB_STATES.filter(
  (s) => Object.keys(JOB_TRANSITIONS[s]).length === 0,
);

/** States in which an unpaid invoice is outstanding (counted against the unpaid caps). */
export const UNPAID_JOB_STATES: readonly JobState[] = ['awaiting_eval_payment', 'awaiting_work_payment'];

/** States in which Timmy owes work: resumed (run again) after a restart. */
export const WORKING_JOB_STATES: readonly JobState[] = ['evaluating', 'executing'];

/**
 * Whether the customer has paid anything for this job. Relay URLs a customer names are dialled only
 * then: an unpaid request cannot make Timmy connect anywhere.
 */
export function customerHasPaid(job: { state: JobState; evalPaymentHash: string | null; evalCreditMsats: number }): boolean {
  if (['evaluating', 'awaiting_work_payment', 'executing', 'complete', 'rejected'].includes(job.state)) return true;
  return job.state === 'failed' && (job.evalPaymentHash !== null || job.evalCreditMsats > 0);
}

export function isJobState(s: string): s is JobState {
  return (JOB_STATES as readonly string[]).includes(s);
}

export class TransitionError extends Error {
  override name = 'TransitionError';
  constructor(
    readonly from: JobState,
    readonly event: JobEvent,
  ) {
    super(`forbidden transition: ${event} from ${from}`);
  }
}
