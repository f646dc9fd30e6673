/**
 * The one SELECT shape for messages and its mapping to `Message`. Every read of messages
 * (history, search, outbox, a single row) goes through these, so a column added by a
 * migration is added here once.
 */
import type { Direction, Message, MessageState, NegativeDeliveryStatus, SecurityLabel } from './types.js';

/**
 * `m` is the message, `c` its conversation, `a` the account; callers add WHERE/ORDER BY.
 *
 * CROSS JOIN fixes the loop order (SQLite never reorders it): messages drive, so
 * `ORDER BY m.id DESC LIMIT n` walks the rowid (or the conversation index) backwards and stops
 * after n rows. Left to itself, the planner may start from the account and sort the whole
 * history of that account, and statistics gathered later (`PRAGMA optimize`) could change its
 * mind at any time.
 */
export const MESSAGE_COLUMNS = `
  m.id, m.conversation_id, a.aor AS account, c.peer, m.peer_uri, m.direction, m.body, m.content_type,
  m.security, m.signer_sha256, m.call_id, m.cseq, m.from_tag, m.imdn_message_id, m.state, m.status,
  m.reason, m.attempts, m.next_attempt_at, m.created_at, m.updated_at, m.sent_at, m.received_at, m.late,
  m.negative_delivery`;

export const MESSAGE_JOINS = `
  CROSS JOIN conversations c ON c.id = m.conversation_id
  CROSS JOIN accounts a ON a.id = c.account_id`;

export const MESSAGE_SELECT = `SELECT ${MESSAGE_COLUMNS} FROM messages m ${MESSAGE_JOINS}`;

/**
 * The same, reading only the waiting outgoing rows through the partial index
 * `messages_outbox`. INDEXED BY makes the choice explicit (and fails loudly if a query stops
 * matching the index's WHERE): without it the planner may prefer walking the whole table in id
 * order to sorting the few waiting rows.
 */
export const OUTBOX_SELECT = `SELECT ${MESSAGE_COLUMNS} FROM messages m INDEXED BY messages_outbox ${MESSAGE_JOINS}`;

export interface MessageRow {
  id: number;
  conversation_id: number;
  account: string;
  peer: string;
  peer_uri: string;
  direction: Direction;
  body: string;
  content_type: string;
  security: SecurityLabel;
  signer_sha256: Buffer | null;
  call_id: string | null;
  cseq: number | null;
  from_tag: string | null;
  imdn_message_id: string | null;
  state: MessageState;
  status: number | null;
  reason: string | null;
  attempts: number;
  next_attempt_at: number | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
  received_at: number | null;
  late: number;
  negative_delivery: NegativeDeliveryStatus | null;
}

export function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    account: row.account,
    peer: row.peer,
    peerUri: row.peer_uri,
    direction: row.direction,
    body: row.body,
    contentType: row.content_type,
    security: row.security,
    signerFingerprint: row.signer_sha256 === null ? null : row.signer_sha256.toString('hex'),
    callId: row.call_id,
    cseq: row.cseq,
    fromTag: row.from_tag,
    imdnMessageId: row.imdn_message_id,
    state: row.state,
    status: row.status,
    reason: row.reason,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    sentAt: row.sent_at,
    receivedAt: row.received_at,
    late: row.late === 1,
    negativeDelivery: row.negative_delivery,
  };
}
