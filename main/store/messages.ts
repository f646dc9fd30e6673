/**
 * Messages: history, search, and the outbox state machine, written before acknowledging
 * (design.md "Durability").
 *
 * Incoming: `recordIncoming` commits the message before the UA sends its 2xx. A duplicate
 * (same Call-ID, CSeq and From tag: a retransmission the transaction layer no longer
 * remembers, or a re-send after our crash; or the same IMDN Message-ID re-delivered by a
 * store-and-forward server with new SIP identifiers) is not stored again: the caller gets the
 * first row back with `inserted: false`, sends the same 2xx, and shows nothing twice.
 *
 * Outgoing, one row through these states (types.ts `MessageState`):
 * - `enqueueOutgoing`: → queued, due now;
 * - `markSending`: queued, or failed with a retry time → sending (one more attempt);
 * - `markResult`: sending → failed (with a retry time the outbox sends it again; without, it
 *   waits for the user); any waiting state → accepted → delivered → displayed, forward only;
 * - `markUndelivered`, a negative-delivery notification (RFC 5438): sending, accepted or
 *   delivered → failed, for good: nothing but the user's retry moves it after that;
 * - `recoverAfterCrash`, on start: sending → queued, or → failed after too many interruptions;
 * - the user: `retry` (failed, cancelled → queued) and `cancel` (queued, failed → cancelled).
 *
 * Each transition is its own committed transaction, taken before the I/O it announces:
 * `queued` before any byte leaves, `sending` before the attempt starts. A crash therefore
 * leaves a row either queued (nothing sent) or sending (maybe sent); `recoverAfterCrash` puts
 * the latter back in the queue, or fails it with a reason after too many interruptions. No
 * message is ever dropped silently.
 *
 * Success states only move forward (accepted → delivered → displayed): IMDNs and responses can
 * arrive in any order, and a late "delivered" must not hide a "displayed".
 *
 * Received IMs that still owe a display notification (RFC 5438 §7.2) are kept with them
 * (`recordIncoming` with `displayNotification`, in the same transaction) until the user reads
 * the conversation (`takeDisplayNotificationsOwed`), so a restart in between loses none.
 */
import type { AorCanonicalizer } from './aor.js';
import type { ConversationKey, ConversationRepository } from './conversations.js';
import { fingerprintBytes } from './fingerprint.js';
import { toFtsQuery } from './fts-query.js';
import { MESSAGE_COLUMNS, MESSAGE_JOINS, MESSAGE_SELECT, OUTBOX_SELECT, toMessage, type MessageRow } from './message-row.js';
import { atomically, StatementCache, type Db, type Statement } from './sql.js';
import { StoreError } from './store-error.js';
import type {
  AttemptIdentity,
  DeliveryUpdate,
  Direction,
  DisplayNotificationRequest,
  HistoryQuery,
  IncomingInput,
  Message,
  MessageState,
  NegativeDeliveryStatus,
  OutgoingInput,
  OwedDisplayNotification,
  RecordResult,
  RecoveryReport,
  ResultInput,
  SecurityLabel,
} from './types.js';

export const DEFAULT_HISTORY_LIMIT = 50;
export const MAX_HISTORY_LIMIT = 1000;
/** How many interrupted attempts `recoverAfterCrash` retries before failing the message. */
export const DEFAULT_MAX_INTERRUPTED_ATTEMPTS = 3;

/**
 * The conditions of the partial index `messages_outbox`, spelled as in its definition
 * (migrations.ts): SQLite uses a partial index only for a query that repeats its terms.
 */
const WAITING = `m.direction = 'out' AND (m.state = 'queued' OR m.state = 'sending' OR m.state = 'failed')`;

/** Order of the success states: a notification may only move a message forward. */
const SUCCESS_RANK: Partial<Record<MessageState, number>> = { accepted: 1, delivered: 2, displayed: 3 };

