/**
 * The Messenger's view of the history: the SQLite store (main/store) seen through the API's
 * shapes (shared/api.ts `MessageView`, `ConversationView`, `HistoryPage`, `SearchHit`).
 *
 * The store speaks in addresses of record (an account is its AoR); the API speaks in the
 * Messenger's account ids. An `AccountDirectory` translates between them. Messages and
 * conversations of an AoR that is not an account of the app (history written by `sipnote
 * listen` in the same data dir, or by an account since removed) keep the AoR as their
 * `accountId` and are left out of lists and searches by the Messenger.
 *
 * Everything is synchronous, as better-sqlite3 is: "write before you acknowledge"
 * (design.md "Durability") holds when a call returns, because the write is committed then.
 * The outbox transitions themselves (sending, results, recovery) are the outbox worker's
 * (outbox-worker.ts), on `store.messages` directly.
 */
import type { ConversationView, HistoryPage, MessageView, SearchHit, SecurityLabel, TextRange } from '../../shared/api.js';
import type { ConversationSummary, IncomingInput, Message, Store } from '../store/index.js';

/** Account ids ↔ addresses of record, as the Messenger currently has them. */
export interface AccountDirectory {
  /** The Messenger's id of the account with this canonical AoR, if it is one of the app's. */
  idOf(aor: string): string | undefined;
  /** The AoR of an account id, if the account exists. */
  aorOf(accountId: string): string | undefined;
}

/** An incoming message as the Messenger describes it: the store's IncomingInput in the API's terms. */
export type IncomingRecord = Omit<IncomingInput, 'account' | 'peer' | 'body'> & {
  readonly accountId: string;
  /** The From URI. */
  readonly peerUri: string;
  readonly displayName?: string;
  readonly text: string;
};

export interface OutgoingRecord {
  readonly accountId: string;
  /** The target URI. */
  readonly peerUri: string;
  readonly text: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly signerFingerprint?: string;
  /** RFC 5438 §6.3, chosen once when queued: every attempt carries it (attempt-identity.ts). */
  readonly imdnMessageId?: string;
}

export class MessageRepository {
  /** Display names from the From header of incoming messages, per conversation, for this session. */
  private readonly displayNames = new Map<number, string>();

  constructor(
    private readonly store: Store,
    private readonly accounts: AccountDirectory,
  ) {}

  /**
   * Stores an incoming message, committed when this returns, unless the same (Call-ID, CSeq,
   * From tag) is stored already: then `inserted` is false and the first one is returned.
   */
  recordIncoming(input: IncomingRecord): { readonly inserted: boolean; readonly message: MessageView } {
    const { accountId, peerUri, text, displayName, ...sip } = input;
    const result = this.store.messages.recordIncoming({ ...sip, account: this.aorOf(accountId), peer: peerUri, body: text });
    if (displayName !== undefined && displayName !== '') this.displayNames.set(result.message.conversationId, displayName);
    return { inserted: result.inserted, message: this.view(result.message) };
  }

  /** Stores an outgoing message as `queued`, due now, committed before any byte is sent. */
  recordOutgoing(input: OutgoingRecord): MessageView {
    return this.view(
      this.store.messages.enqueueOutgoing({
        account: this.aorOf(input.accountId),
        peer: input.peerUri,
        body: input.text,
        contentType: input.contentType,
        security: input.security,
        ...(input.signerFingerprint === undefined ? {} : { signerFingerprint: input.signerFingerprint }),
        ...(input.imdnMessageId === undefined ? {} : { imdnMessageId: input.imdnMessageId }),
      }),
    );
  }

  /** The stored row (with its SIP identity and retry time), or undefined. */
  message(id: number): Message | undefined {
    return this.store.messages.get(id);
  }

  conversation(id: number): ConversationView | undefined {
    const summary = this.store.conversations.get(id);
    return summary === undefined ? undefined : this.conversationView(summary);
  }

  /** The app's accounts' conversations (of one account when given), most recent activity first. */
  conversations(accountId?: string): ConversationView[] {
    const aor = accountId === undefined ? undefined : this.accounts.aorOf(accountId);
    if (accountId !== undefined && aor === undefined) return [];
    return this.store.conversations
      .list(aor)
      .filter((summary) => this.accounts.idOf(summary.account) !== undefined)
      .map((summary) => this.conversationView(summary));
  }

