/**
 * `sipnote history [--data-dir DIR] [--peer URI] [--search TEXT] [--limit N] [--json]` and
 * `sipnote outbox [--data-dir DIR] [--json] [--flush | --retry ID | --cancel ID]`: what the store
 * (main/store) holds, for people and scripts, and what the user does with the outbox.
 *
 * history: stored messages newest first (at most --limit, default 50, at most 1000), filtered
 * by peer and by words (full-text, newest first, no ranking: messages.ts `history`).
 * outbox: outgoing messages not finished yet (queued, sending, failed), oldest first, with why
 * they wait: state, attempts, next attempt, last status and reason.
 * outbox --flush: sends every due message of the data dir once, oldest first, printing each
 * result (a later message to a peer whose earlier one failed in this flush stays queued, so
 * per-peer order holds); failures get their next attempt from main/im/retry-policy.ts.
 * outbox --retry ID: a failed (or cancelled) message becomes due now; --cancel ID: a queued or
 * failed one is given up. Exit 0, or 1 when a flushed message failed or the id cannot change so.
 *
 * With --json, one object per line (shared/cli-events.ts `HistoryEntry`). Times are ISO 8601.
 * A data dir without a history is not an error: it has no messages. The store is opened with
 * the usual busy timeout, so this works while `sipnote listen` writes to the same data dir.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DATABASE_FILE, openStore, type Message, type Store } from '../store/index.js';
import type { HistoryEntry } from '../../shared/cli-events.js';
import { resolveDataDir } from './data-dir.js';
import type { CommandIo } from './io.js';
import { StoreError } from '../store/index.js';
import type { AccountArgs } from './account-options.js';
import { accountAgentOptions } from './account-options.js';
import { UserAgent } from '../sip/ua/user-agent.js';
import { SecureMessaging } from '../im/secure-messaging.js';
import { defaultClientListen, loadCommandIdentity, noticePrinter, recordFailure, recordResult, sendOnce, type SecurityDependencies, retryIdentity, storedSend } from './send-command.js';

export interface HistoryArgs {
  dataDir?: string;
  peer?: string;
  search?: string;
  limit?: number;
  json: boolean;
}

export interface OutboxArgs {
  dataDir?: string;
  json: boolean;
  /** What to do; without one, list. */
  action?: OutboxAction;
  /** For --flush: credentials, proxy, TLS and DNS of the accounts. */
  account?: AccountArgs;
  t1?: number;
}

export type OutboxAction = { readonly kind: 'flush' } | { readonly kind: 'retry'; readonly id: number } | { readonly kind: 'cancel'; readonly id: number };

export function historyCommand(args: HistoryArgs, io: CommandIo, env: NodeJS.ProcessEnv = process.env): number {
  const messages = withStore(args.dataDir, env, (store) =>
    store.messages.history({
      ...(args.peer === undefined ? {} : { peer: args.peer }),
      ...(args.search === undefined ? {} : { search: args.search }),
      limit: args.limit ?? 50,
    }),
  );
  for (const message of messages) {
    io.stdout.write(args.json ? `${JSON.stringify(historyEntry(message))}\n` : `${describeMessage(message)}\n`);
  }
  return 0;
}

export async function outboxCommand(args: OutboxArgs, io: CommandIo, dependencies: SecurityDependencies = {}): Promise<number> {
  const env = dependencies.env ?? process.env;
  if (args.action?.kind === 'flush') return flushOutbox(args, io, dependencies);
  if (args.action !== undefined) return changeOutgoing(args, args.action, io, env);
  const waiting = withStore(args.dataDir, env, (store) => store.messages.outbox());
  if (!args.json && waiting.length === 0) io.stdout.write('the outbox is empty\n');
  for (const message of waiting) {
    io.stdout.write(args.json ? `${JSON.stringify(historyEntry(message))}\n` : `${describeWaiting(message)}\n`);
  }
  return 0;
}