/**
 * The states a negative-delivery notification fails (`markUndelivered`). A recipient sends one
 * only after answering 2xx (RFC 5438 §12.1.3.1: never after a failure response, which already
 * said it), so it concerns a message that was:
 * - `accepted`: a 202, a store-and-forward server (or gateway) holds it and later gives up:
 *   the case negative delivery is for;
 * - `delivered`: a 200 from a UA (or a gateway, or a B2BUA answering for the user) that learnt
 *   of the failure only after answering, when §12.1.3.1 says it SHOULD send a negative one;
 * - `sending`: the notification overtook the response to the attempt it follows (the outbox
 *   then leaves that response unrecorded, outbox-worker.ts `finish`).
 * Not `displayed` (the user has seen it: that settles delivery), not `queued`, `failed` or
 * `cancelled` (no attempt of ours is outstanding, the row already says what the user has to
 * decide, and a queued one is about to be sent again anyway).
 */
const UNDELIVERED_FROM: ReadonlySet<MessageState> = new Set<MessageState>(['sending', 'accepted', 'delivered']);

export class MessageRepository {
  private readonly statements: StatementCache;
  private readonly insertIncoming: Statement;
  private readonly insertOutgoing: Statement;
  private readonly indexBody: Statement;
  private readonly selectById: Statement;
  private readonly selectDelivery: Statement;
  private readonly selectBySipKey: Statement;
  private readonly selectByImdnId: Statement;
  private readonly setSending: Statement;
  private readonly setOutcome: Statement;
  private readonly setQueued: Statement;
  private readonly setCancelled: Statement;
  private readonly selectDue: Statement;
  private readonly selectInterrupted: Statement;
  private readonly insertDisplayOwed: Statement;
  private readonly setUndelivered: Statement;

  constructor(
    private readonly db: Db,
    private readonly aors: AorCanonicalizer,
    private readonly conversations: ConversationRepository,
    private readonly now: () => number,
  ) {
    this.statements = new StatementCache(db);
    // The hot statements bind positionally (named binding cost about 2.5 µs per insert): the
    // order is the column list's, see `insertRow`.
    const columns = `conversation_id, direction, peer_uri, body, content_type, security, signer_sha256,
      call_id, cseq, from_tag, imdn_message_id, state, next_attempt_at, created_at, updated_at, sent_at,
      received_at, late`;
    const values = '?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?';
    // DO NOTHING on either unique key: the duplicate is looked up afterwards.
    this.insertIncoming = db.prepare(`INSERT INTO messages (${columns}) VALUES (${values}) ON CONFLICT DO NOTHING`);
    this.insertOutgoing = db.prepare(`INSERT INTO messages (${columns}) VALUES (${values})`);
    this.indexBody = db.prepare('INSERT INTO messages_fts (rowid, body, conversation_id) VALUES (?, ?, ?)');
    this.selectById = db.prepare(`${MESSAGE_SELECT} WHERE m.id = ?`);
    this.selectDelivery = db.prepare(
      `SELECT id, direction, state, status, reason, attempts, next_attempt_at, call_id, cseq, from_tag, sent_at,
         updated_at, negative_delivery FROM messages WHERE id = ?`,
    );
    this.insertDisplayOwed = db.prepare('INSERT INTO display_notifications_owed (message_id, request) VALUES (?, ?)');
    this.setUndelivered = db.prepare(
      `UPDATE messages SET state = 'failed', reason = ?, negative_delivery = ?, next_attempt_at = NULL, updated_at = ?
       WHERE id = ?`,
    );
    this.selectBySipKey = db.prepare(
      `${MESSAGE_SELECT} WHERE m.direction = 'in' AND m.call_id = ? AND m.cseq = ? AND m.from_tag = ?`,
    );
    this.selectByImdnId = db.prepare(
      `${MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.direction = ? AND m.imdn_message_id = ?`,
    );
    this.setSending = db.prepare(
      `UPDATE messages SET state = 'sending', attempts = ?, next_attempt_at = NULL,
         call_id = ?, cseq = ?, from_tag = ?, sent_at = ?, updated_at = ?
       WHERE id = ?`,
    );
    this.setOutcome = db.prepare(
      `UPDATE messages SET state = ?, status = ?, reason = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?`,
    );
    // Queued again (the user's retry, or crash recovery): a new attempt, so the negative-delivery
    // notification of an earlier one no longer decides its state.
    this.setQueued = db.prepare(
      `UPDATE messages SET state = 'queued', negative_delivery = NULL, next_attempt_at = @now, updated_at = @now
       WHERE id = @id`,
    );
    this.setCancelled = db.prepare(
      `UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = @now WHERE id = @id`,
    );
    // Per-peer FIFO: a due message is returned only if no older message to the same peer is
    // still waiting for a later time (RFC 3428 §8 wants one MESSAGE at a time per destination
    // anyway; this keeps the order too). Rows in flight (`sending`) do not block: the UA's
    // per-destination queue orders what is handed to it.
    this.selectDue = db.prepare(
      `${OUTBOX_SELECT}
       WHERE ${WAITING} AND m.next_attempt_at <= @now
         AND NOT EXISTS (
           SELECT 1 FROM messages o
           WHERE o.direction = 'out' AND (o.state = 'queued' OR o.state = 'sending' OR o.state = 'failed')
             AND o.conversation_id = m.conversation_id AND o.id < m.id AND o.next_attempt_at > @now)
       ORDER BY m.id LIMIT @limit`,
    );
    this.selectInterrupted = db.prepare(
      `SELECT m.id, m.attempts FROM messages m INDEXED BY messages_outbox
       WHERE ${WAITING} AND m.state = 'sending' ORDER BY m.id`,
    );
  }