  /** Messages at positions [from, from + limit) of a conversation, oldest first; undefined if there is no such conversation. */
  history(conversationId: number, from: number, limit: number): HistoryPage | undefined {
    if (this.store.conversations.get(conversationId) === undefined) return undefined;
    const page = this.store.messages.conversationPage(conversationId, from, limit);
    return { conversationId, from, total: page.total, messages: page.messages.map((message) => this.view(message)) };
  }

  /** How many messages a conversation has. */
  total(conversationId: number): number {
    return this.store.messages.countIn(conversationId);
  }

  /** Everything up to now counts as read. */
  markRead(conversationId: number): ConversationView | undefined {
    if (this.store.conversations.get(conversationId) === undefined) return undefined;
    this.store.conversations.markRead(conversationId);
    return this.conversation(conversationId);
  }

  /** Messages of the app's accounts with every word of `query` (full-text, accents folded), newest first. */
  search(query: string, options: { readonly accountId?: string; readonly limit: number }): SearchHit[] {
    const aor = options.accountId === undefined ? undefined : this.accounts.aorOf(options.accountId);
    if (options.accountId !== undefined && aor === undefined) return [];
    const words = query.split(/\s+/u).filter((word) => /[\p{L}\p{N}]/u.test(word));
    return this.store.messages
      .search(query, { ...(aor === undefined ? {} : { account: aor }), limit: options.limit })
      .filter((message) => this.accounts.idOf(message.account) !== undefined)
      .map((message) => ({ message: this.view(message), ranges: highlight(message.body, words) }));
  }

  /** The API's view of a stored message. */
  view(message: Message): MessageView {
    return {
      id: message.id,
      conversationId: message.conversationId,
      accountId: this.accounts.idOf(message.account) ?? message.account,
      peer: message.peer,
      direction: message.direction,
      text: message.body,
      contentType: message.contentType,
      security: message.security,
      state: message.state,
      ...(message.status === null ? {} : { status: message.status }),
      ...(message.reason === null ? {} : { reason: message.reason }),
      attempts: message.attempts,
      createdAt: message.createdAt,
      ...(message.sentAt === null ? {} : { sentAt: message.sentAt }),
      ...(message.receivedAt === null ? {} : { receivedAt: message.receivedAt }),
      ...(message.late ? { late: true } : {}),
      ...(message.callId === null ? {} : { callId: message.callId }),
    };
  }

  private conversationView(summary: ConversationSummary): ConversationView {
    const last = summary.lastMessage;
    const displayName = summary.displayName ?? this.displayNames.get(summary.id);
    return {
      id: summary.id,
      accountId: this.accounts.idOf(summary.account) ?? summary.account,
      peer: summary.peer,
      // Replies go where the last message came from or went to, with its port and parameters.
      target: last?.peerUri ?? summary.peer,
      ...(displayName === undefined || displayName === null ? {} : { displayName }),
      unread: summary.unread,
      total: this.store.messages.countIn(summary.id),
      ...(last === null ? {} : { lastMessage: this.view(last) }),
      lastActivity: last === null ? 0 : (last.receivedAt ?? last.createdAt),
    };
  }

  private aorOf(accountId: string): string {
    const aor = this.accounts.aorOf(accountId);
    if (aor === undefined) throw new RangeError(`no account ${accountId}`);
    return aor;
  }
}

/**
 * Where the words occur in `text`, for highlighting: case and accents folded (as the index
 * folds them, migrations.ts version 2), ranges sorted and merged, in UTF-16 offsets of `text`.
 */
export function highlight(text: string, words: readonly string[]): TextRange[] {
  const { folded, starts, ends } = fold(text);
  const ranges: Array<[number, number]> = [];
  for (const word of new Set(words.map((word) => fold(word).folded).filter((word) => word !== ''))) {
    for (let at = folded.indexOf(word); at >= 0; at = folded.indexOf(word, at + word.length)) {
      ranges.push([starts[at] as number, ends[at + word.length - 1] as number]);
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const range of ranges) {
    const last = merged.at(-1);
    if (last !== undefined && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push([range[0], range[1]]);
  }
  return merged;
}

/** `text` lower-cased without combining marks, with each folded unit's source range. */
function fold(text: string): { folded: string; starts: number[]; ends: number[] } {
  let folded = '';
  const starts: number[] = [];
  const ends: number[] = [];
  let offset = 0;
  for (const char of text) {
    const piece = char.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
    for (let i = 0; i < piece.length; i++) {
      starts.push(offset);
      ends.push(offset + char.length);
    }
    folded += piece;
    offset += char.length;
  }
  return { folded, starts, ends };
}
