import { describe, expect, it } from 'vitest';
import { JOB_EVENTS, JOB_STATES, JOB_TRANSITIONS, nextJobState, TERMINAL_JOB_STATES, type JobEvent, type JobState } from './job-machine.ts';

// The lifecycle of SPEC 3, written out independently of the table under test.
const ALLOWED: [JobState, JobEvent, JobState][] = [
  ['awaiting_eval_payment', 'eval_paid', 'evaluating'],
  ['awaiting_eval_payment', 'invoice_expired', 'expired'],
  ['awaiting_eval_payment', 'deleted', 'cancelled'],
  ['awaiting_eval_payment', 'evicted', 'expired'],
  ['evaluating', 'accepted', 'awaiting_work_payment'],
  ['evaluating', 'accepted_on_credit', 'executing'],
  ['evaluating', 'rejected', 'rejected'],
  ['evaluating', 'failed', 'failed'],
  ['awaiting_work_payment', 'work_paid', 'executing'],
  ['awaiting_work_payment', 'invoice_expired', 'expired'],
  ['awaiting_work_payment', 'deleted', 'cancelled'],
  ['executing', 'completed', 'complete'],
  ['executing', 'failed', 'failed'],
];

describe('job transition table', () => {
  it.each(ALLOWED)('%s --%s--> %s', (from, event, to) => {
    expect(nextJobState(from, event)).toBe(to);
  });

  const forbidden = JOB_STATES.flatMap((s) => JOB_EVENTS.map((e) => [s, e] as const)).filter(
    ([s, e]) => !ALLOWED.some(([f, ev]) => f === s && ev === e),
  );
  it(`forbids every other move (${forbidden.length} of them)`, () => {
    expect(forbidden.length).toBe(JOB_STATES.length * JOB_EVENTS.length - ALLOWED.length);
    for (const [s, e] of forbidden) expect(nextJobState(s, e), `${s} --${e}-->`).toBeNull();
  });

  it('terminal states have no way out; every non-terminal state is reachable', () => {
    expect([...TERMINAL_JOB_STATES].sort()).toEqual(['cancelled', 'complete', 'expired', 'failed', 'rejected']);
    const reachable = new Set<JobState>(['awaiting_eval_payment']);
    for (const s of JOB_STATES) for (const to of Object.values(JOB_TRANSITIONS[s])) reachable.add(to!);
    expect([...reachable].sort()).toEqual([...JOB_STATES].sort());
  });

  it('payment can only be taken in a waiting state (no double charge by replaying eval_paid/work_paid)', () => {
    for (const s of JOB_STATES) {
      if (s !== 'awaiting_eval_payment') expect(nextJobState(s, 'eval_paid')).toBeNull();
      if (s !== 'awaiting_work_payment') expect(nextJobState(s, 'work_paid')).toBeNull();
    }
  });
});