  get(id: number): Message | undefined {
    const row = this.selectById.get(id) as MessageRow | undefined;
    return row && toMessage(row);
  }

  // ─── Incoming ────────────────────────────────────────────────────────────────────────────

  /**
   * Stores an incoming message, committed when this returns (unless called inside
   * `Store.batch`, which commits at its end). Answer the request only after that.
   */
  recordIncoming(input: IncomingInput): RecordResult {
    const signer = input.signerFingerprint === undefined ? null : fingerprintBytes(input.signerFingerprint);
    return atomically(this.db, () => {
      const conversation = this.conversations.resolve(input.account, input.peer);
      const message = this.insertRow(this.insertIncoming, conversation, {
        direction: 'in',
        peerUri: input.peer.trim(),
        body: input.body,
        contentType: input.contentType,
        security: input.security,
        signer,
        callId: input.callId,
        cseq: input.cseq,
        fromTag: input.fromTag,
        imdnMessageId: input.imdnMessageId ?? null,
        state: 'received',
        nextAttemptAt: null,
        sentAt: input.sentAt ?? null,
        receivedAt: input.receivedAt,
        late: input.late === true,
      });
      if (message === undefined) return { inserted: false, message: this.duplicateOf(conversation, input) };
      if (input.displayNotification !== undefined) {
        this.insertDisplayOwed.run(message.id, JSON.stringify(input.displayNotification));
      }
      this.conversations.countIncoming(conversation.id);
      return { inserted: true, message };
    });
  }

  /** Several incoming messages in one transaction (one commit, one fsync). */
  recordIncomingBatch(inputs: readonly IncomingInput[]): RecordResult[] {
    return atomically(this.db, () => inputs.map((input) => this.recordIncoming(input)));
  }

  private duplicateOf(conversation: ConversationKey, input: IncomingInput): Message {
    const bySipKey = this.selectBySipKey.get(input.callId, input.cseq, input.fromTag) as MessageRow | undefined;
    const row =
      bySipKey ??
      (input.imdnMessageId === undefined
        ? undefined
        : (this.selectByImdnId.get(conversation.id, 'in', input.imdnMessageId) as MessageRow | undefined));
    // Only a unique key makes DO NOTHING skip a row, and both were just looked up.
    if (!row) throw new Error('store: an incoming insert was skipped but no duplicate was found');
    return toMessage(row);
  }

  // ─── Outgoing ────────────────────────────────────────────────────────────────────────────

