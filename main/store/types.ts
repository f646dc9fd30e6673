/**
 * The shapes the store hands out and takes in. Rows are mapped to these plain objects: the
 * column names (snake_case) stay inside main/store.
 *
 * Times are milliseconds since the Unix epoch (wall clock, `Date.now()` scale): they are shown
 * to the user and compared with the Date header, so they are not the monotonic clock of the
 * transaction layer.
 *
 * No secret has a place here: no password, no private key, no session key. Certificates are
 * public; settings are checked for secret-looking keys before they are written (accounts.ts).
 */

export type Direction = 'in' | 'out';

/**
 * Where a message is.
 *
 * Outgoing (RFC 3428 §4, §7; RFC 5438 for the IMDN states):
 * - `queued`: stored, waiting for its turn (`next_attempt_at`); nothing has left yet, or the
 *   last attempt was interrupted by a crash.
 * - `sending`: an attempt is in flight (committed before the first byte leaves).
 * - `accepted`: 202, a relay or store-and-forward server took it; delivery is still to come.
 * - `delivered`: 200 from the recipient's UA, or a positive-delivery IMDN.
 * - `displayed`: a display IMDN.
 * - `failed`: a final failure (`status`, `reason`). With `next_attempt_at` set it will be
 *   retried automatically (408, 5xx, transport errors); without, it waits for the user.
 * - `cancelled`: the user gave up on a queued or failed message.
 *
 * Incoming messages are always `received`; what the user has read is a per-conversation
 * watermark (conversations.ts), not a per-message state.
 */
export type MessageState =
  | 'queued'
  | 'sending'
  | 'accepted'
  | 'delivered'
  | 'displayed'
  | 'failed'
  | 'cancelled'
  | 'received';

/**
 * What protected the message on the wire, as verified on receipt (or as applied on sending):
 * S/MIME signed and encrypted, encrypted only (legacy EnvelopedData without a signature),
 * signed only, or plaintext (a contact with the `legacy-plaintext` policy). Never stronger
 * than what was checked: unverifiable input is not stored as signed.
 */
export type SecurityLabel = 'encrypted-signed' | 'encrypted' | 'signed' | 'plaintext';

