/**
 * `sipnote history [--data-dir DIR] [--peer URI] [--search TEXT] [--limit N] [--json]` and
 * `sipnote outbox [--data-dir DIR] [--json]`: what the store (main/store) holds, for people and
 * scripts.
 *
 * history: stored messages newest first (at most --limit, default 50, at most 1000), filtered
 * by peer and by words (full-text, newest first, no ranking: messages.ts `history`).
 * outbox: outgoing messages not finished yet (queued, sending, failed), oldest first, with why
 * they wait: state, attempts, next attempt, last status and reason.
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
}

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

export function outboxCommand(args: OutboxArgs, io: CommandIo, env: NodeJS.ProcessEnv = process.env): number {
  const waiting = withStore(args.dataDir, env, (store) => store.messages.outbox());
  if (!args.json && waiting.length === 0) io.stdout.write('the outbox is empty\n');
  for (const message of waiting) {
    io.stdout.write(args.json ? `${JSON.stringify(historyEntry(message))}\n` : `${describeWaiting(message)}\n`);
  }
  return 0;
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
