/**
 * Conversations: one per (account, peer AoR), holding what the user has read.
 *
 * Reading is a watermark, `last_read_message_id`: an incoming message with a higher id is
 * unread. `unread_count` caches how many there are; it is raised in the same transaction
 * that stores an incoming message and recomputed (over the unread rows only) when the
 * watermark moves, so the conversation list costs one row per conversation, not a count over
 * the history.
 *
 * The incoming insert path (`sipnote listen` stores every MESSAGE before its 200) keeps two
 * things in memory so a message costs no conversation query and at most one counter update
 * per transaction:
 * - the conversation id of each (account, peer) as the caller spelled them. Only committed
 *   rows are remembered (after the commit): a conversation created in a transaction that rolls
 *   back is gone, and its id would be given to the next conversation created. The store never
 *   deletes a conversation (only a cascade from deleting an account would, and the store has
 *   no such operation); whatever deletes one must call `forget()`.
 * - the unread increments of the open transaction, per conversation, written in one UPDATE
 *   each just before it commits (sql.ts `openTransaction`), or at once when something in the
 *   same transaction reads a count (`list`, `get`, `markRead`). A rollback discards them with
 *   the transaction.
 */
import type { AccountRepository } from './accounts.js';
import type { AorCanonicalizer } from './aor.js';
import { MESSAGE_SELECT, toMessage, type MessageRow } from './message-row.js';
import { atomically, openTransaction, type Db, type OpenTransaction, type Statement } from './sql.js';
import { StoreError } from './store-error.js';
import type { ConversationSummary } from './types.js';

export interface ConversationKey {
  readonly id: number;
  /** Canonical account AoR. */
  readonly account: string;
  /** Canonical peer AoR. */
  readonly peer: string;
}

/** Bounded, as the canonicalizer's cache (aor.ts): a flood of From URIs cannot grow it without limit. */
const KNOWN_CONVERSATIONS_LIMIT = 4096;

interface SummaryRow {
  id: number;
  account: string;
  peer: string;
  display_name: string | null;
  unread_count: number;
  last_read_message_id: number;
  last_message_id: number | null;
}

export class ConversationRepository {
  private readonly selectId: Statement;
  private readonly insertRow: Statement;
  private readonly incrementUnread: Statement;
  private readonly selectLatestId: Statement;
  private readonly selectReadMark: Statement;
  private readonly countUnread: Statement;
  private readonly updateReadMark: Statement;
  private readonly selectMessage: Statement;
  private readonly selectSummaries: Statement;
  private readonly selectSummariesOfAccount: Statement;
  private readonly selectSummaryById: Statement;
  private readonly selectIdsOfPeer: Statement;
  private readonly addUnread: Statement;
  /** Committed conversations by `account \0 peer` as given to `resolve` (module comment). */
  private readonly known = new Map<string, ConversationKey>();
  /** Unread increments not yet written, and the transaction they belong to. */
  private pendingUnread = new Map<number, number>();
  private pendingTransaction: OpenTransaction | undefined;

  constructor(
    private readonly db: Db,
    private readonly aors: AorCanonicalizer,
    private readonly accounts: AccountRepository,
    private readonly now: () => number,
  ) {
    this.selectId = db.prepare(
      'SELECT c.id FROM conversations c JOIN accounts a ON a.id = c.account_id WHERE a.aor = ? AND c.peer = ?',
    );
    this.insertRow = db.prepare('INSERT INTO conversations (account_id, peer, created_at) VALUES (?, ?, ?)');
    this.incrementUnread = db.prepare('UPDATE conversations SET unread_count = unread_count + 1 WHERE id = ?');
    this.addUnread = db.prepare('UPDATE conversations SET unread_count = unread_count + ? WHERE id = ?');
    this.selectLatestId = db.prepare('SELECT max(id) FROM messages WHERE conversation_id = ?').pluck();
    this.selectReadMark = db.prepare('SELECT last_read_message_id FROM conversations WHERE id = ?').pluck();
    this.countUnread = db
      .prepare(`SELECT count(*) FROM messages WHERE conversation_id = ? AND id > ? AND direction = 'in'`)
      .pluck();
    this.updateReadMark = db.prepare(
      'UPDATE conversations SET last_read_message_id = ?, unread_count = ? WHERE id = ?',
    );
    this.selectMessage = db.prepare(`${MESSAGE_SELECT} WHERE m.id = ?`);
    const summary = `
      SELECT c.id, a.aor AS account, c.peer, k.display_name, c.unread_count, c.last_read_message_id,
             (SELECT max(m.id) FROM messages m WHERE m.conversation_id = c.id) AS last_message_id
      FROM conversations c
      JOIN accounts a ON a.id = c.account_id
      LEFT JOIN contacts k ON k.account_id = c.account_id AND k.aor = c.peer`;
    const order = 'ORDER BY last_message_id DESC NULLS LAST, c.id DESC';
    this.selectSummaries = db.prepare(`${summary} ${order}`);
    this.selectSummariesOfAccount = db.prepare(`${summary} WHERE a.aor = ? ${order}`);
    this.selectSummaryById = db.prepare(`${summary} WHERE c.id = ?`);
    this.selectIdsOfPeer = db.prepare(
      'SELECT c.id FROM conversations c JOIN accounts a ON a.id = c.account_id WHERE c.peer = @peer AND (@account IS NULL OR a.aor = @account)',
    );
  }

