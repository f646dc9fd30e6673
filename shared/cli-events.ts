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

/** One per MESSAGE accepted (answered 2xx). */
export interface MessageEvent {
  readonly event: 'message';
  readonly from: string;
  readonly fromDisplayName?: string;
  readonly to: string;
  readonly callId: string;
  readonly cseq: number;
  /** The Content-Type header as sent, parameters included. */
  readonly contentType: string;
  /** Text for textual types (decoded in their charset), base64 otherwise. */
  readonly body: string;
  readonly bodyEncoding: 'text' | 'base64';
  /** What a person reads: the text of a text/plain body, of a CPIM body's content, or of a multipart body's text parts. */
  readonly text: string;
  /** How many non-text parts a multipart body had. */
  readonly attachments?: number;
  /** The CPIM envelope (RFC 3862) when the body was message/cpim. */
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
  readonly retryAfter?: number;
  /** Why a 401/407 was not answered again: wrong credentials, none given, an unusable challenge. */
  readonly authFailure?: string;
}
