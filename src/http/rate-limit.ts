// A sliding-window limiter per client address, in memory (limits reset with the process).
export class SlidingWindowLimiter {
  private readonly hits = new Map<string, number[]>(); // address -> request times, ms

  constructor(
    private readonly limit: number,
    private readonly windowMs: number, // ms
    private readonly maxKeys = 100_000,
  ) {}

  /** Records a hit; null when allowed, else the seconds until the next one would be. */
  take(key: string, now = Date.now()): number | null {
    const recent = (this.hits.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (recent.length >= this.limit) {
      this.hits.set(key, recent);
      return Math.max(1, Math.ceil((recent[0]! + this.windowMs - now) / 1000));
    }
    recent.push(now);
    this.hits.delete(key); // re-insert: Map order doubles as LRU order
    this.hits.set(key, recent);
    if (this.hits.size > this.maxKeys) this.hits.delete(this.hits.keys().next().value!);
    return null;
  }
}
