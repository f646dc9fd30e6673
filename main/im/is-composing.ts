/**
 * "Is composing" indications (RFC 3994) for a pager UA, sans-I/O: the body format, a sender
 * machine and a receiver machine that take time as a number, like the transaction machines in
 * main/sip/transaction/ (`pollTimeout()` says when, `handleTimeout(now)` does what is due).
 *
 * The body (§3.4, §6): `application/im-iscomposing+xml`, UTF-8, namespace
 * `urn:ietf:params:xml:ns:im-iscomposing`, elements in schema order state, lastactive,
 * contenttype, refresh:
 *
 *     <?xml version="1.0" encoding="UTF-8"?>
 *     <isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>
 *     <contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>
 *
 * It travels in its own MESSAGE (optionally inside CPIM, §3.4), is never stored as a message,
 * and counts against the one-pending-MESSAGE-per-destination rule (RFC 3428 §8; checklist item
 * 212): the caller's send queue should replace a queued, unsent status by a newer one.
 *
 * The composer (§3.2), after the RFC's state diagram:
 *
 *     idle   --typing-->                active   send "active" (with <refresh>)
 *     active --typing-->                active   nothing (the idle timer restarts)
 *     active --refresh timer-->         active   send "active" again
 *     active --15 s without typing-->   idle     send "idle"
 *     active --content message sent-->  idle     nothing: the content message itself ends it
 *     active --draft abandoned-->       idle     send "idle" (our addition: no need to wait 15 s)
 *     any    --415 to a status-->       disabled nothing, ever again, for this peer (§4; item 210)
 *
 * "At most one status message per refresh interval" (§3.2; item 207) is read as: while a user
 * keeps composing, "active" goes out once and then once per refresh interval, never per
 * keystroke. A state change (idle after 15 s, active again later) is sent when it happens, so at
 * most two status messages per idle timeout can be caused by someone who types, pauses, types.
 *
 * The receiver (§3.3), after its state diagram: "active" starts (or restarts) a timer of the received
 * <refresh>, 120 s when absent; "idle", a content message, or the timer's expiry make the peer
 * idle; a repeated "active" only restarts the timer (§3.3 MUST); a state token we do not know
 * counts as idle (§3.5 MUST).
 *
 * The XML reader is the strict one of imdn.ts (no DTD, no entities, bounded, UTF-8 only).
 * Malformed XML throws `XmlBodyError` (a ParseError): the UAS answers 400 (§3.4: documents MUST
 * be well-formed). Validity is only a SHOULD, so beyond a well-formed document with the right
 * root and one <state>, this side is lenient: unknown elements are ignored, an unusable
 * <refresh> or <lastactive> is treated as absent.
 */
import { formatCpimDateTime, parseCpimDateTime } from './cpim.js';
import {
  XML_DECLARATION,
  XML_LIMITS,
  XmlBodyError,
  collapseWhitespace,
  escapeXmlText,
  leafText,
  parseXml,
  type XmlElement,
} from './xml.js';

/** The media type of RFC 3994 §6.1. */
export const ISCOMPOSING_CONTENT_TYPE = 'application/im-iscomposing+xml';

/** The XML namespace of RFC 3994 §6.2. */
export const ISCOMPOSING_NAMESPACE = 'urn:ietf:params:xml:ns:im-iscomposing';

/** What the receiver assumes when <refresh> is absent (§3.3). */
export const DEFAULT_RECEIVE_REFRESH_SECONDS = 120;

/** The shortest refresh a composer should use (§3.2 SHOULD; checklist item 207). */
export const MIN_SEND_REFRESH_SECONDS = 60;

/** The idle timeout a composer should use by default (§3.2 SHOULD). */
export const DEFAULT_IDLE_TIMEOUT_MS = 15_000;

export type ComposingState = 'active' | 'idle';

/** One status message (§3.4). */
export interface IsComposingStatus {
  readonly state: ComposingState;
  /** <refresh>: seconds until the sender refreshes "active" (meaningful with "active"). */
  readonly refreshSeconds?: number;
  /** <lastactive>: when the composer was last active (meaningful with "idle"). */
  readonly lastActive?: Date;
  /** <contenttype>: what is being composed, a media type or just a top-level type ("audio"). */
  readonly contentType?: string;
}

/** A status message as received. */
export interface ReceivedIsComposing extends IsComposingStatus {
  /** The <state> token as written; anything but "active" reads as idle (§3.5). */
  readonly stateToken: string;
}

// ---------------------------------------------------------------------------------------------
// The body (RFC 3994 §3.4, §6)
// ---------------------------------------------------------------------------------------------

/**
 * Builds a status document, compact, elements in schema order.
 *
 * @throws RangeError for a refresh that is not a positive integer, an invalid date, or a
 *   content type XML cannot carry.
 */
