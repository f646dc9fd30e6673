/**
 * The worker thread of history-worker.ts: the listener's history writes (insert, full-text
 * index, commit, sync) on a thread of their own, with its own connection to the store.
 *
 * It receives batches of operations (one per turn of the listener's event loop) and answers
 * each operation once it is committed and on disk (design.md "Durability", write before
 * acknowledge). Batches that arrived while it was busy with the previous one (committing,
 * syncing) are taken together into one transaction: under load one commit and one fsync serve
 * many turns of the listener, without the listener having to hold anything back.
 *
 * Durability: the store is opened with `synchronous = FULL`, so a commit returns only once the
 * WAL is synced (store.ts), and only then is anything answered. On the listener's own thread
 * that would block the event loop for an fsync per batch; here the sync blocks only this
 * thread, which has nothing else to do meanwhile. It is one fsync per transaction, as NORMAL
 * plus an explicit fsync of the WAL file would be (the two measured the same, within the
 * disk's noise), without relying on SQLite keeping the same WAL file; and a checkpoint, which
 * the committing connection runs, runs here too, off the listener's thread. Only a failed
 * transaction costs more: it is rolled back and its operations retried one by one, one commit
 * each, so that one bad input cannot fail the others (`performAll`).
 *
 * Protocol (plain objects, structured-cloned; types below): `{ kind: 'ready' }` out once the
 * store is open; then `{ kind: 'batch', operations }` in and `{ kind: 'results', outcomes }`
 * out, one outcome per operation, in the order they were sent (a reply may cover several
 * batches); `{ kind: 'close' }` (sent only once every answer has arrived) closes the store and
 * ends the thread. A store that cannot be opened throws here, which the other side sees as the
 * worker's `error` event.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { applyImdnNotifications } from '../im/message-notifications.js';
import type { ReceivedImdn } from '../im/imdn.js';
import { openStore, type IncomingInput, type Message, type Store } from '../store/index.js';

/** What the worker is started with (`workerData`). */
export interface HistoryWorkerData {
  readonly dataDir: string;
}

/** One thing to write, in one of the listener's batches. */
export type HistoryOperation =
  | { readonly kind: 'record'; readonly input: IncomingInput }
  | { readonly kind: 'imdn'; readonly account: string; readonly peer: string; readonly notifications: readonly ReceivedImdn[] };

/** What `applyImdnNotifications` returns (message-notifications.ts). */
export interface ImdnOutcome {
  readonly changed: Message[];
  readonly ignored: string[];
}

/**
 * The answer to one operation, committed and synced: a record's `inserted` (false: a
 * duplicate), a notification's outcome, or why it could not be stored.
 */
export type HistoryOutcome = boolean | ImdnOutcome | { readonly error: string };

export type HistoryRequest = { readonly kind: 'batch'; readonly operations: readonly HistoryOperation[] } | { readonly kind: 'close' };

/** `ready` once, when the store is open; then `results` for the batches, in order. */
export type HistoryReply = { readonly kind: 'ready' } | { readonly kind: 'results'; readonly outcomes: readonly HistoryOutcome[] };

/**
 * Past this many operations no further waiting batch joins the transaction (the rest go into
 * the next one): it bounds how long a transaction holds the write lock, which `sipnote
 * history` or `send` in another process may be waiting for, and how much a failed batch
 * retries item by item.
 */
const MAX_OPERATIONS_PER_TRANSACTION = 1024;

function perform(store: Store, operation: HistoryOperation): boolean | ImdnOutcome {
  switch (operation.kind) {
    case 'record':
      return store.messages.recordIncoming(operation.input).inserted;
    case 'imdn':
      return applyImdnNotifications(store.messages, operation.account, operation.peer, operation.notifications);
  }
}

/**
 * Every operation in one transaction; if that fails (one bad input among many), it is rolled
 * back and each operation runs in a transaction of its own, so only the bad one fails. An
 * operation must therefore only touch the store: it may run twice. Exported for
 * bench/store-insert.ts, which times this path on stores of either `synchronous` setting.
 */
export function performAll(store: Store, operations: readonly HistoryOperation[]): HistoryOutcome[] {
  try {
    return store.batch(() => operations.map((operation) => perform(store, operation)));
  } catch {
    return operations.map((operation) => {
      try {
        return store.batch(() => perform(store, operation));
      } catch (error) {
        return { error: error instanceof Error ? error.message : String(error) };
      }
    });
  }
}

function serve(port: MessagePort, store: Store): void {
  port.on('message', (first: HistoryRequest) => {
    let closing = first.kind === 'close';
    const operations: HistoryOperation[] = first.kind === 'batch' ? [...first.operations] : [];
    // The batches that queued up meanwhile join this transaction.
    while (!closing && operations.length < MAX_OPERATIONS_PER_TRANSACTION) {
      const next = receiveMessageOnPort(port)?.message as HistoryRequest | undefined;
      if (next === undefined) break;
      if (next.kind === 'close') closing = true;
      else for (const operation of next.operations) operations.push(operation);
    }
    if (operations.length > 0) port.postMessage({ kind: 'results', outcomes: performAll(store, operations) } satisfies HistoryReply);
    if (closing) {
      store.close();
      port.close(); // nothing is left to keep the thread alive: it ends
    }
  });
}

/**
 * The store, opened as this worker writes it. An error thrown here reaches the listener as the
 * worker's `error` event, which copies only genuine Error objects with their message:
 * better-sqlite3's SqliteError (a corrupt database file) would arrive as `{ code }` and be
 * printed as "[object Object]". So it is thrown again as a plain Error with the same message.
 */
function openWorkerStore(dataDir: string): Store {
  try {
    return openStore(dataDir, { synchronous: 'full' });
  } catch (error) {
    if (error instanceof Error && Object.prototype.toString.call(error) === '[object Error]') throw error;
    throw new Error(error instanceof Error ? error.message : String(error));
  }
}

if (parentPort !== null) {
  const { dataDir } = workerData as HistoryWorkerData;
  serve(parentPort, openWorkerStore(dataDir));
  parentPort.postMessage({ kind: 'ready' } satisfies HistoryReply);
}
