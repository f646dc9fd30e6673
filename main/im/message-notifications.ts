/**
 * IMDN (RFC 5438) and isComposing (RFC 3994) for the messaging core: the glue between the
 * sans-I/O pieces (imdn.ts, is-composing.ts) and the clock, without any network I/O of its own.
 * The Messenger (messenger.ts) feeds it what arrives and gives it a function that sends.
 *
 * - `readControlBody` / `readProtectedControl`: whether a MESSAGE body (a plaintext one, or the
 *   content of an opened S/MIME one) is a notification or a composing status rather than an IM.
 *   Neither is ever stored or shown as a message.
 * - `imdnRequestOf`: the notification request of a received IM, from its signed CPIM envelope
 *   (unprotect.ts), in the shape `decideImdn`/`buildImdn` take; `displayNotificationOf` and
 *   `owedDisplayRequest`: the part of it a display notification needs, to and from the store,
 *   where it waits (across restarts) until the user reads the IM.
 * - `applyImdnNotifications`: received notifications → the states of our outgoing messages,
 *   negative delivery included.
 * - `imdnPayload`: the protected content of a notification (message/imdn+xml with
 *   `Content-Disposition: notification`, §7.2.1.1); S/MIME wraps it in CPIM like the IM
 *   (RFC 5438 §14: a notification is protected like the IM it answers).
 * - `NotificationPacer`: an ImdnScheduler on a Clock. A burst of received IMs becomes paced
 *   notifications (per peer and in all), deduplicated by `${messageId}:${kind}`.
 * - `ComposingTracker`: one ComposingSender and one ComposingReceiver per conversation, their
 *   timers on the Clock (refresh and idle on our side, the refresh expiry on the peer's).
 */
import type { Clock } from '../sip/transaction/clock.js';
import { mediaTypeOf, parseContentType } from '../sip/header-values.js';
import { ParseError } from '../sip/message/parse-error.js';
import { formatCpimDateTime, parseCpim } from './cpim.js';
import {
  buildImdnXml,
  ImdnScheduler,
  IMDN_CONTENT_TYPE,
  isImdnMessage,
  parseImdnXml,
  readImdnNotifications,
  readImdnRequest,
  type DispositionRequest,
  type EndpointImdnNotification,
  type ImdnSchedulerOptions,
  type ReceivedImdn,
  type ReceivedImdnRequest,
} from './imdn.js';
import {
  ComposingReceiver,
  ComposingSender,
  ISCOMPOSING_CONTENT_TYPE,
  parseIsComposing,
  type ComposingReceiverOptions,
  type ComposingSenderOptions,
  type IsComposingStatus,
  type ReceivedIsComposing,
  type RemoteComposingChange,
} from './is-composing.js';
import type { ProtectedPayload } from './smime/protect.js';
import {
  StoreError,
  type DisplayNotificationRequest,
  type Message,
  type NegativeDeliveryStatus,
  type OutcomeState,
  type OwedDisplayNotification,
  type ResultInput,
} from '../store/index.js';

/**
 * What we ask for on every protected IM (RFC 5438 §6.2, §7.1.1): positive and negative
 * delivery, and display. A negative one tells the user that a message a server accepted (202),
 * or a recipient answered before it could deliver it, did not get there after all
 * (`applyImdnNotifications`).
 *
 * Asking for negative-delivery changes nothing on our own receiving side: we store an IM before
 * answering 200 and answer a failure otherwise, so we never learn of a failure after a 2xx,
 * the only time a negative notification may be sent (§12.1.3.1); the Messenger and the listener
 * only ever send positive delivery (`decideImdn` with a `delivered` event) and display.
 */
export const REQUESTED_DISPOSITIONS: readonly ['positive-delivery', 'negative-delivery', 'display'] = ['positive-delivery', 'negative-delivery', 'display'];

// ---------------------------------------------------------------------------------------------
// Reading

/** A body that is not an IM: a notification or a composing status. */
export type ControlBody =
  | { readonly kind: 'imdn'; readonly notifications: readonly ReceivedImdn[] }
  | { readonly kind: 'composing'; readonly status: ReceivedIsComposing };

