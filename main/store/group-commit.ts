/**
 * Group commit: store writes requested during one turn of the event loop share one
 * transaction, so a burst of incoming MESSAGEs costs one fsync instead of one each, and every
 * caller still learns only after the commit that its write is durable (then it sends its 2xx).
 *
 *   const stored = await group.run(() => store.messages.recordIncoming(input));
 *   // committed and synced: now answer 200
 *
 * If the shared transaction fails (one bad input among many), it is rolled back and each write
 * is retried alone, so one failure cannot cost the others theirs. `work` must therefore only
 * touch the store: it may run twice.
 */
export interface Batcher {
  batch<T>(fn: () => T): T;
}

interface Pending {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly store: Batcher,
    /** When to flush; by default after the I/O callbacks of this loop turn. */
    private readonly schedule: (flush: () => void) => void = (flush) => setImmediate(flush),
  ) {}

  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        this.schedule(() => this.flush());
      }
    });
  }

  /** Commits everything pending now. */
  flush(): void {
    this.scheduled = false;
    const items = this.pending;
    this.pending = [];
    if (items.length === 0) return;
    let results: unknown[];
    try {
      results = this.store.batch(() => items.map((item) => item.work()));
    } catch {
      for (const item of items) {
        try {
          item.resolve(this.store.batch(item.work));
        } catch (error) {
          item.reject(error);
        }
      }
      return;
    }
    items.forEach((item, index) => item.resolve(results[index]));
  }
}