export function buildIsComposing(status: IsComposingStatus): Uint8Array {
  const parts = [`<isComposing xmlns="${ISCOMPOSING_NAMESPACE}">`, `<state>${status.state}</state>`];
  if (status.lastActive !== undefined) parts.push(`<lastactive>${formatCpimDateTime(status.lastActive)}</lastactive>`);
  if (status.contentType !== undefined) parts.push(`<contenttype>${escapeXmlText(status.contentType)}</contenttype>`);
  if (status.refreshSeconds !== undefined) {
    if (!Number.isSafeInteger(status.refreshSeconds) || status.refreshSeconds <= 0) {
      throw new RangeError(`<refresh> must be a positive integer, not ${status.refreshSeconds}`);
    }
    parts.push(`<refresh>${status.refreshSeconds}</refresh>`);
  }
  parts.push('</isComposing>');
  return new TextEncoder().encode(`${XML_DECLARATION}\n${parts.join('')}`);
}

/** xs:positiveInteger, within what a timer can use. */
const POSITIVE_INTEGER = /^\+?0*[1-9][0-9]{0,8}$/;

/**
 * Parses a status document. The root must be <isComposing> in the RFC 3994 namespace (any
 * prefix) with exactly one <state>; the other known elements may appear once each, in any order;
 * elements in other namespaces, and unknown ones in ours, are ignored (§3.5). A <refresh> that
 * is not a positive integer, or a <lastactive> that is not an RFC 3339 date-time, is ignored.
 *
 * @throws XmlBodyError (a ParseError) for malformed or hostile XML, a wrong root, or a missing
 *   or repeated <state>: answer 400.
 */
export function parseIsComposing(body: Uint8Array): ReceivedIsComposing {
  const root = parseXml(body, XML_LIMITS, `${ISCOMPOSING_CONTENT_TYPE} body`);
  if (root.namespace !== ISCOMPOSING_NAMESPACE || root.localName !== 'isComposing') {
    throw new XmlBodyError('schema', `the root element is not <isComposing> in ${ISCOMPOSING_NAMESPACE}`);
  }
  const found = new Map<string, XmlElement>();
  for (const child of root.children) {
    if (child.namespace !== ISCOMPOSING_NAMESPACE) continue;
    if (!['state', 'lastactive', 'contenttype', 'refresh'].includes(child.localName)) continue;
    if (found.has(child.localName)) throw new XmlBodyError('schema', `<${child.localName}> appears twice`);
    found.set(child.localName, child);
  }
  const stateElement = found.get('state');
  if (stateElement === undefined) throw new XmlBodyError('schema', '<state> is mandatory (RFC 3994 §3.4)');
  const stateToken = collapseWhitespace(leafText(stateElement));

  const refreshText = found.get('refresh');
  const refresh = refreshText === undefined ? undefined : collapseWhitespace(refreshText.text);
  const refreshSeconds = refresh !== undefined && POSITIVE_INTEGER.test(refresh) ? Number(refresh) : undefined;
  const lastActiveElement = found.get('lastactive');
  const lastActive = lastActiveElement === undefined ? undefined : readDateTime(collapseWhitespace(lastActiveElement.text));
  const contentTypeElement = found.get('contenttype');
  const contentType = contentTypeElement === undefined ? undefined : collapseWhitespace(contentTypeElement.text);

  return {
    state: stateToken === 'active' ? 'active' : 'idle',
    stateToken,
    ...(refreshSeconds === undefined ? {} : { refreshSeconds }),
    ...(lastActive === undefined ? {} : { lastActive }),
    ...(contentType === undefined || contentType === '' ? {} : { contentType }),
  };
}

