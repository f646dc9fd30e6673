/**
 * Instant Message Disposition Notifications (RFC 5438) for a pager UA, sans-I/O: pure functions
 * on CPIM messages and bytes, and one scheduler that takes time as a number.
 *
 * The round trip, in RFC 5438 terms:
 *
 *   1. The IM Sender (us as UAC) asks for notifications in the CPIM headers of the IM (§6, §7.1.1):
 *          NS: imdn <urn:ietf:params:imdn>
 *          imdn.Message-ID: 3yX9kQ2vT8rW1zLm          <- ≥64 random bits (§6.3; checklist item 197)
 *          DateTime: 2026-03-01T10:00:00Z              <- required with a request (§7.1.1)
 *          imdn.Disposition-Notification: positive-delivery, display
 *      `requestImdn` returns these headers for `buildCpim`.
 *   2. The IM Recipient (us as UAS) reads the request with `readImdnRequest` (by namespace URI,
 *      never by the prefix the sender chose: RFC 3862 §3.4, RFC 5438 §6.1), decides with
 *      `decideImdn` whether a notification may go out (§7.2.1, §12.1.3.1: one per disposition
 *      type, never for an IMDN, no negative-delivery after a non-2xx, display only with the
 *      user's consent), builds it with `buildImdn` (§7.2.1.1, §7.2.1.2) and hands it to an
 *      `ImdnScheduler`, which paces notifications per peer so that a burst of received IMs does
 *      not become a burst of sent IMDNs.
 *   3. The IM Sender reads the notification with `readImdnNotifications` (§7.1.2–§7.1.4),
 *      correlating `<message-id>` with the Message-ID it sent.
 *
 * An IMDN is itself a MESSAGE whose body is message/cpim: its own Message-ID, NO
 * Disposition-Notification (§7.2.1), and as content `message/imdn+xml` (namespace
 * `urn:ietf:params:xml:ns:imdn`, §11) with `Content-Disposition: notification`:
 *
 *     <?xml version="1.0" encoding="UTF-8"?>
 *     <imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>3yX9kQ2vT8rW1zLm</message-id>
 *     <datetime>2026-03-01T10:00:00Z</datetime><recipient-uri>sip:bob@example.org</recipient-uri>
 *     <original-recipient-uri>sip:bob@example.org</original-recipient-uri>
 *     <delivery-notification><status><delivered/></status></delivery-notification></imdn>
 *
 * The XML is read by the small strict reader at the end of this file (shared with
 * is-composing.ts): UTF-8 only, no DTD, no entities beyond the five predefined ones, bounded
 * size, depth and node count, namespace-aware, never recursive. It throws `XmlBodyError`, a
 * `ParseError` with a precise `reason`.
 *
 * Not done here (the messaging service's job, message-notifications.ts and messenger.ts): the
 * per-destination one-pending-MESSAGE rule (RFC 3428 §8, checklist item 16), protecting the
 * IMDN like the IM (signing/encrypting, RFC 5438 §14, item 206), remembering which
 * notifications were sent.
 */
import { randomBytes } from 'node:crypto';
import { ParseError, type ParseErrorCode } from '../sip/message/parse-error.js';
import {
  CPIM_CORE_NAMESPACE,
  buildCpim,
  cpimFrom,
  cpimHeader,
  cpimHeaderAddress,
  cpimHeaders,
  cpimTo,
  parseCpimDateTime,
  type CpimAddress,
  type CpimExtraHeader,
  type CpimMessage,
} from './cpim.js';
import { parseMultipart } from './multipart.js';
import { XML_DECLARATION, XML_LIMITS, XmlBodyError, collapseWhitespace, escapeXmlText, leafText, parseXml, requireNoText, type XmlElement } from './xml.js';
import { parseContentType } from '../sip/header-values.js';

/** The CPIM header namespace of RFC 5438 §6.1 (Message-ID, Disposition-Notification, …). */
export const IMDN_NAMESPACE = 'urn:ietf:params:imdn';

/** The XML namespace of the notification document (RFC 5438 §11, §15.3). */
export const IMDN_XML_NAMESPACE = 'urn:ietf:params:xml:ns:imdn';

/** The media type of the notification document (RFC 5438 §11, §15.1). */
export const IMDN_CONTENT_TYPE = 'message/imdn+xml';

/** The prefix we write for IMDN_NAMESPACE. Any prefix is legal; receivers match the URI. */
const DEFAULT_PREFIX = 'imdn';

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** The values of Disposition-Notification (RFC 5438 §6.2). Unknown values are ignored (§7.2.1). */
export type DispositionRequest = 'positive-delivery' | 'negative-delivery' | 'processing' | 'display';

const DISPOSITION_REQUESTS: ReadonlySet<string> = new Set<DispositionRequest>([
  'positive-delivery',
  'negative-delivery',
  'processing',
  'display',
]);

/** The disposition types of RFC 5438 §5: at most one IMDN per type per IM (§7.2.1). */
export type ImdnKind = 'delivery' | 'display' | 'processing';