/** --retry / --cancel: one state change, printed like the outbox lists it. */
function changeOutgoing(args: OutboxArgs, action: { kind: 'retry' | 'cancel'; id: number }, io: CommandIo, env: NodeJS.ProcessEnv): number {
  const dataDir = resolveDataDir(args.dataDir, env);
  if (!existsSync(join(dataDir, DATABASE_FILE))) {
    io.stderr.write(`sipnote: no message #${action.id} in ${dataDir}\n`);
    return 1;
  }
  const store = openStore(dataDir);
  try {
    if (action.kind === 'retry') store.messages.retry(action.id);
    else store.messages.cancel(action.id);
    const message = store.messages.get(action.id) as Message;
    io.stdout.write(args.json ? `${JSON.stringify(historyEntry(message))}\n` : `${describeWaiting(message)}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof StoreError)) throw error;
    io.stderr.write(`sipnote: ${error.message}\n`);
    return 1;
  } finally {
    store.close();
  }
}

/**
 * --flush: the due messages of every account, each sent once with its own state changes. One
 * user agent per account (its AoR is the From); an account's S/MIME messages need its identity,
 * and stay queued (reported) when it cannot be loaded.
 */
async function flushOutbox(args: OutboxArgs, io: CommandIo, dependencies: SecurityDependencies): Promise<number> {
  const dataDir = resolveDataDir(args.dataDir, dependencies.env);
  if (!existsSync(join(dataDir, DATABASE_FILE))) {
    if (!args.json) io.stdout.write('nothing is due\n');
    return 0;
  }
  const store = openStore(dataDir);
  let failures = 0;
  try {
    // As on any start: attempts a killed sender left in `sending` go back to the queue first.
    const recovered = store.messages.recoverAfterCrash();
    for (const message of recovered.requeued) io.stderr.write(`sipnote: message #${message.id} to ${message.peer} was interrupted while sending (sipnote stopped): queued again\n`);
    const due = store.messages.dueOutbox();
    if (!args.json && due.length === 0) io.stdout.write('nothing is due\n');
    const accounts = [...new Set(due.map((message) => message.account))];
    // Peers whose earlier message failed in this flush: their later ones wait, to keep the order.
    const blocked = new Set<string>();
    for (const account of accounts) {
      const messages = due.filter((message) => message.account === account);
      let secure: SecureMessaging | undefined;
      if (messages.some((message) => message.security !== 'plaintext')) {
        const identity = await loadCommandIdentity(dataDir, account, io, dependencies, { plaintextAlternative: '' });
        if (identity !== undefined) secure = new SecureMessaging({ dataDir, identity, onNotice: noticePrinter(io, dataDir) });
      }
      const first = messages[0] as Message;
      let agent: UserAgent;
      try {
        agent = await UserAgent.start({
          aor: account,
          listen: defaultClientListen(first.peerUri),
          ...(await accountAgentOptions(args.account ?? { trustCerts: [], dns: [] }, account, io)),
          ...(args.t1 === undefined ? {} : { timers: { t1: args.t1, t2: Math.max(args.t1 * 8, args.t1), t4: args.t1 * 10 } }),
        });
      } catch (error) {
        secure?.close();
        throw error;
      }
      try {
        for (const message of messages) {
          const peerKey = `${message.account}\n${message.peer}`;
          if (blocked.has(peerKey)) continue;
          if (message.security !== 'plaintext' && secure === undefined) {
            io.stderr.write(`sipnote: message #${message.id} to ${message.peer} stays queued: it is S/MIME and the identity of ${account} is not available\n`);
            blocked.add(peerKey);
            continue;
          }
          const identity = retryIdentity(message, account);
          const attempt = store.messages.markSending(message.id, identity);
          try {
            const { result } = await sendOnce(agent, message.security === 'plaintext' ? undefined : secure, storedSend(store, message, identity));
            recordResult(store, attempt, result);
          } catch (error) {
            recordFailure(store, attempt, error);
          }
          const after = store.messages.get(message.id) as Message;
          if (after.state === 'failed') {
            failures++;
            blocked.add(peerKey);
          }
          io.stdout.write(args.json ? `${JSON.stringify(historyEntry(after))}\n` : `${describeWaiting(after)}\n`);
        }
      } finally {
        secure?.close();
        await agent.close();
      }
    }
  } finally {
    store.close();
  }
  return failures === 0 ? 0 : 1;
}

/** Runs `read` on the data dir's store; no store file yet means nothing stored (and none is created). */
function withStore<T>(dataDirFlag: string | undefined, env: NodeJS.ProcessEnv, read: (store: Store) => T[]): T[] {
  const dataDir = resolveDataDir(dataDirFlag, env);
  if (!existsSync(join(dataDir, DATABASE_FILE))) return [];
  const store = openStore(dataDir);
  try {
    return read(store);
  } finally {
    store.close();
  }
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The JSON line of one stored message. `time`: when it arrived (incoming) or was queued (outgoing). */
export function historyEntry(message: Message): HistoryEntry {
  return {
    id: message.id,
    direction: message.direction,
    account: message.account,
    peer: message.peer,
    peerUri: message.peerUri,
    body: message.body,
    contentType: message.contentType,
    state: message.state,
    security: message.security,
    fingerprint: message.signerFingerprint,
    callId: message.callId,
    cseq: message.cseq,
    fromTag: message.fromTag,
    imdnMessageId: message.imdnMessageId,
    time: iso(message.receivedAt ?? message.createdAt) as string,
    sentAt: iso(message.sentAt),
    status: message.status,
    reason: message.reason,
    attempts: message.attempts,
    nextAttemptAt: iso(message.nextAttemptAt),
    ...(message.late ? { late: true } : {}),
  };
}

function describeMessage(message: Message): string {
  const time = iso(message.receivedAt ?? message.createdAt) as string;
  const arrow = message.direction === 'in' ? `<- ${message.peer}` : `-> ${message.peer}`;
  const state = message.direction === 'in' ? '' : ` (${message.state}${message.status === null ? '' : ` ${message.status}`})`;
  return `${time} ${arrow} [${message.security}]${state}${message.late ? ' LATE' : ''}: ${message.body}`;
}

function describeWaiting(message: Message): string {
  const last = message.status === null && message.reason === null ? '' : `; last: ${[message.status, message.reason].filter((part) => part !== null).join(' ')}`;
  const next =
    message.nextAttemptAt === null
      ? message.state === 'failed'
        ? '; waits for you (retry or cancel)'
        : ''
      : `; next attempt ${iso(message.nextAttemptAt)}`;
  return `#${message.id} -> ${message.peer} ${message.state}, ${message.attempts} attempt${message.attempts === 1 ? '' : 's'}${next}${last}: ${message.body}`;
}
