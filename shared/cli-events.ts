/**
 * The JSON lines `sipnote listen --json` and `sipnote send --json` print: one object per line.
 * Scripts and tests read these; the types are the contract, so a field is never renamed
 * without every reader seeing it at compile time.
 */

/** Printed once, when every socket is bound. `listen` entries are `udp:127.0.0.1:5081`. */
export interface ListeningEvent {
  readonly event: 'listening';
  readonly aor: string;
  readonly listen: readonly string[];
}

/**
 * How a message was protected, said truthfully (design.md, security model; the same labels as
 * shared/api.ts): `encrypted-signed` S/MIME encrypted to us and signed by the sender's
 * certificate; `signed` signed but readable on the way; `encrypted` encrypted to us but signed
 * by nobody, so anyone could have sent it; `plaintext` neither. The last two are accepted only
 * with --plaintext.
 */
export type MessageSecurity = 'encrypted-signed' | 'signed' | 'encrypted' | 'plaintext';

/** One per MESSAGE accepted (answered 2xx). */
export interface MessageEvent {
  readonly event: 'message';
  readonly security: MessageSecurity;
  /** SHA-256 fingerprint of the signer's certificate (`AB:CD:…`), for a signed message. */
  readonly fingerprint?: string;
  /**
   * The date under the signature is more than 5 minutes old: delivered late, or possibly a
   * replay (RFC 3428 §11.4). Present (true) only then.
   */
  readonly late?: true;
  readonly from: string;
  readonly fromDisplayName?: string;
  readonly to: string;
  readonly callId: string;
  readonly cseq: number;
  /** The Content-Type header as sent, parameters included. */
  readonly contentType: string;
  /**
   * Text for textual types (decoded in their charset), base64 otherwise. For an S/MIME message,
   * the protected payload (never the ciphertext); `contentType` stays the SIP header's.
   */
  readonly body: string;
  readonly bodyEncoding: 'text' | 'base64';
  /** What a person reads: the text of a text/plain body, of a CPIM body's content, or of a multipart body's text parts. */
  readonly text: string;
  /** How many non-text parts a multipart body had. */
  readonly attachments?: number;
  /** The CPIM envelope (RFC 3862) when the body was message/cpim; for S/MIME, the one under the signature. */
  readonly cpim?: {
    readonly from?: string;
    readonly to: readonly string[];
    readonly dateTime?: string;
    readonly messageId?: string;
  };
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** `address:port` the request came from. */
  readonly remote: string;
  /** ISO 8601 times. `date` is the request's Date header; `expiresAt` follows RFC 3428 §7. */
  readonly date?: string;
  readonly expiresAt?: string;
  readonly receivedAt: string;
}

/** Registration state (RFC 3261 §10), with `--register`. */
export interface RegisteredEvent {
  readonly event: 'registered';
  readonly registrar: string;
  readonly contact: string;
  /** Seconds granted by the registrar; a refresh is sent before they run out. */
  readonly expires: number;
}

export interface RegistrationFailedEvent {
  readonly event: 'registration-failed';
  readonly registrar: string;
  readonly status: number;
  readonly reason: string;
  /** Seconds until the next attempt; absent when it will not retry (wrong credentials). */
  readonly retryIn?: number;
}

export interface UnregisteredEvent {
  readonly event: 'unregistered';
  readonly registrar: string;
}

export type ListenEvent = ListeningEvent | MessageEvent | RegisteredEvent | RegistrationFailedEvent | UnregisteredEvent;

/** What `sipnote send --json` prints when the request got an answer or gave up. */
export interface SendSummary {
  readonly status: number;
  readonly reason: string;
  /** delivered (200), accepted (202: stored by a server), refused (6xx), failed, timeout, transport-error */
  readonly outcome: 'delivered' | 'accepted' | 'refused' | 'failed' | 'timeout' | 'transport-error';
  readonly callId: string;
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** How the message was sent: `encrypted-signed` by default, `plaintext` with --plaintext. */
  readonly security?: MessageSecurity;
  readonly retryAfter?: number;
  /** Why a 401/407 was not answered again: wrong credentials, none given, an unusable challenge. */
  readonly authFailure?: string;
}

/**
 * One stored message, as `sipnote history --json` and `sipnote outbox --json` print it (one per
 * line). Times are ISO 8601; `time` is when it arrived (incoming) or was queued (outgoing).
 */
export interface HistoryEntry {
  readonly id: number;
  readonly direction: 'in' | 'out';
  /** Our AoR. */
  readonly account: string;
  /** The peer's canonical AoR; `peerUri` as it was on the wire. */
  readonly peer: string;
  readonly peerUri: string;
  /** The text (for S/MIME, the protected payload's text). */
  readonly body: string;
  readonly contentType: string;
  /** received (incoming); queued, sending, accepted, delivered, displayed, failed, cancelled (outgoing). */
  readonly state: string;
  readonly security: MessageSecurity;
  /** SHA-256 of the signer's certificate, lowercase hex, for a signed message. */
  readonly fingerprint: string | null;
  /** SIP identity: of the request (incoming), of the last attempt when known (outgoing). */
  readonly callId: string | null;
  readonly cseq: number | null;
  readonly fromTag: string | null;
  readonly imdnMessageId: string | null;
  readonly time: string;
  /** Incoming: the sender's date; outgoing: when the last attempt started. */
  readonly sentAt: string | null;
  /** Outgoing: the last final status and reason, attempts so far, and when it goes again. */
  readonly status: number | null;
  readonly reason: string | null;
  readonly attempts: number;
  readonly nextAttemptAt: string | null;
  readonly late?: true;
}
