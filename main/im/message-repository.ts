/**
 * Where the Messenger keeps conversations and messages: the seam between the messaging core
 * and the history store.
 *
 * TEMPORARY: `InMemoryMessageRepository` is the only implementation until the SQLite store
 * (main/store, issue #5) lands; then an adapter over it implements this same interface and
 * the Messenger is given that instead (MessengerOptions.repository). Until then history is
 * lost when the process exits, and `Capabilities.history` says `memory` so no front end
 * pretends otherwise.
 *
 * The interface is synchronous on purpose: better-sqlite3 is synchronous, and "write before
 * you acknowledge" (design.md "Durability") is simplest when the write has finished when the
 * call returns. Ordering: a message's id grows with arrival, and a conversation's history is
 * its messages by id, so position i (0 = oldest) is stable while messages are only added.
 */
import type { MessageState, MessageView, SecurityLabel } from '../../shared/api.js';

export interface StoredMessage extends MessageView {
  /** The peer's URI as on the wire (From of an incoming message, the target of an outgoing one). */
  readonly peerUri: string;
  readonly cseq?: number;
  readonly fromTag?: string;
}

export interface StoredConversation {
  readonly id: number;
  readonly accountId: string;
  readonly peer: string;
  /** Where replies go: the peer's URI as last seen or typed. */
  readonly target: string;
  readonly displayName?: string;
  readonly unread: number;
  readonly total: number;
  readonly lastMessage?: StoredMessage;
  readonly lastActivity: number;
}

export interface IncomingRecord {
  readonly accountId: string;
  /** Canonical address of record of the sender (the conversation key with accountId). */
  readonly peer: string;
  readonly peerUri: string;
  readonly displayName?: string;
  readonly text: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly callId: string;
  readonly cseq: number;
  readonly fromTag: string;
  readonly sentAt?: number;
  readonly receivedAt: number;
  readonly late?: boolean;
}

export interface OutgoingRecord {
  readonly accountId: string;
  readonly peer: string;
  readonly peerUri: string;
  readonly text: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly createdAt: number;
}

/** Fields an attempt or a user's decision changes. `null` clears status/reason. */
export interface MessageChanges {
  readonly state: MessageState;
  readonly status?: number | null;
  readonly reason?: string | null;
  readonly attempts?: number;
  readonly sentAt?: number;
  readonly callId?: string;
}

export interface TextHit {
  readonly message: StoredMessage;
  readonly ranges: ReadonlyArray<readonly [number, number]>;
}

export interface MessageRepository {
  /**
   * Stores an incoming message, unless one with the same (Call-ID, CSeq, From tag) is stored
   * already (a retransmission that outlived its transaction, a proxy's re-send): then
   * `inserted` is false and the first one is returned.
   */
  recordIncoming(input: IncomingRecord): { readonly inserted: boolean; readonly message: StoredMessage };
  /** Stores an outgoing message as `queued`, before any byte is sent. */
  recordOutgoing(input: OutgoingRecord): StoredMessage;
  update(id: number, changes: MessageChanges): StoredMessage;
  message(id: number): StoredMessage | undefined;
  conversation(id: number): StoredConversation | undefined;
  /** Most recent activity first. */
  conversations(accountId?: string): StoredConversation[];
  /** Messages at positions [from, from + limit) of a conversation, oldest first, and how many there are. */
  history(conversationId: number, from: number, limit: number): { readonly total: number; readonly messages: StoredMessage[] };
  /** Everything incoming up to now counts as read. */
  markRead(conversationId: number): StoredConversation;
  /** Messages containing every word of `query` (case-insensitive), newest first. */
  search(query: string, options: { readonly accountId?: string; readonly limit: number }): TextHit[];
}

interface ConversationRow {
  readonly id: number;
  readonly accountId: string;
  readonly peer: string;
  target: string;
  displayName: string | undefined;
  /** Message ids, ascending. */
  readonly messageIds: number[];
  lastReadMessageId: number;
  unread: number;
  lastActivity: number;
}

/** TEMPORARY (see the file comment): history in memory, lost on exit. */
export class InMemoryMessageRepository implements MessageRepository {
  private readonly messages = new Map<number, StoredMessage>();
  private readonly rows = new Map<number, ConversationRow>();
  private readonly byKey = new Map<string, ConversationRow>();
  /** (Call-ID, CSeq, From tag) of incoming messages, for duplicates (design.md "Durability"). */
  private readonly incomingKeys = new Map<string, number>();
  private nextMessageId = 1;
  private nextConversationId = 1;

  recordIncoming(input: IncomingRecord): { inserted: boolean; message: StoredMessage } {
    const key = `${input.accountId}\n${input.callId}\n${input.cseq}\n${input.fromTag}`;
    const existing = this.incomingKeys.get(key);
    if (existing !== undefined) return { inserted: false, message: this.messages.get(existing) as StoredMessage };
    const row = this.row(input.accountId, input.peer, input.peerUri);
    if (input.displayName !== undefined) row.displayName = input.displayName;
    const message: StoredMessage = {
      id: this.nextMessageId++,
      conversationId: row.id,
      accountId: input.accountId,
      peer: input.peer,
      peerUri: input.peerUri,
      direction: 'in',
      text: input.text,
      contentType: input.contentType,
      security: input.security,
      state: 'received',
      attempts: 0,
      createdAt: input.receivedAt,
      receivedAt: input.receivedAt,
      callId: input.callId,
      cseq: input.cseq,
      fromTag: input.fromTag,
      ...(input.sentAt === undefined ? {} : { sentAt: input.sentAt }),
      ...(input.late === true ? { late: true } : {}),
    };
    this.messages.set(message.id, message);
    this.incomingKeys.set(key, message.id);
    row.messageIds.push(message.id);
    row.unread++;
    row.lastActivity = Math.max(row.lastActivity, input.receivedAt);
    return { inserted: true, message };
  }

