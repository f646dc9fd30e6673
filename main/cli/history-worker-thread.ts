/**
 * The worker thread of history-worker.ts: the listener's history writes (insert, full-text
 * index, commit, sync) on a thread of their own, with its own connection to the store.
 *
 * It receives batches of operations (one per turn of the listener's event loop) and answers
 * each operation once it is committed and on disk (design.md "Durability", write before
 * acknowledge). Batches that arrived while it was busy with the previous one (committing,
 * syncing) are taken together into one transaction: under load one commit and one fsync serve
 * many turns of the listener, as GroupCommit's held writes do (group-commit.ts), without the
 * listener having to hold anything back.
 *
 * Durability: the store is opened with `synchronous = FULL`, so a commit returns only once the
 * WAL is synced (store.ts), and only then is anything answered. On the listener's own thread
 * that would block the event loop for an fsync per batch (hence NORMAL plus an fsync on
 * libuv's thread pool there, GroupCommit's `sync`); here the sync blocks only this thread,
 * which has nothing else to do meanwhile. It is one fsync per transaction, as NORMAL plus an
 * explicit fsync of the WAL would be (the two measured the same here, within the disk's
 * noise), without relying on SQLite keeping the same WAL file; and a checkpoint, which the
 * committing connection runs, now runs here too. Only a failed transaction costs more: it is
 * retried item by item, one commit each, as GroupCommit does, so that one bad input cannot
 * fail the others.
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

/** Every operation in one transaction; if that fails, each in its own (GroupCommit's rule). */
function performAll(store: Store, operations: readonly HistoryOperation[]): HistoryOutcome[] {
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

if (parentPort !== null) {
  const { dataDir } = workerData as HistoryWorkerData;
  serve(parentPort, openStore(dataDir, { synchronous: 'full' }));
  parentPort.postMessage({ kind: 'ready' } satisfies HistoryReply);
}
