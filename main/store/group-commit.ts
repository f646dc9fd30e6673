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
 *
 * Durability comes in one of two ways:
 * - from the store itself (SQLite `synchronous = FULL`: the commit returns once the WAL is
 *   synced). The sync then blocks the event loop, once per batch;
 * - from a `sync` function given here, for a store that commits without syncing
 *   (`synchronous = NORMAL`): e.g. an fsync of the WAL on libuv's thread pool. The event loop
 *   goes on receiving (and committing the next batches) while the disk works; a write
 *   resolves only once a sync that began after its commit has finished. One sync runs at a
 *   time and covers every commit before it, so under load one fsync serves many batches.
 *   If the sync fails, the writes it was to cover reject (the UA answers 500, the sender
 *   keeps the message).
 *   While a sync runs, a commit would only wait for the next sync anyway, so the writes that
 *   arrive meanwhile are held and committed together when it finishes, just before the next
 *   sync starts: the same answer times, and under load one transaction per sync instead of
 *   one per loop turn (each commit costs about as much as several inserts: the WAL frames and
 *   the full-text index's segment; bench/store-insert.ts). A slow disk cannot make that one
 *   transaction long: past `MAX_HELD_WRITES` the writes are committed at once, as before.
 */
export interface Batcher {
  batch<T>(fn: () => T): T;
}

/**
 * How many writes wait for a running sync before they are committed anyway (the event loop is
 * blocked for the length of a commit; at about 10 µs a message this bounds it to a few ms).
 */
export const MAX_HELD_WRITES = 256;

interface Pending {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** A committed write whose caller waits for the next sync. */
interface Committed {
  readonly result: unknown;
  readonly pending: Pending;
}

export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;
  /** Committed, not yet covered by a sync (only with `sync`). */
  private unsynced: Committed[] = [];
  private syncing = false;

  constructor(
    private readonly store: Batcher,
    /** When to flush; by default after the I/O callbacks of this loop turn. */
    private readonly schedule: (flush: () => void) => void = (flush) => setImmediate(flush),
    /** Makes every commit so far durable; without it, a commit is taken as durable. */
    private readonly sync?: () => Promise<void>,
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

  /**
   * Commits everything pending and, with `sync`, starts a sync. While a sync runs the writes
   * are held instead (committed when it finishes), unless `MAX_HELD_WRITES` are waiting.
   */
  flush(): void {
    this.scheduled = false;
    if (this.syncing && this.pending.length < MAX_HELD_WRITES) return;
    this.commitPending();
    this.startSync();
  }

  private commitPending(): void {
    const items = this.pending;
    this.pending = [];
    if (items.length === 0) return;
    let results: unknown[];
    try {
      results = this.store.batch(() => items.map((item) => item.work()));
    } catch {
      for (const item of items) {
        try {
          this.committed(item, this.store.batch(item.work));
        } catch (error) {
          item.reject(error);
        }
      }
      return;
    }
    items.forEach((item, index) => this.committed(item, results[index]));
  }

  private committed(item: Pending, result: unknown): void {
    if (this.sync === undefined) item.resolve(result);
    else this.unsynced.push({ result, pending: item });
  }

  private startSync(): void {
    if (this.sync === undefined || this.syncing || this.unsynced.length === 0) return;
    const covered = this.unsynced;
    this.unsynced = [];
    this.syncing = true;
    let synced: Promise<void>;
    try {
      synced = this.sync();
    } catch (error) {
      synced = Promise.reject(error);
    }
    synced.then(
      () => {
        this.syncing = false;
        for (const { result, pending } of covered) pending.resolve(result);
        this.afterSync();
      },
      (error: unknown) => {
        this.syncing = false;
        for (const { pending } of covered) pending.reject(error);
        this.afterSync();
      },
    );
  }

  /** The writes held during the sync, committed now, and a sync for every commit it did not cover. */
  private afterSync(): void {
    this.commitPending();
    this.startSync();
  }
}