/** Why a control body was refused (answer 400: the XML or CPIM is malformed). */
export class ControlBodyError extends Error {
  override readonly name = 'ControlBodyError';
}

/**
 * A plaintext MESSAGE body: a bare application/im-iscomposing+xml (RFC 3994 §4), or a
 * message/cpim whose content is an IMDN (§7.1.2: recognised by its type or by
 * `Content-Disposition: notification`) or an isComposing status. Undefined for anything
 * else (an IM, for readMessageBody).
 *
 * @throws ControlBodyError when it is one of these but malformed.
 */
export function readControlBody(contentType: string | undefined, body: Uint8Array): ControlBody | undefined {
  if (contentType === undefined) return undefined;
  let media: string;
  try {
    media = mediaTypeOf(parseContentType(contentType, 'Content-Type'));
  } catch (error) {
    if (error instanceof ParseError) return undefined; // readMessageBody answers it
    throw error;
  }
  try {
    if (media === ISCOMPOSING_CONTENT_TYPE) return { kind: 'composing', status: parseIsComposing(body) };
    if (media !== 'message/cpim') return undefined;
    const cpim = parseCpim(body);
    if (isImdnMessage(cpim)) return { kind: 'imdn', notifications: readImdnNotifications(cpim) ?? [] };
    if (mediaTypeOf(parseContentType(cpim.contentType, 'Content-Type')) === ISCOMPOSING_CONTENT_TYPE) {
      return { kind: 'composing', status: parseIsComposing(cpim.content) };
    }
    return undefined;
  } catch (error) {
    if (error instanceof ParseError) throw new ControlBodyError(error.message);
    throw error;
  }
}

/**
 * The content of an opened S/MIME message (its CPIM content type and bytes), when it is a
 * notification or a composing status.
 *
 * @throws ControlBodyError when it is one of these but malformed.
 */