  /** Stores an outgoing message as `queued`, due now. Commit this before sending anything. */
  enqueueOutgoing(input: OutgoingInput): Message {
    const signer = input.signerFingerprint === undefined ? null : fingerprintBytes(input.signerFingerprint);
    return atomically(this.db, () => {
      const conversation = this.conversations.resolve(input.account, input.peer);
      try {
        return this.insertRow(this.insertOutgoing, conversation, {
          direction: 'out',
          peerUri: input.peer.trim(),
          body: input.body,
          contentType: input.contentType,
          security: input.security,
          signer,
          callId: null,
          cseq: null,
          fromTag: null,
          imdnMessageId: input.imdnMessageId ?? null,
          state: 'queued',
          nextAttemptAt: this.now(),
          sentAt: null,
          receivedAt: null,
          late: false,
        })!;
      } catch (error) {
        if (isUniqueViolation(error)) {
          throw new StoreError('invalid-input', `IMDN Message-ID ${input.imdnMessageId} is already used with this peer`);
        }
        throw error;
      }
    });
  }

  /**
   * The imdn.Message-ID of an outgoing message (RFC 5438 §6.3): the stored one, or `messageId`
   * stored now when it has none (a row queued without one). Every attempt then carries the
   * same, which is how the receiver recognises a retry it already has.
   */
  ensureImdnMessageId(id: number, messageId: string): string {
    return atomically(this.db, () => {
      this.statements
        .get(`UPDATE messages SET imdn_message_id = ? WHERE id = ? AND direction = 'out' AND imdn_message_id IS NULL`)
        .run(messageId, id);
      const stored = this.statements.get('SELECT imdn_message_id FROM messages WHERE id = ?').pluck().get(id) as string | null | undefined;
      if (stored === undefined) throw new StoreError('not-found', `no message ${id}`);
      if (stored === null) throw new StoreError('invalid-input', `message ${id} is not outgoing`);
      return stored;
    });
  }

  /**
   * The attempt starts: `sending`, one more attempt, and the SIP identity it uses (kept from
   * the previous attempt when not given). Allowed from `queued` and from a retryable `failed`.
   */
  markSending(id: number, identity?: AttemptIdentity): DeliveryUpdate {
    return atomically(this.db, () => {
      const current = this.requireDelivery(id);
      if (current.direction !== 'out' || current.next_attempt_at === null) throw invalidTransition(current, 'sending');
      const now = this.now();
      const update: DeliveryUpdate = {
        ...toDeliveryUpdate(current),
        state: 'sending',
        attempts: current.attempts + 1,
        nextAttemptAt: null,
        callId: identity?.callId ?? current.call_id,
        cseq: identity?.cseq ?? current.cseq,
        fromTag: identity?.fromTag ?? current.from_tag,
        sentAt: now,
        updatedAt: now,
      };
      this.setSending.run(update.attempts, update.callId, update.cseq, update.fromTag, now, now, id);
      return update;
    });
  }

  /**
   * What came of an attempt or a notification:
   * - `failed` (from `sending`): the final status and reason; with `retryAt`, the outbox sends
   *   it again then (408, 5xx, transport errors; Retry-After), else it waits for the user;
   * - `accepted` / `delivered` / `displayed`: from any waiting state (an IMDN can prove
   *   delivery of a message whose 200 was lost), and forward among themselves. A notification
   *   that would move backwards (a late "delivered" after "displayed") changes nothing.
   */
  markResult(id: number, result: ResultInput): DeliveryUpdate {
    return atomically(this.db, () => {
      const current = this.requireDelivery(id);
      if (current.direction !== 'out') throw invalidTransition(current, result.state);
      // Failed by a negative-delivery notification: the recipient's side said it did not get
      // there, and a late response or notification does not undo that (markUndelivered).
      if (current.negative_delivery !== null && result.state !== 'failed') return toDeliveryUpdate(current);
      if (result.retryAt !== undefined && result.state !== 'failed') {
        throw new StoreError('invalid-input', 'retryAt only goes with state failed');
      }
      if (result.state === 'failed') {
        if (current.state !== 'sending') throw invalidTransition(current, 'failed');
      } else {
        const currentRank = SUCCESS_RANK[current.state];
        if (currentRank !== undefined && currentRank >= (SUCCESS_RANK[result.state] ?? 0)) {
          // The state stays. But a notification can overtake the response it follows (the IMDN
          // arrives while the sender is still recording its 202): keep the response's status then.
          if (current.status !== null || result.status === undefined) return toDeliveryUpdate(current);
          const late: DeliveryUpdate = { ...toDeliveryUpdate(current), status: result.status, reason: result.reason ?? current.reason, updatedAt: this.now() };
          this.setOutcome.run(late.state, late.status, late.reason, late.nextAttemptAt, late.updatedAt, id);
          return late;
        }
      }
      // A failure reports its own status; a notification (no status) keeps the response's.
      const keep = result.state !== 'failed';
      const update: DeliveryUpdate = {
        ...toDeliveryUpdate(current),
        state: result.state,
        status: result.status ?? (keep ? current.status : null),
        reason: result.reason ?? (keep ? current.reason : null),
        nextAttemptAt: result.retryAt ?? null,
        updatedAt: this.now(),
      };
      this.setOutcome.run(update.state, update.status, update.reason, update.nextAttemptAt, update.updatedAt, id);
      return update;
    });
  }