/** xs:dateTime as RFC 3339; a value without a zone offset is read as UTC; anything else is dropped. */
function readDateTime(text: string): Date | undefined {
  for (const candidate of [text, `${text}Z`]) {
    try {
      return parseCpimDateTime(candidate, 'lastactive').date;
    } catch {
      // try the next reading
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The composer (RFC 3994 §3.2)
// ---------------------------------------------------------------------------------------------

export interface ComposingSenderOptions {
  /** <refresh> to advertise and the interval of "active" refreshes; at least 60 (§3.2). Default 60. */
  readonly refreshSeconds?: number;
  /** Composing time without activity after which the composer is idle. Default 15 s (§3.2). */
  readonly idleTimeoutMs?: number;
  /** <contenttype> to advertise, e.g. 'text/plain'. Default: none. */
  readonly contentType?: string;
  /**
   * Maps the machine's `now` to a wall-clock date, for <lastactive> in "idle" messages. Without
   * it, <lastactive> (optional, §3.4) is left out: the machine never reads a clock of its own.
   */
  readonly toDate?: (now: number) => Date;
}

export type ComposingSenderState = ComposingState | 'disabled';

/** Send this status message to the peer now: `buildIsComposing(event.status)`. */
export interface ComposingSendEvent {
  readonly type: 'send';
  readonly status: IsComposingStatus;
}

/** The composer side for one peer. Every input carries `now` (ms, any monotonic scale). */
export class ComposingSender {
  readonly refreshSeconds: number;
  readonly idleTimeoutMs: number;
  readonly #contentType: string | undefined;
  readonly #toDate: ((now: number) => Date) | undefined;

  #state: ComposingSenderState = 'idle';
  #lastTypingAt = 0;
  /** Absolute due times; undefined when the timer is not running. */
  #idleAt: number | undefined;
  #refreshAt: number | undefined;

  constructor(options: ComposingSenderOptions = {}) {
    this.refreshSeconds = options.refreshSeconds ?? MIN_SEND_REFRESH_SECONDS;
    if (!Number.isSafeInteger(this.refreshSeconds) || this.refreshSeconds < MIN_SEND_REFRESH_SECONDS) {
      throw new RangeError(`refreshSeconds must be an integer ≥ ${MIN_SEND_REFRESH_SECONDS} (RFC 3994 §3.2)`);
    }
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (!(this.idleTimeoutMs > 0) || !Number.isFinite(this.idleTimeoutMs)) throw new RangeError('idleTimeoutMs must be positive');
    this.#contentType = options.contentType;
    this.#toDate = options.toDate;
  }

  get state(): ComposingSenderState {
    return this.#state;
  }

  /** The user composed something (a keystroke, a recording started, …). */
  typing(now: number): ComposingSendEvent[] {
    if (this.#state === 'disabled') return [];
    this.#lastTypingAt = now;
    this.#idleAt = now + this.idleTimeoutMs;
    if (this.#state === 'active') return [];
    this.#state = 'active';
    return [this.#sendActive(now)];
  }

  /** The content message was sent: idle without a status message (§3.2, the receiver idles on content). */
  contentSent(_now: number): ComposingSendEvent[] {
    if (this.#state === 'active') this.#becomeIdle();
    return [];
  }

  /** The user abandoned the draft (cleared the input): idle now rather than after the timeout. */
  composingStopped(_now: number): ComposingSendEvent[] {
    if (this.#state !== 'active') return [];
    this.#becomeIdle();
    return [this.#idleMessage()];
  }

  /**
   * The final response to one of our status messages. 415 means the peer does not take
   * isComposing (SMS gateways, Asterisk): stop for good (§4 MUST; checklist item 210).
   */
  handleResponse(statusCode: number, _now: number): ComposingSendEvent[] {
    if (statusCode === 415) {
      this.#state = 'disabled';
      this.#idleAt = undefined;
      this.#refreshAt = undefined;
    }
    return [];
  }

  /** Absolute time of the next running timer, or undefined when none runs. */
  pollTimeout(): number | undefined {
    return this.#nextTimer()?.at;
  }

  /**
   * Fires every timer due at `now`, earliest first. A refresh is skipped when the idle timeout
   * is due too (on a tie, or when called late): "active" right before "idle" tells nothing.
   * A late refresh is re-armed from `now`, so a stalled event loop causes no burst.
   */
  handleTimeout(now: number): ComposingSendEvent[] {
    const events: ComposingSendEvent[] = [];
    for (let due = this.#nextTimer(); due !== undefined && due.at <= now; due = this.#nextTimer()) {
      if (due.timer === 'idle' || (this.#idleAt !== undefined && this.#idleAt <= now)) {
        this.#becomeIdle();
        events.push(this.#idleMessage());
      } else {
        events.push(this.#sendActive(now));
      }
    }
    return events;
  }

  #nextTimer(): { timer: 'idle' | 'refresh'; at: number } | undefined {
    if (this.#idleAt !== undefined && (this.#refreshAt === undefined || this.#idleAt <= this.#refreshAt)) {
      return { timer: 'idle', at: this.#idleAt };
    }
    return this.#refreshAt === undefined ? undefined : { timer: 'refresh', at: this.#refreshAt };
  }

  #sendActive(now: number): ComposingSendEvent {
    this.#refreshAt = now + this.refreshSeconds * 1000;
    return {
      type: 'send',
      status: {
        state: 'active',
        refreshSeconds: this.refreshSeconds,
        ...(this.#contentType === undefined ? {} : { contentType: this.#contentType }),
      },
    };
  }

  #becomeIdle(): void {
    this.#state = 'idle';
    this.#idleAt = undefined;
    this.#refreshAt = undefined;
  }

  #idleMessage(): ComposingSendEvent {
    const lastActive = this.#toDate?.(this.#lastTypingAt);
    return {
      type: 'send',
      status: {
        state: 'idle',
        ...(lastActive === undefined ? {} : { lastActive }),
        ...(this.#contentType === undefined ? {} : { contentType: this.#contentType }),
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The receiver (RFC 3994 §3.3)
// ---------------------------------------------------------------------------------------------

export interface ComposingReceiverOptions {
  /** The refresh assumed when a status has none. Default 120 s (§3.3). */
  readonly defaultRefreshSeconds?: number;
  /**
   * The longest refresh honoured: a peer announcing a day must not pin "is typing" for a day.
   * Default 600 s. (Our cap; RFC 3994 sets none.)
   */
  readonly maxRefreshSeconds?: number;
  /** Extra time before an "active" expires, for the refresh's transit time. Default 0 (RFC 3994 exactly). */
  readonly graceMs?: number;
}

/** The peer's composing state changed: show or hide the indicator. */
export interface RemoteComposingChange {
  readonly type: 'changed';
  readonly state: ComposingState;
  /** What the peer composes, from the last "active" (§3.4 <contenttype>). */
  readonly contentType?: string;
  /** From an "idle" status with <lastactive>. */
  readonly lastActive?: Date;
  /** What caused it: a status message, a content message, or the refresh timer running out. */
  readonly cause: 'status' | 'content' | 'expired';
}

/** The receiver side for one peer. Every input carries `now` (ms, any monotonic scale). */
export class ComposingReceiver {
  readonly #defaultRefreshMs: number;
  readonly #maxRefreshMs: number;
  readonly #graceMs: number;

  #state: ComposingState = 'idle';
  #contentType: string | undefined;
  #expiresAt: number | undefined;

  constructor(options: ComposingReceiverOptions = {}) {
    this.#defaultRefreshMs = (options.defaultRefreshSeconds ?? DEFAULT_RECEIVE_REFRESH_SECONDS) * 1000;
    this.#maxRefreshMs = (options.maxRefreshSeconds ?? 600) * 1000;
    this.#graceMs = options.graceMs ?? 0;
    if (!(this.#defaultRefreshMs > 0) || !(this.#maxRefreshMs > 0) || !(this.#graceMs >= 0)) {
      throw new RangeError('refresh limits must be positive and graceMs not negative');
    }
  }

  get state(): ComposingState {
    return this.#state;
  }

  /** What the peer composes while active (from <contenttype>), if it said. */
  get contentType(): string | undefined {
    return this.#contentType;
  }

  /**
   * A status message arrived (parsed with `parseIsComposing`, whose state is already idle for
   * unknown tokens). "active" (re)starts the refresh timer; a repeated "active" reports nothing
   * unless the content type changed.
   */
  receiveStatus(status: IsComposingStatus, now: number): RemoteComposingChange[] {
    if (status.state === 'active') {
      const refreshMs = Math.min((status.refreshSeconds ?? this.#defaultRefreshMs / 1000) * 1000, this.#maxRefreshMs);
      this.#expiresAt = now + refreshMs + this.#graceMs;
      const changed = this.#state !== 'active' || this.#contentType !== status.contentType;
      this.#state = 'active';
      this.#contentType = status.contentType;
      return changed ? [this.#change('status')] : [];
    }
    if (this.#state !== 'active') return [];
    return [this.#becomeIdle('status', status.lastActive)];
  }

  /** A content message arrived from the peer: it stopped composing (§3.3). */
  receiveContent(_now: number): RemoteComposingChange[] {
    return this.#state === 'active' ? [this.#becomeIdle('content')] : [];
  }

  /** When the current "active" expires, or undefined while idle. */
  pollTimeout(): number | undefined {
    return this.#expiresAt;
  }

  /** The refresh timer ran out: no refresh came, the peer is idle (§3.3). */
  handleTimeout(now: number): RemoteComposingChange[] {
    if (this.#expiresAt === undefined || now < this.#expiresAt) return [];
    return [this.#becomeIdle('expired')];
  }

  #becomeIdle(cause: RemoteComposingChange['cause'], lastActive?: Date): RemoteComposingChange {
    this.#state = 'idle';
    this.#contentType = undefined;
    this.#expiresAt = undefined;
    return { type: 'changed', state: 'idle', cause, ...(lastActive === undefined ? {} : { lastActive }) };
  }

  #change(cause: RemoteComposingChange['cause']): RemoteComposingChange {
    return {
      type: 'changed',
      state: this.#state,
      cause,
      ...(this.#contentType === undefined ? {} : { contentType: this.#contentType }),
    };
  }
}