export type DeliveryStatus = 'delivered' | 'failed' | 'forbidden' | 'error';
export type DisplayStatus = 'displayed' | 'forbidden' | 'error';
export type ProcessingStatus = 'processed' | 'stored' | 'forbidden' | 'error';

/** What one notification says (RFC 5438 §7.2.1.1, §7.2.1.2, §11). */
export type ImdnNotification =
  | { readonly kind: 'delivery'; readonly status: DeliveryStatus }
  | { readonly kind: 'display'; readonly status: DisplayStatus }
  | { readonly kind: 'processing'; readonly status: ProcessingStatus };

/** What an endpoint may send: `processing` is for intermediaries only (§7.2.1; checklist item 199). */
export type EndpointImdnNotification = Exclude<ImdnNotification, { readonly kind: 'processing' }>;

/** The status elements each notification element may carry (RFC 5438 §11.2). */
const STATUSES: Readonly<Record<ImdnKind, ReadonlySet<string>>> = {
  delivery: new Set<DeliveryStatus>(['delivered', 'failed', 'forbidden', 'error']),
  display: new Set<DisplayStatus>(['displayed', 'forbidden', 'error']),
  processing: new Set<ProcessingStatus>(['processed', 'stored', 'forbidden', 'error']),
};

/** The notification document's fields (RFC 5438 §11.1). */
export interface ImdnDocument {
  /** The Message-ID of the IM this notification is about. */
  readonly messageId: string;
  /** The DateTime of that IM, as it was written there (RFC 3339), echoed unchanged. */
  readonly datetime: string;
  /** Who received the IM (our AoR). With `originalRecipientUri`, optional as a pair (§11.2). */
  readonly recipientUri?: string;
  /** Whom the sender addressed: imdn.Original-To if present, else the CPIM To (§7.2.1.1). Defaults to `recipientUri`. */
  readonly originalRecipientUri?: string;
  /** The IM's Subject (§11.1.5); written only together with the recipient pair. */
  readonly subject?: string;
  readonly notification: ImdnNotification;
}

/** A notification as received (RFC 5438 §7.1.2). */
export type ReceivedImdn = ImdnNotification & {
  readonly messageId: string;
  /** `<datetime>` read as RFC 3339. */
  readonly datetime: Date;
  /** `<datetime>` as written: compare this with the DateTime that was sent, to the character. */
  readonly datetimeText: string;
  readonly recipient?: string;
  readonly originalRecipient?: string;
  readonly subject?: string;
};

/** An IMDN request read from a received IM (RFC 5438 §6, §7.2). */
export interface ReceivedImdnRequest {
  /** imdn.Message-ID of the IM (§6.3). */
  readonly messageId: string;
  /** The known values of every Disposition-Notification header; unknown ones are dropped (§7.2.1). */
  readonly dispositions: ReadonlySet<DispositionRequest>;
  /** The IM's DateTime exactly as written, for `<datetime>` (§7.2.1.1). */
  readonly dateTime: string;
  /** The IM's CPIM From: the CPIM To of our IMDN (§7.2.1.1). */
  readonly from: CpimAddress;
  /** The IM's first CPIM To, if any: whom the sender addressed. */
  readonly to?: CpimAddress;
  /** imdn.Original-To (§6.4), added by a list server; wins over `to` for `<original-recipient-uri>`. */
  readonly originalTo?: CpimAddress;
  /** imdn.IMDN-Record-Route values in order (§6.5); copied into IMDN-Route (§6.6, §7.2.1). */
  readonly recordRoute: ReadonlyArray<CpimAddress>;
}

// ---------------------------------------------------------------------------------------------
// Message-ID (RFC 5438 §6.3)
// ---------------------------------------------------------------------------------------------

/**
 * A fresh Message-ID: 96 bits from the CSPRNG (§6.3 asks for at least 32 random bits; the
 * checklist, item 197, for at least 64), base64url, which is all CPIM Token characters.
 */
export function newImdnMessageId(): string {
  return randomBytes(12).toString('base64url');
}