  /**
   * A negative-delivery notification for an outgoing message (RFC 5438 §7.2.1.1, §11: status
   * failed, forbidden or error): from `sending`, `accepted` or `delivered` (see UNDELIVERED_FROM
   * for why these) it becomes `failed` with `reason`, waiting for the user, and stays so: a
   * response or notification that comes later (a positive delivery from another of the
   * recipient's devices, a replayed display) changes nothing, as a recipient sends one delivery
   * notification per IM (§7.2.1) and the first says what happened. The SIP status of the last
   * attempt is kept. In any other state, or when one already failed it, nothing changes.
   */
  markUndelivered(id: number, status: NegativeDeliveryStatus, reason: string): DeliveryUpdate {
    return atomically(this.db, () => {
      const current = this.requireDelivery(id);
      if (current.direction !== 'out') throw invalidTransition(current, 'failed');
      if (!UNDELIVERED_FROM.has(current.state) || current.negative_delivery !== null) return toDeliveryUpdate(current);
      const update: DeliveryUpdate = { ...toDeliveryUpdate(current), state: 'failed', reason, nextAttemptAt: null, updatedAt: this.now() };
      this.setUndelivered.run(reason, status, update.updatedAt, id);
      return update;
    });
  }

  /**
   * The display notifications owed in a conversation (received IMs that asked for one, stored
   * with `displayNotification`), oldest first, taken: deleted in the same transaction, so each
   * is handed out once, even across restarts. The caller sends them (or, without the user's
   * consent to read receipts, drops them): at most once, never twice, which is the side RFC 5438
   * errs on (§7.2.1: one notification per disposition type per IM; §7.1.4: the sender cannot
   * count on getting one at all).
   */
  takeDisplayNotificationsOwed(conversationId: number): OwedDisplayNotification[] {
    return atomically(this.db, () => {
      const rows = this.statements
        .get(
          `SELECT o.message_id, o.request FROM display_notifications_owed o CROSS JOIN messages m ON m.id = o.message_id
           WHERE m.conversation_id = ? ORDER BY o.message_id`,
        )
        .all(conversationId) as { message_id: number; request: string }[];
      const owed: OwedDisplayNotification[] = [];
      const remove = this.statements.get('DELETE FROM display_notifications_owed WHERE message_id = ?');
      for (const row of rows) {
        remove.run(row.message_id);
        owed.push({ message: this.require(row.message_id), request: JSON.parse(row.request) as DisplayNotificationRequest });
      }
      return owed;
    });
  }

  /** The user asks to send a failed (or cancelled) message again: queued, due now. */
  retry(id: number): DeliveryUpdate {
    return atomically(this.db, () => {
      const current = this.requireDelivery(id);
      if (current.direction !== 'out' || (current.state !== 'failed' && current.state !== 'cancelled')) {
        throw invalidTransition(current, 'queued');
      }
      const now = this.now();
      this.setQueued.run({ id, now });
      return { ...toDeliveryUpdate(current), state: 'queued', nextAttemptAt: now, updatedAt: now };
    });
  }