export interface Account {
  readonly id: number;
  /** Canonical address of record (uri.ts `aorOf`). */
  readonly aor: string;
  readonly displayName: string | null;
  /** Free-form preferences; never secrets (accounts.ts refuses secret-looking keys). */
  readonly settings: Readonly<Record<string, unknown>>;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The sending policy for one contact (design.md "Security"). */
export type ContactPolicy = 'smime' | 'legacy-plaintext';

/**
 * How far the contact's certificate is trusted:
 * - `none`: no certificate pinned yet;
 * - `pinned`: pinned on first use (trust on first use), not checked out of band;
 * - `verified`: the user compared the fingerprint out of band;
 * - `changed`: the peer presented a different certificate than the pinned one. The old one
 *   stays pinned until the user decides; a change is loud, never silent.
 */
export type TrustState = 'none' | 'pinned' | 'verified' | 'changed';

export interface Contact {
  readonly id: number;
  readonly account: string;
  /** Canonical peer AoR. */
  readonly aor: string;
  readonly displayName: string | null;
  /** The pinned certificate, DER. */
  readonly certificate: Buffer | null;
  /** SHA-256 of `certificate`, lowercase hex, computed by the store. */
  readonly fingerprint: string | null;
  readonly policy: ContactPolicy;
  readonly trust: TrustState;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface Message {
  /** Arrival order: a higher id was stored later. Newest first = id descending. */
  readonly id: number;
  readonly conversationId: number;
  readonly account: string;
  /** Canonical peer AoR (the conversation's). */
  readonly peer: string;
  /** The peer's URI as it was on the wire (From for incoming, the target for outgoing). */
  readonly peerUri: string;
  readonly direction: Direction;
  readonly body: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  /** SHA-256 of the signer's certificate, lowercase hex, when the message was signed. */
  readonly signerFingerprint: string | null;
  readonly callId: string | null;
  readonly cseq: number | null;
  readonly fromTag: string | null;
  /** RFC 5438 §6.3 imdn.Message-ID. */
  readonly imdnMessageId: string | null;
  readonly state: MessageState;
  /** Final SIP status of the last attempt (outgoing). */
  readonly status: number | null;
  readonly reason: string | null;
  readonly attempts: number;
  /** When the outbox sends it next; null unless queued or failed-and-retryable. */
  readonly nextAttemptAt: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Incoming: the sender's Date (or CPIM DateTime). Outgoing: when the last attempt started. */
  readonly sentAt: number | null;
  /** Incoming: when we received it. */
  readonly receivedAt: number | null;
  /** Accepted although old (design.md: up to 72 hours), shown as late. */
  readonly late: boolean;
  /**
   * Outgoing: the status of the negative-delivery notification (RFC 5438 §7.2.1.1, §11) that
   * failed the message, the recipient's side reporting it undelivered; null otherwise.
   * While set, no response or later notification moves the message (messages.ts
   * `markUndelivered`); the user's retry clears it.
   */
  readonly negativeDelivery: NegativeDeliveryStatus | null;
}

/** The negative statuses of a delivery notification (RFC 5438 §11: `<failed/>`, `<forbidden/>`, `<error/>`). */
export type NegativeDeliveryStatus = 'failed' | 'forbidden' | 'error';

/** An address as a CPIM header carries it (RFC 3862 §3.2): a URI and an optional display name. */
export interface NotificationAddress {
  readonly uri: string;
  readonly name?: string;
}

/**
 * What the display notification owed for a received IM needs, besides what its row already
 * holds (the SIP From it goes back to, our account, how it was protected): the parts of the
 * IM's notification request (RFC 5438 §7.2.1.1) that are quoted or followed when the
 * notification is built. Kept in the store from the moment the IM is stored until the user
 * reads its conversation, so that a restart in between does not lose it.
 */
export interface DisplayNotificationRequest {
  /**
   * The imdn.Message-ID to quote in `<message-id>`, as the request had it. The row's
   * `imdnMessageId` (the duplicate key) is read from the same header, but by another reader
   * (incoming-body.ts, unprotect.ts) that need not trim it the same way: the quote is kept as is.
   */
  readonly messageId: string;
  /** The IM's DateTime exactly as written: echoed in `<datetime>`. */
  readonly dateTime: string;
  /** The IM's CPIM From: the CPIM To of the notification. */
  readonly from: NotificationAddress;
  /** The IM's first CPIM To: `<original-recipient-uri>` when there is no imdn.Original-To. */
  readonly to?: NotificationAddress;
  /** imdn.Original-To (RFC 5438 §6.4). */
  readonly originalTo?: NotificationAddress;
  /** imdn.IMDN-Record-Route values, in order (§6.5). */
  readonly recordRoute: readonly NotificationAddress[];
}

/** A received IM whose display notification is still owed, and what building it needs. */
export interface OwedDisplayNotification {
  readonly message: Message;
  readonly request: DisplayNotificationRequest;
}

/** What the messaging layer knows about an incoming MESSAGE once it has been checked. */
export interface IncomingInput {
  /** Our AoR (the account it was addressed to). */
  readonly account: string;
  /** The From URI. */
  readonly peer: string;
  readonly body: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly signerFingerprint?: string;
  readonly callId: string;
  readonly cseq: number;
  readonly fromTag: string;
  readonly imdnMessageId?: string;
  readonly sentAt?: number;
  readonly receivedAt: number;
  readonly late?: boolean;
  /**
   * The IM asked for a display notification (RFC 5438 §7.2): stored with it, in the same
   * transaction, until the user reads the conversation (`takeDisplayNotificationsOwed`).
   * Ignored for a duplicate (the first copy owes it, or has paid it).
   */
  readonly displayNotification?: DisplayNotificationRequest;
}

export interface RecordResult {
  /** False when the message was already stored (same Call-ID/CSeq/From tag or IMDN id). */
  readonly inserted: boolean;
  /** The stored row: the new one, or the one stored the first time. */
  readonly message: Message;
}

export interface OutgoingInput {
  readonly account: string;
  /** The target URI. */
  readonly peer: string;
  readonly body: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly signerFingerprint?: string;
  readonly imdnMessageId?: string;
}

/** The SIP identity of one attempt, recorded when it starts. */
export interface AttemptIdentity {
  readonly callId: string;
  readonly cseq: number;
  readonly fromTag: string;
}

/**
 * What an outbox transition changed (markSending, markResult, retry, cancel): the delivery
 * fields of the message, enough to update a view. The whole row is `messages.get(id)`.
 */
export type DeliveryUpdate = Pick<
  Message,
  'id' | 'state' | 'status' | 'reason' | 'attempts' | 'nextAttemptAt' | 'callId' | 'cseq' | 'fromTag' | 'sentAt' | 'updatedAt'
>;

export type OutcomeState = 'accepted' | 'delivered' | 'displayed' | 'failed';

export interface ResultInput {
  readonly state: OutcomeState;
  readonly status?: number;
  readonly reason?: string;
  /** Only with `failed`: retry automatically at this time (backoff, Retry-After). */
  readonly retryAt?: number;
}

export interface HistoryQuery {
  readonly account?: string;
  readonly peer?: string;
  /** Words to find (user input; escaped, see fts-query.ts). */
  readonly search?: string;
  /** Default 50, at most 1000. */
  readonly limit?: number;
  /** Only messages older than this message id (paging: pass the last id of the page). */
  readonly before?: number;
}

export interface ConversationSummary {
  readonly id: number;
  readonly account: string;
  readonly peer: string;
  /** The contact's display name, when the peer is a contact. */
  readonly displayName: string | null;
  readonly unread: number;
  readonly lastReadMessageId: number;
  readonly lastMessage: Message | null;
}

export interface RecoveryReport {
  /** Interrupted attempts put back in the queue (attempts kept). */
  readonly requeued: readonly Message[];
  /** Interrupted too often: failed with a reason, waiting for the user. */
  readonly failed: readonly Message[];
}