/** A Message-ID we are willing to echo: a CPIM Token of sane length (§6.3: Message-ID = Token). */
const MESSAGE_ID = /^[!#$%&'*+\-.^_`|~0-9A-Za-z\u0080-\uD7FF\uE000-\u{10FFFF}]{1,256}$/u;

// ---------------------------------------------------------------------------------------------
// Requesting notifications (IM Sender, RFC 5438 §7.1.1)
// ---------------------------------------------------------------------------------------------

export interface ImdnRequestOptions {
  /** Default: `newImdnMessageId()`. */
  readonly messageId?: string;
  /** Default: positive-delivery and display. */
  readonly dispositions?: ReadonlyArray<DispositionRequest>;
  /** The NS prefix to declare; default `imdn`. */
  readonly prefix?: string;
}

/** CPIM headers to merge into `CpimBuildInput.namespaces` / `.extraHeaders`. */
export interface ImdnRequestHeaders {
  readonly messageId: string;
  readonly namespaces: Readonly<Record<string, string>>;
  readonly extraHeaders: ReadonlyArray<CpimExtraHeader>;
}

/**
 * The CPIM headers that request notifications for an IM (§7.1.1): the IMDN namespace, a
 * Message-ID, and Disposition-Notification. `buildCpim` always writes the DateTime that §7.1.1
 * also requires. Do not request notifications for an IMDN (§7.2.1) or, SHOULD NOT, when sending
 * anonymously (§12.1.1; checklist item 204): that is the caller's choice of whether to call this.
 *
 * @throws RangeError for an empty disposition list or a Message-ID that is not a Token.
 */
export function requestImdn(options: ImdnRequestOptions = {}): ImdnRequestHeaders {
  const messageId = options.messageId ?? newImdnMessageId();
  if (!MESSAGE_ID.test(messageId)) throw new RangeError(`not a usable imdn.Message-ID: ${JSON.stringify(messageId)}`);
  const dispositions = options.dispositions ?? ['positive-delivery', 'display'];
  if (dispositions.length === 0) throw new RangeError('an IMDN request needs at least one disposition');
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  return {
    messageId,
    namespaces: { [prefix]: IMDN_NAMESPACE },
    extraHeaders: [
      { ns: prefix, name: 'Message-ID', value: messageId },
      { ns: prefix, name: 'Disposition-Notification', value: [...new Set(dispositions)].join(', ') },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Reading a request (IM Recipient, RFC 5438 §7.2)
// ---------------------------------------------------------------------------------------------

/** The media type of a Content-Type value, lowercased, parameters dropped. */
function mediaTypeOfValue(value: string): string {
  const semicolon = value.indexOf(';');
  return (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
}

/**
 * Whether a CPIM message is an IMDN: its content is message/imdn+xml, or its content
 * disposition is `notification` (§7.1.2: recipients MUST understand Content-Disposition to
 * recognise notifications, aggregated ones included).
 */
export function isImdnMessage(cpim: CpimMessage): boolean {
  if (mediaTypeOfValue(cpim.contentType) === IMDN_CONTENT_TYPE) return true;
  return cpim.contentHeaders.some(
    ([name, value]) => name.toLowerCase() === 'content-disposition' && mediaTypeOfValue(value) === 'notification',
  );
}

/**
 * The IMDN request of a received IM, or undefined when there is none we can honour:
 *   - the message is itself an IMDN (its requests are ignored, §7.2.1; checklist item 203);
 *   - no Disposition-Notification, or only values we do not know (ignored, §7.2.1);
 *   - no usable imdn.Message-ID, DateTime or From (a notification must quote the first two,
 *     §7.2.1.1, and is addressed to the last).
 * Headers are found by namespace URI, whatever prefix the sender declared (§6.1). Never throws:
 * a request we cannot answer is simply not answered (notifications are best effort, §7.1.4).
 */
export function readImdnRequest(cpim: CpimMessage): ReceivedImdnRequest | undefined {
  if (isImdnMessage(cpim)) return undefined;

  const dispositions = new Set<DispositionRequest>();
  for (const header of cpimHeaders(cpim, IMDN_NAMESPACE, 'Disposition-Notification')) {
    for (const item of header.value.split(',')) {
      // notify-req = token *( ";" disp-notify-params ): parameters are not used by any known value.
      const token = item.split(';')[0]!.trim().toLowerCase();
      if (DISPOSITION_REQUESTS.has(token)) dispositions.add(token as DispositionRequest);
    }
  }
  if (dispositions.size === 0) return undefined;

  const messageId = cpimHeader(cpim, IMDN_NAMESPACE, 'Message-ID')?.value.trim();
  if (messageId === undefined || !MESSAGE_ID.test(messageId)) return undefined;
  const dateTimeHeaders = cpimHeaders(cpim, CPIM_CORE_NAMESPACE, 'DateTime');
  const dateTime = dateTimeHeaders[0]?.value.trim();
  if (dateTime === undefined || dateTimeHeaders.length > 1) return undefined;

  try {
    parseCpimDateTime(dateTime);
    const from = cpimFrom(cpim);
    if (from === undefined) return undefined;
    const to = cpimTo(cpim)[0];
    const originalToHeader = cpimHeader(cpim, IMDN_NAMESPACE, 'Original-To');
    const originalTo = originalToHeader && cpimHeaderAddress(originalToHeader);
    const recordRoute = cpimHeaders(cpim, IMDN_NAMESPACE, 'IMDN-Record-Route').map(cpimHeaderAddress);
    return {
      messageId,
      dispositions,
      dateTime,
      from,
      recordRoute,
      ...(to === undefined ? {} : { to }),
      ...(originalTo === undefined ? {} : { originalTo }),
    };
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Whether to send (IM Recipient, RFC 5438 §7.2.1, §12.1.3.1)
// ---------------------------------------------------------------------------------------------

/** What happened to a received IM that a notification could report. */
export type ImdnEvent =
  /** The IM was stored and reached the user's application (after our 2xx). */
  | { readonly type: 'delivered' }
  /** Delivery failed after our 2xx (e.g. it could not be stored or decrypted). Default status: `failed`. */
  | { readonly type: 'delivery-failed'; readonly status?: Exclude<DeliveryStatus, 'delivered'> }
  /** The IM was shown to the user. */
  | { readonly type: 'displayed' };

export interface ImdnDecisionContext {
  /** The final status code we answered the IM's MESSAGE with. */
  readonly finalStatus: number;
  /** Whether the user allows read receipts (display notifications reveal reading, §12.1.3.1). */
  readonly readReceipts: boolean;
  /** The disposition types already notified for this IM (from the store). */
  readonly alreadySent: ReadonlySet<ImdnKind>;
}

export type ImdnDecisionRefusal =
  | 'no-request'
  | 'not-requested'
  | 'already-sent'
  | 'not-accepted'
  | 'read-receipts-off';

export type ImdnDecision =
  | { readonly send: true; readonly notification: EndpointImdnNotification }
  | { readonly send: false; readonly reason: ImdnDecisionRefusal };

/**
 * Whether an event on a received IM gives rise to a notification, and which.
 *
 *   - `no-request`: nothing was requested (or the IM was an IMDN: `readImdnRequest` gave undefined).
 *   - `not-requested`: this disposition was not asked for.
 *   - `already-sent`: at most one IMDN per disposition type per IM (§7.2.1; item 199).
 *   - `not-accepted`: we answered the MESSAGE with a non-2xx: positive delivery is only after a
 *     2xx (§12.1.3.1), negative delivery MUST NOT follow a non-2xx (the final response already
 *     said it), and an IM we refused is never displayed.
 *   - `read-receipts-off`: display notifications are the user's choice (§12.1.3.1 MAY; item 202).
 *     Nothing is sent, not even `forbidden`, which would still tell the sender when the IM was
 *     opened.
 */
export function decideImdn(
  request: ReceivedImdnRequest | undefined,
  event: ImdnEvent,
  context: ImdnDecisionContext,
): ImdnDecision {
  if (request === undefined) return { send: false, reason: 'no-request' };
  const wanted: DispositionRequest =
    event.type === 'delivered' ? 'positive-delivery' : event.type === 'delivery-failed' ? 'negative-delivery' : 'display';
  if (!request.dispositions.has(wanted)) return { send: false, reason: 'not-requested' };
  const kind: ImdnKind = event.type === 'displayed' ? 'display' : 'delivery';
  if (context.alreadySent.has(kind)) return { send: false, reason: 'already-sent' };
  if (context.finalStatus < 200 || context.finalStatus > 299) return { send: false, reason: 'not-accepted' };
  switch (event.type) {
    case 'delivered':
      return { send: true, notification: { kind: 'delivery', status: 'delivered' } };
    case 'delivery-failed':
      return { send: true, notification: { kind: 'delivery', status: event.status ?? 'failed' } };
    case 'displayed':
      if (!context.readReceipts) return { send: false, reason: 'read-receipts-off' };
      return { send: true, notification: { kind: 'display', status: 'displayed' } };
  }
}

// ---------------------------------------------------------------------------------------------
// Building a notification (IM Recipient, RFC 5438 §7.2.1, §11, §12.1.3.1)
// ---------------------------------------------------------------------------------------------

/** Where an IMDN goes. For SIP: its Request-URI and To (§12.1.3.1; checklist item 201). */
export interface ImdnDestination {
  readonly uri: string;
  /** Why: the top IMDN-Route, else the IM's SIP From, else (no SIP From given) its CPIM From. */
  readonly via: 'imdn-route' | 'sip-from' | 'cpim-from';
}

/**
 * The destination of an IMDN (§7.2.1, §12.1.3.1): the first IMDN-Record-Route value of the IM
 * when there is one (that intermediary, e.g. a list server, forwards it on), otherwise the SIP
 * From of the IM. `sipFrom` is the URI of the IM's SIP From header; without it the CPIM From is
 * used, which is the same address unless the sender hid it (RCS clients write an anonymous CPIM
 * From and rely on the SIP one).
 */
export function imdnDestination(request: ReceivedImdnRequest, sipFrom?: string): ImdnDestination {
  const route = request.recordRoute[0];
  if (route !== undefined) return { uri: route.uri, via: 'imdn-route' };
  if (sipFrom !== undefined) return { uri: sipFrom, via: 'sip-from' };
  return { uri: request.from.uri, via: 'cpim-from' };
}

export interface ImdnBuildInput {
  /** The request read from the IM with `readImdnRequest`. */
  readonly request: ReceivedImdnRequest;
  /** What to report (from `decideImdn`). */
  readonly notification: EndpointImdnNotification;
  /** Us, the IM's recipient: CPIM From of the IMDN. */
  readonly from: CpimAddress;
  /** `<recipient-uri>`; default: `from.uri`. */
  readonly recipientUri?: string;
  /** The IMDN's own DateTime (now). */
  readonly dateTime: Date;
  /** The IMDN's own Message-ID; default: a fresh one (§7.2.1: every IMDN has its own). */
  readonly messageId?: string;
  /** The URI of the IM's SIP From, for `imdnDestination`. */
  readonly sipFrom?: string;
  /** The NS prefix to declare; default `imdn`. */
  readonly prefix?: string;
}

export interface BuiltImdn {
  /** The message/cpim body of the MESSAGE that carries the notification. */
  readonly body: Uint8Array;
  /** The SIP Content-Type of that MESSAGE. */
  readonly contentType: 'message/cpim';
  /** The IMDN's own Message-ID. */
  readonly messageId: string;
  /** Where to send it (Request-URI and To). */
  readonly destination: ImdnDestination;
}

/**
 * Builds an IMDN for a received IM (§7.2.1): a message/cpim body whose CPIM From is us and CPIM
 * To is the IM's From, with a new imdn.Message-ID, the IM's IMDN-Record-Route values copied
 * into IMDN-Route in the same order, no Disposition-Notification (an IMDN never asks for
 * notifications, §7.2.1), and the notification document as `message/imdn+xml` with
 * `Content-Disposition: notification`. `<original-recipient-uri>` is the IM's imdn.Original-To,
 * else its CPIM To, else `<recipient-uri>` (§7.2.1.1).
 *
 * @throws RangeError when the input cannot be written (bad URIs, characters XML cannot carry).
 */
export function buildImdn(input: ImdnBuildInput): BuiltImdn {
  const { request } = input;
  const messageId = input.messageId ?? newImdnMessageId();
  if (!MESSAGE_ID.test(messageId)) throw new RangeError(`not a usable imdn.Message-ID: ${JSON.stringify(messageId)}`);
  const prefix = input.prefix ?? DEFAULT_PREFIX;
  const recipientUri = input.recipientUri ?? input.from.uri;
  const content = buildImdnXml({
    messageId: request.messageId,
    datetime: request.dateTime,
    recipientUri,
    originalRecipientUri: request.originalTo?.uri ?? request.to?.uri ?? recipientUri,
    notification: input.notification,
  });
  const body = buildCpim({
    from: input.from,
    to: [request.from],
    dateTime: input.dateTime,
    namespaces: { [prefix]: IMDN_NAMESPACE },
    extraHeaders: [
      { ns: prefix, name: 'Message-ID', value: messageId },
      ...request.recordRoute.map((route) => ({ ns: prefix, name: 'IMDN-Route', value: `<${route.uri}>` })),
    ],
    contentType: IMDN_CONTENT_TYPE,
    contentHeaders: [['Content-Disposition', 'notification']],
    content,
  });
  return { body, contentType: 'message/cpim', messageId, destination: imdnDestination(request, input.sipFrom) };
}

/** Absolute URI as far as XML text is concerned: a scheme, a colon, no whitespace. */
const URI_TEXT = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"]*$/;

/**
 * The notification document (§11), compact (every byte counts against the 1300-byte budget of
 * RFC 3428 §8): an XML declaration, then the elements in schema order.
 *
 * @throws RangeError for a bad status for the kind, a URI with whitespace, a datetime that is not
 *   RFC 3339, an original recipient or subject without a recipient, or text XML cannot carry.
 */
export function buildImdnXml(doc: ImdnDocument): Uint8Array {
  const { kind, status } = doc.notification;
  if (!STATUSES[kind].has(status)) throw new RangeError(`<${status}/> is not a ${kind} status`);
  try {
    parseCpimDateTime(doc.datetime);
  } catch {
    throw new RangeError(`datetime is not RFC 3339: ${JSON.stringify(doc.datetime)}`);
  }
  const parts = [
    `<imdn xmlns="${IMDN_XML_NAMESPACE}">`,
    `<message-id>${escapeXmlText(doc.messageId)}</message-id>`,
    `<datetime>${escapeXmlText(doc.datetime)}</datetime>`,
  ];
  if (doc.recipientUri !== undefined) {
    const original = doc.originalRecipientUri ?? doc.recipientUri;
    for (const uri of [doc.recipientUri, original]) {
      if (!URI_TEXT.test(uri)) throw new RangeError(`not an absolute URI: ${JSON.stringify(uri)}`);
    }
    parts.push(`<recipient-uri>${escapeXmlText(doc.recipientUri)}</recipient-uri>`);
    parts.push(`<original-recipient-uri>${escapeXmlText(original)}</original-recipient-uri>`);
    if (doc.subject !== undefined) parts.push(`<subject>${escapeXmlText(doc.subject)}</subject>`);
  } else if (doc.originalRecipientUri !== undefined || doc.subject !== undefined) {
    // §11.2: recipient-uri, original-recipient-uri and subject form one optional sequence.
    throw new RangeError('original-recipient-uri and subject need recipient-uri');
  }
  parts.push(`<${kind}-notification><status><${status}/></status></${kind}-notification></imdn>`);
  return new TextEncoder().encode(`${XML_DECLARATION}\n${parts.join('')}`);
}

// ---------------------------------------------------------------------------------------------
// Reading notifications (IM Sender, RFC 5438 §7.1.2–§7.1.4, §11)
// ---------------------------------------------------------------------------------------------

/**
 * The notifications carried by a received CPIM message, or undefined when it is not an IMDN
 * (`isImdnMessage`). The content is one `message/imdn+xml` document, or a `multipart/mixed` of
 * them (aggregated notifications from a list server, §7.1.4, §8; parts of other types are
 * skipped).
 *
 * @throws ParseError (an `XmlBodyError` for the XML itself) when a notification is malformed.
 */
export function readImdnNotifications(cpim: CpimMessage): ReceivedImdn[] | undefined {
  if (!isImdnMessage(cpim)) return undefined;
  const media = mediaTypeOfValue(cpim.contentType);
  if (media === IMDN_CONTENT_TYPE) return [parseImdnXml(cpim.content)];
  if (media.startsWith('multipart/')) {
    const parts = parseMultipart(cpim.content, parseContentType(cpim.contentType, 'Content-Type'));
    return parts
      .filter((part) => part.parts === undefined && `${part.contentType.type}/${part.contentType.subtype}` === IMDN_CONTENT_TYPE)
      .map((part) => parseImdnXml(part.body));
  }
  throw new XmlBodyError('schema', `a notification must be ${IMDN_CONTENT_TYPE}, not ${media}`);
}

/**
 * Parses a `message/imdn+xml` document (§11). Strict where meaning is carried: the root must be
 * `imdn` in `urn:ietf:params:xml:ns:imdn` (whatever prefix), message-id and datetime exactly once,
 * exactly one of delivery-, display- or processing-notification whose status holds exactly one
 * status element allowed for it; an unknown element in the IMDN namespace is an error. Elements
 * and attributes in other namespaces are ignored wherever they appear (the schema's extension
 * points, e.g. Linphone's `<reason>` inside `<status>`). Child order is not enforced.
 *
 * @throws XmlBodyError (a ParseError) for malformed or hostile XML, or a document of the wrong shape.
 */
export function parseImdnXml(body: Uint8Array): ReceivedImdn {
  const root = parseXml(body, XML_LIMITS, 'message/imdn+xml body');
  if (root.namespace !== IMDN_XML_NAMESPACE || root.localName !== 'imdn') {
    throw new XmlBodyError('schema', `the root element is not <imdn> in ${IMDN_XML_NAMESPACE}`);
  }
  requireNoText(root);
  let messageId: string | undefined;
  let datetimeText: string | undefined;
  let recipient: string | undefined;
  let originalRecipient: string | undefined;
  let subject: string | undefined;
  let notification: ImdnNotification | undefined;
  for (const child of root.children) {
    if (child.namespace !== IMDN_XML_NAMESPACE) continue;
    switch (child.localName) {
      case 'message-id':
        messageId = once(messageId, collapseWhitespace(leafText(child)), child);
        break;
      case 'datetime':
        datetimeText = once(datetimeText, collapseWhitespace(leafText(child)), child);
        break;
      case 'recipient-uri':
        recipient = once(recipient, uriText(child), child);
        break;
      case 'original-recipient-uri':
        originalRecipient = once(originalRecipient, uriText(child), child);
        break;
      case 'subject':
        subject = once(subject, leafText(child), child);
        break;
      case 'delivery-notification':
      case 'display-notification':
      case 'processing-notification':
        if (notification !== undefined) throw new XmlBodyError('schema', 'an IMDN carries exactly one notification element');
        notification = readNotification(child);
        break;
      default:
        throw new XmlBodyError('schema', `unknown element <${child.localName}> in the IMDN namespace`);
    }
  }
  if (messageId === undefined || messageId === '') throw new XmlBodyError('schema', 'an IMDN needs a <message-id>');
  if (datetimeText === undefined) throw new XmlBodyError('schema', 'an IMDN needs a <datetime>');
  if (notification === undefined) throw new XmlBodyError('schema', 'an IMDN needs a delivery-, display- or processing-notification');
  let datetime: Date;
  try {
    datetime = parseCpimDateTime(datetimeText, 'datetime').date;
  } catch {
    throw new XmlBodyError('schema', `<datetime> is not RFC 3339: ${JSON.stringify(datetimeText.slice(0, 64))}`);
  }
  return {
    ...notification,
    messageId,
    datetime,
    datetimeText,
    ...(recipient === undefined ? {} : { recipient }),
    ...(originalRecipient === undefined ? {} : { originalRecipient }),
    ...(subject === undefined ? {} : { subject }),
  };
}

function readNotification(element: XmlElement): ImdnNotification {
  const kind = element.localName.slice(0, -'-notification'.length) as ImdnKind;
  requireNoText(element);
  const statuses = ownChildren(element);
  const status = statuses[0];
  if (statuses.length !== 1 || status?.localName !== 'status') {
    throw new XmlBodyError('schema', `<${element.localName}> holds exactly one <status>`);
  }
  requireNoText(status);
  const values = ownChildren(status);
  const value = values[0];
  if (values.length !== 1 || value === undefined || !STATUSES[kind].has(value.localName)) {
    throw new XmlBodyError('schema', `<status> of <${element.localName}> holds exactly one of ${[...STATUSES[kind]].join(', ')}`);
  }
  requireNoText(value);
  return { kind, status: value.localName } as ImdnNotification;
}

/** The children in the IMDN namespace; others are extensions and ignored (§11.2). */
function ownChildren(element: XmlElement): XmlElement[] {
  return element.children.filter((child) => child.namespace === IMDN_XML_NAMESPACE);
}

function once<T>(previous: T | undefined, value: T, element: XmlElement): T {
  if (previous !== undefined) throw new XmlBodyError('schema', `<${element.localName}> appears twice`);
  return value;
}

function uriText(element: XmlElement): string {
  const text = collapseWhitespace(leafText(element));
  if (!URI_TEXT.test(text)) throw new XmlBodyError('schema', `<${element.localName}> is not an absolute URI`);
  return text;
}

// ---------------------------------------------------------------------------------------------
// Pacing notifications (RFC 5438 §8 aggregation; our choice: per-message, rate-limited)
// ---------------------------------------------------------------------------------------------

/**
 * Why a scheduler and why not aggregation. RFC 5438 lets list servers aggregate notifications
 * into one multipart/mixed IMDN (§8); an endpoint sending one IMDN per IM is the common case and
 * the one every peer understands (Linphone, RCS clients). A burst of 1,000 received IMs must
 * still not turn into 1,000 MESSAGEs at once, so notifications wait in a FIFO per peer and
 * leave through two token buckets: one per peer (default 10 at once, then 5 per second) and one
 * for everything (20 at once, then 20 per second), peers served round-robin. Notifications may
 * arrive late or never (§7.1.4), so when a queue is full the new notification is dropped, and
 * said so, rather than growing memory without bound.
 *
 * The scheduler does no I/O and reads no clock (like the transaction machines): every input
 * carries `now` in milliseconds on any monotonic scale, `pollTimeout()` says when to call
 * `handleTimeout(now)` next. It dedupes by key (use `${messageId}:${kind}`), which also enforces
 * "at most one IMDN per disposition type per IM" (§7.2.1) for keys it still remembers.
 */
export interface ImdnSchedulerOptions {
  /** Notifications a peer may get at once after a quiet period. Default 10. */
  readonly perPeerBurst?: number;
  /** Sustained notifications per second to one peer. Default 5. */
  readonly perPeerPerSecond?: number;
  /** Notifications at once to all peers together. Default 20. */
  readonly totalBurst?: number;
  /** Sustained notifications per second to all peers together. Default 20. */
  readonly totalPerSecond?: number;
  /** Queued notifications per peer before new ones are dropped. Default 5,000. */
  readonly maxQueuedPerPeer?: number;
  /** Queued notifications in all before new ones are dropped. Default 20,000. */
  readonly maxQueued?: number;
  /** Keys of sent notifications remembered for deduplication (oldest forgotten first). Default 10,000. */
  readonly rememberSent?: number;
}

export type ImdnSchedulerEvent<T> =
  /** Send this notification to this peer now. */
  | { readonly type: 'send'; readonly peer: string; readonly key: string; readonly item: T }
  /** This notification will not be sent: its key was queued or sent already, or the queue is full. */
  | { readonly type: 'dropped'; readonly peer: string; readonly key: string; readonly item: T; readonly reason: 'duplicate' | 'queue-full' };

/** Slack for floating-point refills: a bucket at 0.9999999 tokens has one. */
const TOKEN_EPSILON = 1e-6;

/** A token bucket on caller-supplied time (ms). Starts full. */
class TokenBucket {
  #tokens: number;
  #updatedAt: number;

  constructor(
    readonly capacity: number,
    readonly perMs: number,
    now: number,
  ) {
    this.#tokens = capacity;
    this.#updatedAt = now;
  }

  refill(now: number): void {
    // Time that runs backwards (a caller bug or a clock change) adds nothing.
    if (now <= this.#updatedAt) return;
    this.#tokens = Math.min(this.capacity, this.#tokens + (now - this.#updatedAt) * this.perMs);
    this.#updatedAt = now;
  }

  hasToken(): boolean {
    return this.#tokens >= 1 - TOKEN_EPSILON;
  }

  take(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  isFull(): boolean {
    return this.#tokens >= this.capacity - TOKEN_EPSILON;
  }

  /**
   * When the next token is there, in whole ms rounded up so that waking then finds it. The
   * rounding forgives float noise (200.0000000001 ms is 200 ms, not 201), which hasToken's
   * epsilon absorbs; otherwise the error would add a millisecond per token.
   */
  readyAt(): number {
    if (this.hasToken()) return this.#updatedAt;
    return this.#updatedAt + Math.max(0, Math.ceil((1 - this.#tokens) / this.perMs - 1e-6));
  }
}

interface QueuedImdn<T> {
  readonly key: string;
  readonly item: T;
}

/** A FIFO with O(1) shift (an index into an array, compacted now and then). */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}

interface PeerState<T> {
  readonly peer: string;
  readonly queue: Fifo<QueuedImdn<T>>;
  readonly bucket: TokenBucket;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!(result > 0) || !Number.isFinite(result)) throw new RangeError(`${name} must be a positive number`);
  return result;
}

export class ImdnScheduler<T> {
  readonly #perPeerBurst: number;
  readonly #perPeerPerMs: number;
  readonly #maxQueuedPerPeer: number;
  readonly #maxQueued: number;
  readonly #rememberSent: number;
  readonly #total: TokenBucket;
  /** Peers in round-robin order: the one served last goes to the end. */
  readonly #peers = new Map<string, PeerState<T>>();
  readonly #queuedKeys = new Set<string>();
  /** Insertion-ordered, so the first entry is the oldest to forget. */
  readonly #sentKeys = new Set<string>();
  #queued = 0;

  constructor(options: ImdnSchedulerOptions = {}, now = 0) {
    this.#perPeerBurst = positive(options.perPeerBurst, 10, 'perPeerBurst');
    this.#perPeerPerMs = positive(options.perPeerPerSecond, 5, 'perPeerPerSecond') / 1000;
    this.#maxQueuedPerPeer = positive(options.maxQueuedPerPeer, 5_000, 'maxQueuedPerPeer');
    this.#maxQueued = positive(options.maxQueued, 20_000, 'maxQueued');
    this.#rememberSent = positive(options.rememberSent, 10_000, 'rememberSent');
    this.#total = new TokenBucket(
      positive(options.totalBurst, 20, 'totalBurst'),
      positive(options.totalPerSecond, 20, 'totalPerSecond') / 1000,
      now,
    );
  }

  /** Notifications waiting, all peers together. */
  get queued(): number {
    return this.#queued;
  }

  /** Notifications waiting for one peer. */
  queuedFor(peer: string): number {
    return this.#peers.get(peer)?.queue.length ?? 0;
  }

  /**
   * Queue a notification for `peer` (the destination URI, `imdnDestination(...).uri`). Returns
   * what can go at once: this one or others, if the buckets allow, or a `dropped` event.
   */
  enqueue(peer: string, key: string, item: T, now: number): ImdnSchedulerEvent<T>[] {
    if (this.#queuedKeys.has(key) || this.#sentKeys.has(key)) return [{ type: 'dropped', peer, key, item, reason: 'duplicate' }];
    let state = this.#peers.get(peer);
    if (this.#queued >= this.#maxQueued || (state?.queue.length ?? 0) >= this.#maxQueuedPerPeer) {
      return [{ type: 'dropped', peer, key, item, reason: 'queue-full' }];
    }
    if (state === undefined) {
      state = { peer, queue: new Fifo(), bucket: new TokenBucket(this.#perPeerBurst, this.#perPeerPerMs, now) };
      this.#peers.set(peer, state);
    }
    state.queue.push({ key, item });
    this.#queuedKeys.add(key);
    this.#queued++;
    return this.#drain(now);
  }

  /** When `handleTimeout` has something to do next; undefined while nothing waits. */
  pollTimeout(): number | undefined {
    if (this.#queued === 0) return undefined;
    let peerReady = Number.POSITIVE_INFINITY;
    for (const state of this.#peers.values()) {
      if (state.queue.length > 0) peerReady = Math.min(peerReady, state.bucket.readyAt());
    }
    return Math.max(peerReady, this.#total.readyAt());
  }

  /** Sends what the buckets allow at `now`. Calling early does nothing; calling late sends at most a burst. */
  handleTimeout(now: number): ImdnSchedulerEvent<T>[] {
    return this.#drain(now);
  }

  #drain(now: number): ImdnSchedulerEvent<T>[] {
    const events: ImdnSchedulerEvent<T>[] = [];
    this.#total.refill(now);
    while (this.#total.hasToken()) {
      const state = this.#nextReadyPeer(now);
      if (state === undefined) break;
      const next = state.queue.shift()!;
      state.bucket.take();
      this.#total.take();
      this.#queued--;
      this.#queuedKeys.delete(next.key);
      this.#remember(next.key);
      events.push({ type: 'send', peer: state.peer, key: next.key, item: next.item });
      // Round-robin: the peer just served goes behind the others.
      this.#peers.delete(state.peer);
      this.#peers.set(state.peer, state);
    }
    // A peer with nothing queued and a full bucket is no different from a new one: forget it.
    for (const [peer, state] of this.#peers) {
      if (state.queue.length > 0) continue;
      state.bucket.refill(now);
      if (state.bucket.isFull()) this.#peers.delete(peer);
    }
    return events;
  }

  #nextReadyPeer(now: number): PeerState<T> | undefined {
    for (const state of this.#peers.values()) {
      if (state.queue.length === 0) continue;
      state.bucket.refill(now);
      if (state.bucket.hasToken()) return state;
    }
    return undefined;
  }

  #remember(key: string): void {
    this.#sentKeys.add(key);
    if (this.#sentKeys.size > this.#rememberSent) {
      const oldest = this.#sentKeys.values().next().value;
      if (oldest !== undefined) this.#sentKeys.delete(oldest);
    }
  }
}