  /** The user gives up on a queued or failed message. One in flight cannot be unsent. */
  cancel(id: number): DeliveryUpdate {
    return atomically(this.db, () => {
      const current = this.requireDelivery(id);
      if (current.direction !== 'out' || (current.state !== 'queued' && current.state !== 'failed')) {
        throw invalidTransition(current, 'cancelled');
      }
      const now = this.now();
      this.setCancelled.run({ id, now });
      return { ...toDeliveryUpdate(current), state: 'cancelled', nextAttemptAt: null, updatedAt: now };
    });
  }

  /**
   * What the outbox should send now: queued and retryable-failed messages whose time has
   * come, oldest first, never overtaking an older message to the same peer that must wait.
   */
  dueOutbox(now: number = this.now(), limit = 100): Message[] {
    return (this.selectDue.all({ now, limit }) as MessageRow[]).map(toMessage);
  }

  /** Everything outgoing that is not finished (queued, sending, failed), oldest first. */
  outbox(account?: string): Message[] {
    const sql =
      account === undefined
        ? `${OUTBOX_SELECT} WHERE ${WAITING} ORDER BY m.id`
        : `${OUTBOX_SELECT} WHERE ${WAITING} AND a.aor = ? ORDER BY m.id`;
    const rows =
      account === undefined ? this.statements.get(sql).all() : this.statements.get(sql).all(this.aors.canonical(account));
    return (rows as MessageRow[]).map(toMessage);
  }

  /**
   * On start, before the outbox runs: a row still `sending` belonged to an attempt that a
   * crash or kill interrupted; the peer may or may not have it. It goes back to `queued` with
   * its attempts count kept, or, after `maxAttempts` attempts, to `failed` with a reason. The
   * retry keeps the IMDN Message-ID, and the Call-ID, CSeq and From tag unless `markSending`
   * is given new ones, so a peer that did get it can recognise it as a duplicate.
   */
  recoverAfterCrash(options: { maxAttempts?: number } = {}): RecoveryReport {
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_INTERRUPTED_ATTEMPTS;
    return atomically(this.db, () => {
      const requeued: Message[] = [];
      const failed: Message[] = [];
      const now = this.now();
      for (const { id, attempts } of this.selectInterrupted.all() as { id: number; attempts: number }[]) {
        if (attempts >= maxAttempts) {
          const reason = `interrupted ${attempts} times while sending (sipnote stopped); not sure it arrived`;
          this.setOutcome.run('failed', null, reason, null, now, id);
          failed.push(this.require(id));
        } else {
          this.setQueued.run({ id, now });
          requeued.push(this.require(id));
        }
      }
      return { requeued, failed };
    });
  }

  /**
   * Waiting rows of `account` (every account when absent) whose next attempt is later than
   * now become due now: the registrar or the network is back, so the backoff no longer says
   * anything about the chances of the next attempt. Returns how many rows changed. Rows that
   * wait for the user (failed without a retry time) are left alone.
   */
  makeDueNow(account?: string): number {
    const now = this.now();
    const sql = `UPDATE messages SET next_attempt_at = @now, updated_at = @now
      WHERE direction = 'out' AND (state = 'queued' OR state = 'failed') AND next_attempt_at > @now
        ${account === undefined ? '' : 'AND conversation_id IN (SELECT c.id FROM conversations c JOIN accounts a ON a.id = c.account_id WHERE a.aor = @account)'}`;
    const params = account === undefined ? { now } : { now, account: this.aors.canonical(account) };
    return this.statements.get(sql).run(params).changes;
  }

