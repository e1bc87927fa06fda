// One background task at a time, never two: a trigger while it runs asks for exactly one more run right
// after it (the payment backends' poll passes: a reconnect and a timer may both ask, one pass suffices).
export class Coalesced {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly stopped: () => boolean,
  ) {}

  /** Starts the task, or asks for one more run right after the running one. */
  trigger(): void {
    if (this.stopped()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.task()
      .catch(this.onError)
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  /** The run in progress (to wait for at shutdown), if any. */
  get current(): Promise<void> | null {
    return this.running;
  }
}