  /** The conversation of `account` with `peer`, creating the account and the conversation on first use. */
  resolve(account: string, peer: string): ConversationKey {
    const key = `${account}\0${peer}`;
    const known = this.known.get(key);
    if (known !== undefined) return known;
    const accountAor = this.aors.canonical(account);
    const peerAor = this.aors.canonical(peer);
    const row = this.selectId.get(accountAor, peerAor) as { id: number } | undefined;
    const id =
      row?.id ??
      atomically(this.db, () => {
        const accountId = this.accounts.idOf(accountAor);
        return Number(this.insertRow.run(accountId, peerAor, this.now()).lastInsertRowid);
      });
    const conversation: ConversationKey = { id, account: accountAor, peer: peerAor };
    this.remember(key, conversation);
    return conversation;
  }

  /** Forgets the remembered conversation ids; call after deleting conversations. */
  forget(): void {
    this.known.clear();
  }

  /** Remembers `conversation` once it is known to be committed (module comment). */
  private remember(key: string, conversation: ConversationKey): void {
    const add = (): void => {
      if (this.known.size >= KNOWN_CONVERSATIONS_LIMIT) this.known.clear();
      this.known.set(key, conversation);
    };
    if (!this.db.inTransaction) add();
    else openTransaction(this.db)?.afterCommit.push(add);
    // In a transaction opened elsewhere nobody tells us whether it commits: not remembered.
  }

  /** Ids of the conversations with `peer` (one per account, or only `account`'s). */
  idsWith(peer: string, account?: string): number[] {
    const peerAor = this.aors.canonical(peer);
    const accountAor = account === undefined ? null : this.aors.canonical(account);
    return (this.selectIdsOfPeer.all({ peer: peerAor, account: accountAor }) as { id: number }[]).map((row) => row.id);
  }

  /** Called by the message repository inside the transaction that stores an incoming message. */
  countIncoming(conversationId: number): void {
    const transaction = openTransaction(this.db);
    if (transaction === undefined) {
      this.incrementUnread.run(conversationId);
      return;
    }
    if (this.pendingTransaction !== transaction) {
      // The first increment of this transaction (those of a rolled-back one are dropped here).
      this.pendingUnread = new Map();
      this.pendingTransaction = transaction;
      transaction.beforeCommit.push(() => this.writeUnread());
    }
    this.pendingUnread.set(conversationId, (this.pendingUnread.get(conversationId) ?? 0) + 1);
  }

  /** Writes the open transaction's pending unread increments (before a read, or the commit). */
  private writeUnread(): void {
    const transaction = this.pendingTransaction;
    if (transaction === undefined) return;
    const pending = this.pendingUnread;
    this.pendingUnread = new Map();
    if (transaction !== openTransaction(this.db)) {
      this.pendingTransaction = undefined; // that transaction rolled back: nothing to write
      return;
    }
    for (const [conversationId, count] of pending) this.addUnread.run(count, conversationId);
  }

  /** Conversations, the most recently active first, with unread counts and the last message. */
  list(account?: string): ConversationSummary[] {
    this.writeUnread();
    const rows = (
      account === undefined
        ? this.selectSummaries.all()
        : this.selectSummariesOfAccount.all(this.aors.canonical(account))
    ) as SummaryRow[];
    return rows.map((row) => this.toSummary(row));
  }

  /** One conversation's summary, or undefined. */
  get(conversationId: number): ConversationSummary | undefined {
    this.writeUnread();
    const row = this.selectSummaryById.get(conversationId) as SummaryRow | undefined;
    return row && this.toSummary(row);
  }

  private toSummary(row: SummaryRow): ConversationSummary {
    const last = row.last_message_id === null ? undefined : (this.selectMessage.get(row.last_message_id) as MessageRow);
    return {
      id: row.id,
      account: row.account,
      peer: row.peer,
      displayName: row.display_name,
      unread: row.unread_count,
      lastReadMessageId: row.last_read_message_id,
      lastMessage: last ? toMessage(last) : null,
    };
  }

  /**
   * Moves the read watermark to `upToMessageId` (default: the newest message). It never moves
   * back, so a late "read" from another window cannot resurrect unread messages.
   */
  markRead(conversationId: number, upToMessageId?: number): number {
    return atomically(this.db, () => {
      this.writeUnread();
      const current = this.selectReadMark.get(conversationId) as number | undefined;
      if (current === undefined) throw new StoreError('not-found', `no conversation ${conversationId}`);
      const target = upToMessageId ?? ((this.selectLatestId.get(conversationId) as number | null) ?? 0);
      const mark = Math.max(current, target);
      const unread = this.countUnread.get(conversationId, mark) as number;
      this.updateReadMark.run(mark, unread, conversationId);
      return unread;
    });
  }
}
