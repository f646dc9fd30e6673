/**
 * Conversations: one per (account, peer AoR), holding what the user has read.
 *
 * Reading is a watermark, `last_read_message_id`: an incoming message with a higher id is
 * unread. `unread_count` caches how many there are; it is raised in the same transaction
 * that stores an incoming message and recomputed (over the unread rows only) when the
 * watermark moves, so the conversation list costs one row per conversation, not a count over
 * the history.
 */
import type { AccountRepository } from './accounts.js';
import type { AorCanonicalizer } from './aor.js';
import { MESSAGE_SELECT, toMessage, type MessageRow } from './message-row.js';
import { atomically, type Db, type Statement } from './sql.js';
import { StoreError } from './store-error.js';
import type { ConversationSummary } from './types.js';

export interface ConversationKey {
  readonly id: number;
  /** Canonical account AoR. */
  readonly account: string;
  /** Canonical peer AoR. */
  readonly peer: string;
}

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
    const accountAor = this.aors.canonical(account);
    const peerAor = this.aors.canonical(peer);
    const row = this.selectId.get(accountAor, peerAor) as { id: number } | undefined;
    if (row) return { id: row.id, account: accountAor, peer: peerAor };
    const id = atomically(this.db, () => {
      const accountId = this.accounts.idOf(accountAor);
      return Number(this.insertRow.run(accountId, peerAor, this.now()).lastInsertRowid);
    });
    return { id, account: accountAor, peer: peerAor };
  }

  /** Ids of the conversations with `peer` (one per account, or only `account`'s). */
  idsWith(peer: string, account?: string): number[] {
    const peerAor = this.aors.canonical(peer);
    const accountAor = account === undefined ? null : this.aors.canonical(account);
    return (this.selectIdsOfPeer.all({ peer: peerAor, account: accountAor }) as { id: number }[]).map((row) => row.id);
  }

  /** Called by the message repository inside the transaction that stores an incoming message. */
  countIncoming(conversationId: number): void {
    this.incrementUnread.run(conversationId);
  }

  /** Conversations, the most recently active first, with unread counts and the last message. */
  list(account?: string): ConversationSummary[] {
    const rows = (
      account === undefined
        ? this.selectSummaries.all()
        : this.selectSummariesOfAccount.all(this.aors.canonical(account))
    ) as SummaryRow[];
    return rows.map((row) => this.toSummary(row));
  }

  /** One conversation's summary, or undefined. */
  get(conversationId: number): ConversationSummary | undefined {
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