  /**
   * Positions `[from, from + limit)` of one conversation, oldest first (position 0 is its
   * first message), and how many messages it has: paging by position, as a virtualised
   * thread view asks for it. Walks the conversation index; the cost grows with `from`.
   */
  conversationPage(conversationId: number, from: number, limit: number): { total: number; messages: Message[] } {
    const total = this.countIn(conversationId);
    const rows = this.statements
      .get(`${MESSAGE_SELECT} WHERE m.conversation_id = ? ORDER BY m.id LIMIT ? OFFSET ?`)
      .all(conversationId, Math.max(0, Math.trunc(limit)), Math.max(0, Math.trunc(from))) as MessageRow[];
    return { total, messages: rows.map(toMessage) };
  }

  /** How many messages a conversation has. */
  countIn(conversationId: number): number {
    return this.statements.get('SELECT count(*) FROM messages WHERE conversation_id = ?').pluck().get(conversationId) as number;
  }

  /** The outgoing message an IMDN refers to (RFC 5438 §7.1.1: by Message-ID, from that peer). */
  findOutgoingByImdnId(account: string, peer: string, imdnMessageId: string): Message | undefined {
    const [conversationId] = this.conversations.idsWith(peer, account);
    if (conversationId === undefined) return undefined;
    const row = this.selectByImdnId.get(conversationId, 'out', imdnMessageId) as MessageRow | undefined;
    return row && toMessage(row);
  }

  // ─── History and search ──────────────────────────────────────────────────────────────────

  /**
   * Messages newest first, filtered by account, peer and words, `limit` at a time; pass the
   * last id of a page as `before` for the next.
   *
   * Search walks the FTS5 index in descending rowid order and stops after `limit` matches:
   * no ranking, so a word in most messages costs the same as a rare one (performance.md §5:
   * ranking by relevance took over a second for a very common word).
   */
  history(query: HistoryQuery = {}): Message[] {
    const limit = Math.min(Math.max(Math.trunc(query.limit ?? DEFAULT_HISTORY_LIMIT), 1), MAX_HISTORY_LIMIT);
    const match = query.search === undefined ? undefined : toFtsQuery(query.search);
    if (match === null) return [];
    let conversationIds: number[] | undefined;
    if (query.peer !== undefined) {
      conversationIds = this.conversations.idsWith(query.peer, query.account);
      if (conversationIds.length === 0) return [];
    }
    if (conversationIds !== undefined && conversationIds.length > 1) {
      // The same peer under several accounts: one query each, merged.
      return conversationIds
        .flatMap((id) => this.page(limit, query.before, match, id, undefined))
        .sort((a, b) => b.id - a.id)
        .slice(0, limit);
    }
    const account = query.account === undefined ? undefined : this.aors.canonical(query.account);
    return this.page(limit, query.before, match, conversationIds?.[0], account);
  }

  /** `history` with only words. */
  search(text: string, options: Omit<HistoryQuery, 'search'> = {}): Message[] {
    return this.history({ ...options, search: text });
  }

