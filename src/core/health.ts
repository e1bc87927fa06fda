// Health as last seen, for an adapter: every real call reports its outcome, and a reading older than
// `staleMs` starts a cheap check in the background (no timers: idle services cost nothing).
import type { Health } from './ports.ts';

export class HealthTracker {
  private state: Health & { at: number } = { ok: true, detail: 'not checked yet', at: 0 };
  private checking: Promise<void> | null = null;

  constructor(
    private readonly check: () => Promise<unknown>,
    private readonly staleMs = 10_000, // ms a reading stays good (a check is one cheap GET)
    private readonly now: () => number = Date.now,
  ) {}

  /** The last reading; starts a check when it is older than `staleMs` (default: the tracker's). */
  read(staleMs = this.staleMs): Health {
    if (this.now() - this.state.at > staleMs) this.refresh();
    return { ok: this.state.ok, detail: this.state.detail };
  }

  /** Runs the check now (once at a time). */
  refresh(): Promise<void> {
    this.checking ??= this.check()
      .then(
        () => this.ok('answering'),
        (err: unknown) => this.failed(err instanceof Error ? err.message : String(err)),
      )
      .finally(() => (this.checking = null));
    return this.checking;
  }

  ok(detail: string): void {
    this.state = { ok: true, detail, at: this.now() };
  }

  failed(detail: string): void {
    this.state = { ok: false, detail, at: this.now() };
  }
}