export function readProtectedControl(payloadType: string, content: Uint8Array): ControlBody | undefined {
  let media: string;
  try {
    media = mediaTypeOf(parseContentType(payloadType, 'Content-Type'));
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
  try {
    if (media === IMDN_CONTENT_TYPE) return { kind: 'imdn', notifications: [parseImdnXml(content)] };
    if (media === ISCOMPOSING_CONTENT_TYPE) return { kind: 'composing', status: parseIsComposing(content) };
    return undefined;
  } catch (error) {
    if (error instanceof ParseError) throw new ControlBodyError(error.message);
    throw error;
  }
}

/** The notifications in the content of an opened S/MIME message; undefined when it is not one (or is malformed). */
export function protectedImdn(payloadType: string, content: Uint8Array): readonly ReceivedImdn[] | undefined {
  try {
    const control = readProtectedControl(payloadType, content);
    return control?.kind === 'imdn' ? control.notifications : undefined;
  } catch (error) {
    if (error instanceof ControlBodyError) return undefined;
    throw error;
  }
}

/** The signed CPIM envelope of an opened IM (unprotect.ts `ProtectedEnvelope`), as far as IMDN needs it. */
export interface ImdnEnvelope {
  readonly from: string;
  readonly to: readonly string[];
  readonly dateTime?: Date;
  readonly messageId?: string;
  readonly dispositionNotification: readonly string[];
  /** imdn.IMDN-Record-Route URIs in order (RFC 5438 §6.5); none when absent. */
  readonly recordRoute?: readonly string[];
}

const KNOWN_DISPOSITIONS: ReadonlySet<string> = new Set<DispositionRequest>(['positive-delivery', 'negative-delivery', 'processing', 'display']);

/**
 * The notification request of an IM (§7.2), or undefined when it asks for none or cannot be
 * answered (no Message-ID or DateTime to quote, §7.2.1.1). Unknown dispositions are ignored.
 */
export function imdnRequestOf(envelope: ImdnEnvelope | undefined): ReceivedImdnRequest | undefined {
  if (envelope?.messageId === undefined || envelope.dateTime === undefined) return undefined;
  const dispositions = new Set<DispositionRequest>();
  for (const value of envelope.dispositionNotification) {
    const token = value.split(';')[0]!.trim().toLowerCase();
    if (KNOWN_DISPOSITIONS.has(token)) dispositions.add(token as DispositionRequest);
  }
  if (dispositions.size === 0) return undefined;
  const to = envelope.to[0];
  return {
    messageId: envelope.messageId,
    dispositions,
    dateTime: formatCpimDateTime(envelope.dateTime),
    from: { uri: envelope.from },
    recordRoute: (envelope.recordRoute ?? []).map((uri) => ({ uri })),
    ...(to === undefined ? {} : { to: { uri: to } }),
  };
}

/**
 * The notification request of a plaintext IM in message/cpim (another client's; ours are
 * S/MIME), answered in plaintext CPIM like the IM. Undefined for any other body, or no request.
 */
export function plaintextImdnRequest(contentType: string | undefined, body: Uint8Array): ReceivedImdnRequest | undefined {
  if (contentType === undefined) return undefined;
  try {
    if (mediaTypeOf(parseContentType(contentType, 'Content-Type')) !== 'message/cpim') return undefined;
    return readImdnRequest(parseCpim(body));
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

/**
 * The content of a notification for `request`, to be protected (S/MIME inside CPIM) like the
 * IM: the document of §11 as message/imdn+xml, `Content-Disposition: notification` (§7.2.1.1),
 * and the IM's IMDN-Record-Route copied into IMDN-Route in the same order (§6.6, §7.2.1).
 * `recipient` is us (the IM's recipient). It is still encrypted for the IM's sender, whatever
 * the route: an IMDN server on it is a relay, not the reader; the MESSAGE goes to the top
 * route (`imdnDestination`).
 */
export function imdnPayload(request: ReceivedImdnRequest, notification: EndpointImdnNotification, recipient: string): ProtectedPayload {
  return {
    contentType: IMDN_CONTENT_TYPE,
    content: buildImdnXml({
      messageId: request.messageId,
      datetime: request.dateTime,
      recipientUri: recipient,
      originalRecipientUri: request.to?.uri ?? recipient,
      notification,
    }),
    contentHeaders: [['Content-Disposition', 'notification']],
    ...(request.recordRoute.length === 0 ? {} : { imdnRoute: request.recordRoute.map((route) => route.uri) }),
  };
}

/** The content of an isComposing status, to be protected like an IM. */
export function composingPayload(document: Uint8Array): ProtectedPayload {
  return { contentType: ISCOMPOSING_CONTENT_TYPE, content: document };
}

/**
 * The part of a received IM's notification request that its display notification needs and
 * its stored row does not hold (store types.ts `DisplayNotificationRequest`), when it asked for
 * one; undefined otherwise. Stored with the IM (`IncomingInput.displayNotification`).
 */
export function displayNotificationOf(request: ReceivedImdnRequest | undefined): DisplayNotificationRequest | undefined {
  if (request === undefined || !request.dispositions.has('display')) return undefined;
  return {
    messageId: request.messageId,
    dateTime: request.dateTime,
    from: request.from,
    recordRoute: request.recordRoute,
    ...(request.to === undefined ? {} : { to: request.to }),
    ...(request.originalTo === undefined ? {} : { originalTo: request.originalTo }),
  };
}

/** The request of an owed display notification, as `imdnPayload`/`buildImdn` take it, from what the store kept. */
export function owedDisplayRequest(owed: OwedDisplayNotification): ReceivedImdnRequest {
  const { request } = owed;
  return {
    messageId: request.messageId,
    dispositions: new Set<DispositionRequest>(['display']),
    dateTime: request.dateTime,
    from: request.from,
    recordRoute: request.recordRoute,
    ...(request.to === undefined ? {} : { to: request.to }),
    ...(request.originalTo === undefined ? {} : { originalTo: request.originalTo }),
  };
}

/** The part of the store's message repository that notifications change. */
export interface NotifiedMessages {
  findOutgoingByImdnId(account: string, peer: string, imdnMessageId: string): Message | undefined;
  markResult(id: number, result: ResultInput): unknown;
  markUndelivered(id: number, status: NegativeDeliveryStatus, reason: string): unknown;
  get(id: number): Message | undefined;
}

/** Why a message failed, shown to the user: the recipient's side, not the network, said so. */
export function undeliveredReason(status: NegativeDeliveryStatus): string {
  const what = status === 'failed' ? 'it could not be delivered' : status === 'forbidden' ? 'delivery was refused (forbidden)' : 'delivery ended in an error';
  return `Not delivered: the recipient's side reported that ${what} (negative delivery notification, status "${status}")`;
}

/**
 * Applies received notifications to our outgoing messages (RFC 5438 §7.1.2-§7.1.3): each names
 * the Message-ID of one of ours, found only among the messages to the peer that sent it.
 * - A positive delivery makes it `delivered`, a display `displayed`. The store moves states
 *   only forward (accepted → delivered → displayed), so a late or repeated one changes nothing.
 * - A negative delivery (`failed`, `forbidden`, `error`; §11) makes a `sending`, `accepted` or
 *   `delivered` message `failed`, with a reason that says the recipient's side reported it
 *   undelivered and the status (store messages.ts `markUndelivered`, which says why these
 *   states); it stays failed whatever comes later, until the user retries it.
 * - Display `forbidden`/`error` and processing notifications change nothing.
 * What changed nothing is reported in `ignored`. Returns the messages whose state changed.
 */
export function applyImdnNotifications(
  messages: NotifiedMessages,
  account: string,
  peer: string,
  notifications: readonly ReceivedImdn[],
): { readonly changed: Message[]; readonly ignored: string[] } {
  const changed: Message[] = [];
  const ignored: string[] = [];
  for (const notification of notifications) {
    const negative: NegativeDeliveryStatus | undefined =
      notification.kind === 'delivery' && notification.status !== 'delivered' ? notification.status : undefined;
    const state: OutcomeState | undefined =
      notification.kind === 'delivery' && notification.status === 'delivered'
        ? 'delivered'
        : notification.kind === 'display' && notification.status === 'displayed'
          ? 'displayed'
          : undefined;
    const message = messages.findOutgoingByImdnId(account, peer, notification.messageId);
    if (message === undefined || (state === undefined && negative === undefined)) {
      ignored.push(`${notification.kind}/${notification.status} for ${notification.messageId}: ${message === undefined ? 'no such message to this peer' : 'kept as it is'}`);
      continue;
    }
    try {
      if (negative !== undefined) messages.markUndelivered(message.id, negative, undeliveredReason(negative));
      else if (state !== undefined) messages.markResult(message.id, { state });
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      ignored.push(`${notification.kind}/${notification.status} for message ${message.id}: ${error.message}`);
      continue;
    }
    const after = messages.get(message.id);
    if (after !== undefined && after.state !== message.state) changed.push(after);
    else ignored.push(`${notification.kind}/${notification.status} for message ${message.id}: kept ${message.state}`);
  }
  return { changed, ignored };
}

/**
 * The positive-delivery notification a stored IM asked for (RFC 5438 §7.2.1), as protected
 * content, or undefined when it asked for none. `via` is the top IMDN-Route, where it goes
 * instead of the IM's SIP From (still encrypted for the sender), when the IM had one. For the
 * CLI listener; the Messenger uses `decideImdn` and `imdnPayload` with its pacer the same way.
 */
export function deliveryImdnPayload(
  envelope: ImdnEnvelope | undefined,
  recipient: string,
): { readonly key: string; readonly payload: ProtectedPayload; readonly via?: string } | undefined {
  const request = imdnRequestOf(envelope);
  if (request === undefined || !request.dispositions.has('positive-delivery')) return undefined;
  const via = request.recordRoute[0]?.uri;
  return { key: `${request.messageId}:delivery`, payload: imdnPayload(request, { kind: 'delivery', status: 'delivered' }, recipient), ...(via === undefined ? {} : { via }) };
}

// ---------------------------------------------------------------------------------------------
// Pacing notifications

/**
 * An ImdnScheduler driven by a Clock: `enqueue` sends what the buckets allow now, and a timer
 * sends the rest when they refill. `send` does the I/O; its failures are its own (best effort,
 * RFC 5438 §7.1.4).
 */
export class NotificationPacer<T> {
  private readonly scheduler: ImdnScheduler<T>;
  private cancelTimer: (() => void) | undefined;
  private timerAt: number | undefined;
  private stopped = false;
  /** Set by `finish`: `enqueue` takes nothing more. */
  private finishing = false;
  /** Set by `finish`: called when the queue has emptied. */
  private onEmpty: (() => void) | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly send: (peer: string, item: T) => void,
    options: ImdnSchedulerOptions = {},
    private readonly onDropped?: (peer: string, key: string, reason: 'duplicate' | 'queue-full') => void,
  ) {
    this.scheduler = new ImdnScheduler<T>(options, clock.now());
  }

  /** Notifications waiting for their turn. */
  get queued(): number {
    return this.scheduler.queued;
  }

  /** Queues a notification for `peer` under `key` (`${messageId}:${kind}`: one per kind per IM, §7.2.1). */
  enqueue(peer: string, key: string, item: T): void {
    if (this.stopped || this.finishing) return;
    this.run(this.scheduler.enqueue(peer, key, item, this.clock.now()));
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /**
   * For a shutdown: takes no more notifications, keeps sending the queued ones at the usual
   * pace until none is left or the clock reaches `deadline`, then stops. Resolves with how many
   * were left unsent (notifications are best effort, RFC 5438 §7.1.4; a shutdown must not
   * turn the queue into the storm the pacing exists to prevent).
   */
  finish(deadline: number): Promise<number> {
    if (this.stopped) return Promise.resolve(this.scheduler.queued);
    return new Promise((resolve) => {
      const done = (): void => {
        cancelDeadline();
        this.onEmpty = undefined;
        this.stop();
        resolve(this.scheduler.queued);
      };
      this.finishing = true;
      const cancelDeadline = this.clock.setTimer(deadline, done);
      if (this.scheduler.queued === 0) done();
      else this.onEmpty = done;
    });
  }

  private run(events: ReturnType<ImdnScheduler<T>['handleTimeout']>): void {
    for (const event of events) {
      if (event.type === 'send') this.send(event.peer, event.item);
      else this.onDropped?.(event.peer, event.key, event.reason);
    }
    if (this.scheduler.queued === 0) this.onEmpty?.();
    if (!this.stopped) this.schedule();
  }

  private schedule(): void {
    const at = this.scheduler.pollTimeout();
    if (at === this.timerAt) return;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.timerAt = at;
    if (at === undefined || this.stopped) return;
    this.cancelTimer = this.clock.setTimer(at, () => {
      this.cancelTimer = undefined;
      this.timerAt = undefined;
      if (!this.stopped) this.run(this.scheduler.handleTimeout(this.clock.now()));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// isComposing per conversation

interface ConversationComposing {
  readonly sender: ComposingSender;
  readonly receiver: ComposingReceiver;
  cancelSenderTimer?: () => void;
  cancelReceiverTimer?: () => void;
}

export interface ComposingTrackerOptions {
  readonly clock: Clock;
  /** Send this status to the conversation's peer; resolves with the final status code (415 stops us for good, §4). */
  readonly send: (conversationId: number, status: IsComposingStatus) => Promise<number | undefined>;
  /** The peer's state changed: show or hide "… is typing". */
  readonly changed: (conversationId: number, change: RemoteComposingChange) => void;
  readonly sender?: ComposingSenderOptions;
  readonly receiver?: ComposingReceiverOptions;
}

/**
 * The composing state of every conversation, both ways (RFC 3994 §3.2, §3.3), on the Clock.
 * Our side: `typing`/`stopped` from the user, `contentSent` when a message goes; the peer's:
 * `status` for a received status message, `content` for a received IM.
 */
export class ComposingTracker {
  private readonly conversations = new Map<number, ConversationComposing>();
  private stopped = false;

  constructor(private readonly options: ComposingTrackerOptions) {}

  /** The user types in the conversation (call on every keystroke; only changes are sent). */
  typing(conversationId: number): void {
    const state = this.state(conversationId);
    this.sendAll(conversationId, state.sender.typing(this.options.clock.now()));
  }

  /** The user cleared the draft: idle now, not after the idle timeout. */
  composingStopped(conversationId: number): void {
    const state = this.conversations.get(conversationId);
    if (state === undefined) return;
    this.sendAll(conversationId, state.sender.composingStopped(this.options.clock.now()));
  }

  /** Our message went: the peer idles us on the content itself (§3.2), nothing is sent. */
  contentSent(conversationId: number): void {
    const state = this.conversations.get(conversationId);
    if (state === undefined) return;
    state.sender.contentSent(this.options.clock.now());
    this.armSender(conversationId, state);
  }

  /** A status message from the peer. */
  status(conversationId: number, status: IsComposingStatus): void {
    const state = this.state(conversationId);
    this.report(conversationId, state.receiver.receiveStatus(status, this.options.clock.now()));
    this.armReceiver(conversationId, state);
  }

  /** An IM from the peer: it stopped composing (§3.3). */
  content(conversationId: number): void {
    const state = this.conversations.get(conversationId);
    if (state === undefined) return;
    this.report(conversationId, state.receiver.receiveContent(this.options.clock.now()));
    this.armReceiver(conversationId, state);
  }

  /** Whether the peer of a conversation is composing now. */
  peerComposing(conversationId: number): boolean {
    return this.conversations.get(conversationId)?.receiver.state === 'active';
  }

  /** Our state in a conversation: 'active', 'idle', or 'disabled' after a 415. */
  ourState(conversationId: number): string {
    return this.conversations.get(conversationId)?.sender.state ?? 'idle';
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.conversations.values()) {
      state.cancelSenderTimer?.();
      state.cancelReceiverTimer?.();
    }
    this.conversations.clear();
  }

  private state(conversationId: number): ConversationComposing {
    let state = this.conversations.get(conversationId);
    if (state === undefined) {
      state = { sender: new ComposingSender(this.options.sender), receiver: new ComposingReceiver(this.options.receiver) };
      this.conversations.set(conversationId, state);
    }
    return state;
  }

  private sendAll(conversationId: number, events: ReturnType<ComposingSender['typing']>): void {
    const state = this.conversations.get(conversationId);
    if (state === undefined || this.stopped) return;
    for (const event of events) {
      void this.options.send(conversationId, event.status).then(
        (status) => {
          if (status !== undefined && !this.stopped) {
            state.sender.handleResponse(status, this.options.clock.now());
            this.armSender(conversationId, state);
          }
        },
        () => undefined,
      );
    }
    this.armSender(conversationId, state);
  }

  private report(conversationId: number, changes: readonly RemoteComposingChange[]): void {
    if (this.stopped) return;
    for (const change of changes) this.options.changed(conversationId, change);
  }

  private armSender(conversationId: number, state: ConversationComposing): void {
    state.cancelSenderTimer?.();
    state.cancelSenderTimer = undefined;
    const at = state.sender.pollTimeout();
    if (at === undefined || this.stopped) return;
    state.cancelSenderTimer = this.options.clock.setTimer(at, () => {
      state.cancelSenderTimer = undefined;
      this.sendAll(conversationId, state.sender.handleTimeout(this.options.clock.now()));
    });
  }

  private armReceiver(conversationId: number, state: ConversationComposing): void {
    state.cancelReceiverTimer?.();
    state.cancelReceiverTimer = undefined;
    const at = state.receiver.pollTimeout();
    if (at === undefined || this.stopped) return;
    state.cancelReceiverTimer = this.options.clock.setTimer(at, () => {
      state.cancelReceiverTimer = undefined;
      this.report(conversationId, state.receiver.handleTimeout(this.options.clock.now()));
      this.armReceiver(conversationId, state);
    });
  }
}