  private page(
    limit: number,
    before: number | undefined,
    match: string | undefined,
    conversationId: number | undefined,
    account: string | undefined,
  ): Message[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit };
    let from: string;
    let order: string;
    if (match !== undefined) {
      // The FTS table drives the loop, in rowid order, so LIMIT stops it early; a conversation
      // is a term of the full-text query itself (migrations.ts, version 2).
      from = `messages_fts f CROSS JOIN messages m ON m.id = f.rowid ${MESSAGE_JOINS}`;
      where.push('messages_fts MATCH @match');
      params.match =
        conversationId === undefined
          ? `{body} : (${match})`
          : `conversation_id : "${conversationId}" AND {body} : (${match})`;
      order = 'f.rowid DESC';
      if (before !== undefined) where.push('f.rowid < @before');
    } else {
      from = `messages m ${MESSAGE_JOINS}`;
      order = 'm.id DESC';
      if (before !== undefined) where.push('m.id < @before');
    }
    if (before !== undefined) params.before = before;
    if (conversationId !== undefined) {
      where.push('m.conversation_id = @conversationId');
      params.conversationId = conversationId;
    } else if (account !== undefined) {
      where.push('a.aor = @account');
      params.account = account;
    }
    const sql = `SELECT ${MESSAGE_COLUMNS} FROM ${from} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT @limit`;
    return (this.statements.get(sql).all(params) as MessageRow[]).map(toMessage);
  }

  /**
   * Inserts a message row and indexes its body, in the caller's transaction, and returns it
   * as stored (built here rather than read back). Undefined when `statement` skipped it as a
   * duplicate (ON CONFLICT DO NOTHING).
   */
  private insertRow(statement: Statement, conversation: ConversationKey, fields: NewRow): Message | undefined {
    const now = this.now();
    // NFC: one form for what is shown, indexed and searched (fts-query.ts normalises too).
    const body = fields.body.normalize('NFC');
    const result = statement.run(
      conversation.id,
      fields.direction,
      fields.peerUri,
      body,
      fields.contentType,
      fields.security,
      fields.signer,
      fields.callId,
      fields.cseq,
      fields.fromTag,
      fields.imdnMessageId,
      fields.state,
      fields.nextAttemptAt,
      now,
      now,
      fields.sentAt,
      fields.receivedAt,
      fields.late ? 1 : 0,
    );
    if (result.changes === 0) return undefined;
    const id = Number(result.lastInsertRowid);
    // The id as text: better-sqlite3 binds a JS number as a REAL ("17.0" to the tokenizer),
    // while FTS5 reads the INTEGER column back as "17" when it checks or deletes.
    this.indexBody.run(id, body, String(conversation.id));
    return {
      id,
      conversationId: conversation.id,
      account: conversation.account,
      peer: conversation.peer,
      peerUri: fields.peerUri,
      direction: fields.direction,
      body,
      contentType: fields.contentType,
      security: fields.security,
      signerFingerprint: fields.signer === null ? null : fields.signer.toString('hex'),
      callId: fields.callId,
      cseq: fields.cseq,
      fromTag: fields.fromTag,
      imdnMessageId: fields.imdnMessageId,
      state: fields.state,
      status: null,
      reason: null,
      attempts: 0,
      nextAttemptAt: fields.nextAttemptAt,
      createdAt: now,
      updatedAt: now,
      sentAt: fields.sentAt,
      receivedAt: fields.receivedAt,
      late: fields.late,
      negativeDelivery: null,
    };
  }

  private requireDelivery(id: number): DeliveryRow {
    const row = this.selectDelivery.get(id) as DeliveryRow | undefined;
    if (!row) throw new StoreError('not-found', `no message ${id}`);
    return row;
  }

  private require(id: number): Message {
    const message = this.get(id);
    if (!message) throw new StoreError('not-found', `no message ${id}`);
    return message;
  }
}

/** The columns of a new row that differ between incoming and outgoing messages. */
interface NewRow {
  readonly direction: Direction;
  readonly peerUri: string;
  readonly body: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly signer: Buffer | null;
  readonly callId: string | null;
  readonly cseq: number | null;
  readonly fromTag: string | null;
  readonly imdnMessageId: string | null;
  readonly state: MessageState;
  readonly nextAttemptAt: number | null;
  readonly sentAt: number | null;
  readonly receivedAt: number | null;
  readonly late: boolean;
}

/** The columns an outbox transition reads and changes. */
interface DeliveryRow {
  id: number;
  direction: Direction;
  state: MessageState;
  status: number | null;
  reason: string | null;
  attempts: number;
  next_attempt_at: number | null;
  call_id: string | null;
  cseq: number | null;
  from_tag: string | null;
  sent_at: number | null;
  updated_at: number;
  negative_delivery: NegativeDeliveryStatus | null;
}

function toDeliveryUpdate(row: DeliveryRow): DeliveryUpdate {
  return {
    id: row.id,
    state: row.state,
    status: row.status,
    reason: row.reason,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    callId: row.call_id,
    cseq: row.cseq,
    fromTag: row.from_tag,
    sentAt: row.sent_at,
    updatedAt: row.updated_at,
  };
}

function invalidTransition(row: DeliveryRow, to: string): StoreError {
  return new StoreError(
    'invalid-transition',
    `message ${row.id} (${row.direction}, ${row.state}${row.next_attempt_at === null ? '' : ', retry scheduled'}) cannot become ${to}`,
  );
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}
