// Polling: the only way tests wait (no sleeps for synchronisation). `waitFor` has a fixed deadline and
// is for things that take a bounded time on any machine; when the wait is for a backlog of work, use
// `waitForProgress`, which fails only when a progress measure stopped moving, so a slow machine is
// never mistaken for a stuck one.

/**
 * Every fixed deadline in the tests is multiplied by this (TEST_TIME_SCALE, default 4): a deadline that a
 * fast machine meets with room to spare still holds on a 2-core machine three times slower with the other
 * core busy. Deadlines are there to end a stuck test, never to measure speed.
 */
export const TIME_SCALE = Number(process.env.TEST_TIME_SCALE ?? 4);

type Probe<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/** Polls `probe` until it is truthy; `giveUp` says why to stop waiting (null: keep waiting). */
async function poll<T>(probe: Probe<T>, giveUp: () => Promise<string | null> | string | null, intervalMs: number): Promise<T> {
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    const why = await giveUp();
    if (why) throw new Error(`${why}${lastErr ? ` (last error: ${String(lastErr)})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function waitFor<T>(probe: Probe<T>, what: string, timeoutMs = 15_000, intervalMs = 25): Promise<T> {
  const budget = timeoutMs * TIME_SCALE;
  const deadline = Date.now() + budget;
  return poll(probe, () => (Date.now() > deadline ? `timed out after ${budget} ms waiting for ${what}` : null), intervalMs);
}

/**
 * Lets the event loop take in pending I/O after a long synchronous stretch (e.g. generating thousands of
 * fast-check samples). Without it the next fetch can pick a keep-alive connection the daemon closed
 * meanwhile (its idle timeout is 5 s; a slow machine takes longer than that to sample) and fail with
 * "other side closed" before the close was noticed.
 */
export async function letIoIn(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

export interface ProgressOptions {
  /** Fail when the progress measure has not changed for this long (default 30 s). */
  stallMs?: number;
  /** Poll interval (default 100 ms). */
  intervalMs?: number;
}

/** A progress measure: any JSON-serialisable value; a change (in either direction) counts as progress. */
export type Progress = () => unknown;

/** Watches a progress measure; `stalled()` is a message once it has not moved for `stallMs`, else null. */
function stallDetector(progress: Progress, what: string, stallMs: number) {
  let last: string | undefined;
  let lastMove = Date.now();
  let lastErr: unknown;
  return {
    async stalled(): Promise<string | null> {
      // Sampled before the clock is read: a test process that was itself descheduled for a while
      // sees the work done meanwhile as progress, not as a stall.
      let now: string | undefined;
      try {
        now = JSON.stringify(await progress());
        lastErr = undefined;
      } catch (err) {
        lastErr = err; // e.g. the daemon busy or down: no progress, unless it comes back
      }
      if (now !== undefined && now !== last) {
        last = now;
        lastMove = Date.now();
        return null;
      }
      const idle = Date.now() - lastMove;
      if (idle < stallMs) return null;
      return `no progress for ${idle} ms waiting for ${what} (progress stuck at ${last ?? 'nothing'}${lastErr ? `; last error: ${String(lastErr)}` : ''})`;
    },
  };
}

/**
 * Polls `probe` until it is truthy, for as long as `progress` keeps moving: fails only after `stallMs`
 * without any change of the progress measure (e.g. the daemon's intake or outbox counters).
 */
export async function waitForProgress<T>(probe: Probe<T>, progress: Progress, what: string, { stallMs = 30_000, intervalMs = 100 }: ProgressOptions = {}): Promise<T> {
  const detector = stallDetector(progress, what, stallMs);
  return poll(probe, () => detector.stalled(), intervalMs);
}

/**
 * Runs `work` and fails it when `progress` stops moving for `stallMs` before it settles: a guard for
 * long loops whose speed depends on the machine, instead of a test timeout.
 */
export async function whileProgressing<T>(work: Promise<T>, progress: Progress, what: string, { stallMs = 30_000, intervalMs = 250 }: ProgressOptions = {}): Promise<T> {
  const detector = stallDetector(progress, what, stallMs);
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const guard = new Promise<never>((_, reject) => {
    const tick = async () => {
      if (settled) return;
      const stalled = await detector.stalled();
      if (settled) return;
      if (stalled) reject(new Error(stalled));
      else timer = setTimeout(tick, intervalMs);
    };
    timer = setTimeout(tick, intervalMs);
  });
  try {
    return await Promise.race([work, guard]);
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}
