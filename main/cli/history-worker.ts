/**
 * The listener's side of write before acknowledge (design.md "Durability"), with the writing
 * on a worker thread (history-worker-thread.ts) that has its own connection to the store:
 * `record` resolves only once the message is committed and on disk, and the listener answers
 * 200 only then; meanwhile its own thread goes on parsing, answering and printing.
 *
 *   const history = await HistoryWorker.open(dataDir);
 *   const inserted = await history.record(input); // committed and synced; false: a duplicate
 *   await history.close();                        // after every write handed over
 *
 * The writes asked for during one turn of the event loop go to the worker as one message,
 * posted from a setImmediate, that is after the turn's I/O callbacks (every datagram read in
 * it): one structured clone and one wake-up per turn, not per message. The worker commits what
 * has reached it in one transaction and answers per operation: stored (true), a duplicate
 * (false), or failed, which rejects that write's promise alone (the UA answers 500 and the
 * sender keeps the message). Batches do not wait for the previous one's answer: the worker
 * takes the ones that queued up while it was committing into its next transaction, so under
 * load one commit and one fsync serve many turns.
 *
 * The listener's thread opens no connection of its own. SQLite in WAL mode lets other
 * connections read while the worker writes (`sipnote history` in another process); a writer
 * elsewhere (`sipnote send`, `history --retry`) waits for the worker's lock up to the store's
 * busy timeout (store.ts, 5 s), and the worker for theirs likewise. A transaction takes at
 * most 1,024 writes (history-worker-thread.ts), a few ms of lock.
 *
 * If the worker dies (an uncaught error, or it exits), every write not yet answered rejects
 * with the reason, and so does every later one: nothing waits for an answer that cannot come.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ReceivedImdn } from '../im/imdn.js';
import type { IncomingInput } from '../store/index.js';
import type { HistoryOperation, HistoryOutcome, HistoryReply, HistoryRequest, HistoryWorkerData, ImdnOutcome } from './history-worker-thread.js';

export type { ImdnOutcome } from './history-worker-thread.js';

/** A write handed over, waiting for its answer. */
interface PendingWrite {
  readonly resolve: (outcome: boolean | ImdnOutcome) => void;
  readonly reject: (error: Error) => void;
}

export class HistoryWorker {
  /** Collected during this turn, posted at its end. */
  private queued: HistoryOperation[] = [];
  /** Every write handed over and not answered yet, in the order the worker answers them. */
  private readonly pending: PendingWrite[] = [];
  /** Why no more writes can be taken (closed, or the worker died). */
  private stopped: Error | undefined;
  private scheduled = false;
  /** Resolves when the worker has ended. */
  private readonly exited: Promise<void>;
  /** Called whenever `pending` becomes empty (close waits for it). */
  private drained: (() => void) | undefined;

  private constructor(private readonly worker: Worker) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (reply: HistoryReply) => {
      if (reply.kind === 'results') this.answer(reply.outcomes);
    });
    worker.on('error', (error: unknown) => this.die(`history writer failed: ${error instanceof Error ? error.message : String(error)}`));
    worker.on('exit', (code) => this.die(`history writer exited (code ${code})`));
  }

  /**
   * Starts the worker and opens the store in `dataDir` (creating and migrating it if needed);
   * rejects with the store's error if it cannot be opened.
   */
  static open(dataDir: string): Promise<HistoryWorker> {
    const worker = new Worker(workerEntry(), { workerData: { dataDir } satisfies HistoryWorkerData });
    return new Promise((resolve, reject) => {
      const failed = (error: Error): void => reject(error);
      const exited = (code: number): void => reject(new Error(`history writer exited (code ${code}) while opening the store`));
      worker.once('error', failed);
      worker.once('exit', exited);
      worker.once('message', (reply: HistoryReply) => {
        worker.off('error', failed);
        worker.off('exit', exited);
        if (reply.kind === 'ready') resolve(new HistoryWorker(worker));
        else {
          void worker.terminate();
          reject(new Error(`history writer: unexpected ${reply.kind} before ready`));
        }
      });
    });
  }

  /** Stores an incoming message: true once it is committed and synced, false for a duplicate. */
  record(input: IncomingInput): Promise<boolean> {
    return this.hand({ kind: 'record', input }) as Promise<boolean>;
  }

  /**
   * Applies received notifications (RFC 5438) to the outbox, as message-notifications.ts
   * `applyImdnNotifications` does, committed and synced with the other writes of this turn.
   */
  applyImdnNotifications(account: string, peer: string, notifications: readonly ReceivedImdn[]): Promise<ImdnOutcome> {
    return this.hand({ kind: 'imdn', account, peer, notifications }) as Promise<ImdnOutcome>;
  }

  /**
   * Waits for every write already handed over to be answered, then closes the store and ends
   * the worker. Writes asked for after this reject.
   */
  async close(): Promise<void> {
    if (this.stopped === undefined) {
      this.stopped = new Error('history writer is closed');
      if (this.pending.length > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      if (this.worker.threadId >= 0) this.worker.postMessage({ kind: 'close' } satisfies HistoryRequest);
    }
    await this.exited;
  }

  /** For tests: ends the worker abruptly, as a crash of it would. */
  terminateWorkerForTesting(): Promise<number> {
    return this.worker.terminate();
  }

  private hand(operation: HistoryOperation): Promise<boolean | ImdnOutcome> {
    if (this.stopped !== undefined) return Promise.reject(this.stopped);
    return new Promise((resolve, reject) => {
      this.queued.push(operation);
      this.pending.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the I/O callbacks of this turn (every datagram read in it): one post for them all.
        setImmediate(() => this.post());
      }
    });
  }

  private post(): void {
    this.scheduled = false;
    const operations = this.queued;
    this.queued = [];
    if (operations.length === 0 || this.worker.threadId < 0) return; // the worker is gone: die() rejected them
    try {
      this.worker.postMessage({ kind: 'batch', operations } satisfies HistoryRequest);
    } catch (error) {
      // Not plain data (a DataCloneError: a bug of the caller's). These writes are the last
      // ones handed over; they fail, the writer goes on.
      const failed = new Error(`history writer: cannot hand over the writes: ${error instanceof Error ? error.message : String(error)}`);
      for (const write of this.pending.splice(this.pending.length - operations.length)) write.reject(failed);
      if (this.pending.length === 0) this.drained?.();
    }
  }

  private answer(outcomes: readonly HistoryOutcome[]): void {
    const answered = this.pending.splice(0, outcomes.length);
    for (let i = 0; i < answered.length; i++) {
      const outcome = outcomes[i]!;
      const write = answered[i]!;
      if (typeof outcome === 'object' && 'error' in outcome) write.reject(new Error(outcome.error));
      else write.resolve(outcome);
    }
    if (this.pending.length === 0) this.drained?.();
  }

  /** The worker is gone: nothing handed over will be answered. */
  private die(reason: string): void {
    const error = new Error(reason);
    this.stopped ??= error;
    this.queued = [];
    for (const write of this.pending.splice(0)) write.reject(error);
    this.drained?.();
  }
}

/**
 * The worker's entry point: the compiled history-worker-thread.js next to this module. Run
 * from the TypeScript sources (vitest), that is the one in build/ (`npx tsc -b`): a worker
 * starts in plain Node, without the test runner's TypeScript loader.
 */
function workerEntry(): URL {
  const sibling = new URL('./history-worker-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  return new URL('../../build/main/cli/history-worker-thread.js', import.meta.url);
}