  recordOutgoing(input: OutgoingRecord): StoredMessage {
    const row = this.row(input.accountId, input.peer, input.peerUri);
    row.target = input.peerUri;
    const message: StoredMessage = {
      id: this.nextMessageId++,
      conversationId: row.id,
      accountId: input.accountId,
      peer: input.peer,
      peerUri: input.peerUri,
      direction: 'out',
      text: input.text,
      contentType: input.contentType,
      security: input.security,
      state: 'queued',
      attempts: 0,
      createdAt: input.createdAt,
    };
    this.messages.set(message.id, message);
    row.messageIds.push(message.id);
    row.lastActivity = Math.max(row.lastActivity, input.createdAt);
    return message;
  }

  update(id: number, changes: MessageChanges): StoredMessage {
    const current = this.messages.get(id);
    if (current === undefined) throw new RangeError(`no message ${id}`);
    const next: Record<string, unknown> = { ...current, state: changes.state };
    for (const field of ['status', 'reason'] as const) {
      const value = changes[field];
      if (value === null) delete next[field];
      else if (value !== undefined) next[field] = value;
    }
    if (changes.attempts !== undefined) next.attempts = changes.attempts;
    if (changes.sentAt !== undefined) next.sentAt = changes.sentAt;
    if (changes.callId !== undefined) next.callId = changes.callId;
    const updated = next as unknown as StoredMessage;
    this.messages.set(id, updated);
    return updated;
  }

  message(id: number): StoredMessage | undefined {
    return this.messages.get(id);
  }

  conversation(id: number): StoredConversation | undefined {
    const row = this.rows.get(id);
    return row === undefined ? undefined : this.summary(row);
  }

  conversations(accountId?: string): StoredConversation[] {
    const rows = [...this.rows.values()].filter((row) => accountId === undefined || row.accountId === accountId);
    rows.sort((a, b) => b.lastActivity - a.lastActivity || b.id - a.id);
    return rows.map((row) => this.summary(row));
  }

  history(conversationId: number, from: number, limit: number): { total: number; messages: StoredMessage[] } {
    const row = this.rows.get(conversationId);
    if (row === undefined) throw new RangeError(`no conversation ${conversationId}`);
    const ids = row.messageIds.slice(from, from + limit);
    return { total: row.messageIds.length, messages: ids.map((id) => this.messages.get(id) as StoredMessage) };
  }

  markRead(conversationId: number): StoredConversation {
    const row = this.rows.get(conversationId);
    if (row === undefined) throw new RangeError(`no conversation ${conversationId}`);
    row.lastReadMessageId = row.messageIds.at(-1) ?? 0;
    row.unread = 0;
    return this.summary(row);
  }

  search(query: string, options: { accountId?: string; limit: number }): TextHit[] {
    const words = [...new Set(query.toLowerCase().split(/\s+/).filter((word) => word !== ''))];
    if (words.length === 0) return [];
    const hits: TextHit[] = [];
    const ids = [...this.messages.keys()].sort((a, b) => b - a);
    for (const id of ids) {
      const message = this.messages.get(id) as StoredMessage;
      if (options.accountId !== undefined && message.accountId !== options.accountId) continue;
      const ranges = findAll(message.text.toLowerCase(), words);
      if (ranges === undefined) continue;
      hits.push({ message, ranges });
      if (hits.length >= options.limit) break;
    }
    return hits;
  }

  private row(accountId: string, peer: string, peerUri: string): ConversationRow {
    const key = `${accountId}\n${peer}`;
    let row = this.byKey.get(key);
    if (row === undefined) {
      row = {
        id: this.nextConversationId++,
        accountId,
        peer,
        target: peerUri,
        displayName: undefined,
        messageIds: [],
        lastReadMessageId: 0,
        unread: 0,
        lastActivity: 0,
      };
      this.byKey.set(key, row);
      this.rows.set(row.id, row);
    }
    return row;
  }

  private summary(row: ConversationRow): StoredConversation {
    const lastId = row.messageIds.at(-1);
    const lastMessage = lastId === undefined ? undefined : this.messages.get(lastId);
    return {
      id: row.id,
      accountId: row.accountId,
      peer: row.peer,
      target: row.target,
      unread: row.unread,
      total: row.messageIds.length,
      lastActivity: row.lastActivity,
      ...(row.displayName === undefined ? {} : { displayName: row.displayName }),
      ...(lastMessage === undefined ? {} : { lastMessage }),
    };
  }
}

/** Every occurrence of every word, sorted and merged; undefined unless all words occur. */
function findAll(text: string, words: readonly string[]): Array<readonly [number, number]> | undefined {
  const ranges: Array<[number, number]> = [];
  for (const word of words) {
    let at = text.indexOf(word);
    if (at < 0) return undefined;
    while (at >= 0) {
      ranges.push([at, at + word.length]);
      at = text.indexOf(word, at + word.length);
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
