/**
 * What a pager can show of a MESSAGE body (RFC 3428 §7; RFC 3862 message/cpim; RFC 5621 and
 * RFC 2046 multipart), and the answer when it can show nothing.
 *
 * The SIP layer has already framed the body as bytes and checked its top-level type against
 * `PAGER_ACCEPTED_TYPES`. Here the body is opened: text is decoded in its charset (only now,
 * after framing), CPIM is unwrapped to its content, multipart is searched for its text parts.
 * A body that turns out malformed gets 400; one with nothing we can render gets 415 with the
 * Accept list (RFC 3261 §8.2.3). S/MIME bodies arrive with the security work (issue #4).
 */
import { mediaTypeOf, parseContentType, type ContentType } from '../sip/header-values.js';
import { ParseError } from '../sip/message/parse-error.js';
import { DEFAULT_REQUEST_POLICY, TEXT_CHARSETS, type RequestPolicy } from '../sip/ua/request-policy.js';
import { CPIM_CORE_NAMESPACE, cpimDateTime, cpimFrom, cpimHeader, cpimTo, parseCpim, sameCpimNamespace } from './cpim.js';
import { findParts, parseMultipart, type MimePart } from './multipart.js';

/** Top-level body types a MESSAGE may carry to us. */
export const PAGER_ACCEPTED_TYPES: readonly string[] = ['text/plain', 'message/cpim', 'multipart/mixed', 'multipart/alternative'];

/** The UAS request policy of a pager that opens bodies with `readMessageBody`. */
export const PAGER_REQUEST_POLICY: RequestPolicy = { ...DEFAULT_REQUEST_POLICY, acceptedTypes: PAGER_ACCEPTED_TYPES };

const IMDN_NAMESPACE = 'urn:ietf:params:imdn';

/** CPIM metadata a pager shows or uses (RFC 3862 §4; RFC 5438 §6 for the Message-ID). */
export interface CpimEnvelope {
  readonly from?: string;
  readonly to: readonly string[];
  readonly dateTime?: Date;
  readonly messageId?: string;
}

export type BodyReading =
  | {
      readonly kind: 'text';
      /** What to show. */
      readonly text: string;
      /** The type of the part the text came from, e.g. `text/plain`. */
      readonly textType: string;
      readonly cpim?: CpimEnvelope;
      /** Parts that are not text (files, keys): kept with the message, not shown inline. */
      readonly attachments: number;
    }
  | { readonly kind: 'rejected'; readonly status: 400 | 415; readonly reason: string };

export function readMessageBody(contentTypeValue: string | undefined, body: Buffer): BodyReading {
  if (body.length === 0) return { kind: 'text', text: '', textType: 'text/plain', attachments: 0 };
  try {
    if (contentTypeValue === undefined) return { kind: 'rejected', status: 400, reason: 'Bad Request (body without Content-Type)' };
    const top = topLevelType(contentTypeValue);
    // readText's answer for this type, without looking at the type again.
    if (top.textEncoding !== undefined) return { kind: 'text', text: body.toString(top.textEncoding), textType: 'text/plain', attachments: 0 };
    return readEntity(top.type, body, 0);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    return { kind: 'rejected', status: 400, reason: `Bad Request (${error.message})` };
  }
}

/** A top-level Content-Type, parsed, and for text/plain in a charset we decode, the decoder readText would pick. */
interface TopLevelType {
  readonly value: string;
  readonly type: ContentType;
  readonly textEncoding: 'utf8' | 'latin1' | undefined;
}

/**
 * The last top-level Content-Type value parsed, and what it parsed into: under load consecutive
 * MESSAGEs carry the same one. Only read here (never handed out), so sharing it is safe; a value
 * that does not parse is not remembered and throws every time.
 */
let lastTopLevelType: TopLevelType | undefined;

function topLevelType(value: string): TopLevelType {
  if (lastTopLevelType === undefined || lastTopLevelType.value !== value) {
    const type = parseContentType(value);
    const charset = (type.params.get('charset') ?? 'utf-8').toLowerCase();
    const plain = mediaTypeOf(type) === 'text/plain' && TEXT_CHARSETS.has(charset);
    lastTopLevelType = { value, type, textEncoding: plain ? textEncoding(charset) : undefined };
  }
  return lastTopLevelType;
}

/** Node's decoder for a charset of TEXT_CHARSETS. */
function textEncoding(charset: string): 'utf8' | 'latin1' {
  return charset === 'iso-8859-1' || charset === 'latin1' ? 'latin1' : 'utf8';
}

function readEntity(type: ContentType, body: Buffer, depth: number): BodyReading {
  const media = mediaTypeOf(type);
  if (media === 'text/plain') return readText(type, body);
  if (media === 'message/cpim' && depth === 0) return readCpim(body, depth);
  if (type.type === 'multipart') return readMultipart(type, body);
  return unsupported(`Unsupported Media Type ${media}`);
}

function readText(type: ContentType, body: Buffer): BodyReading {
  const charset = (type.params.get('charset') ?? 'utf-8').toLowerCase();
  if (!TEXT_CHARSETS.has(charset)) return unsupported(`Unsupported charset ${charset}`);
  const text = body.toString(textEncoding(charset));
  return { kind: 'text', text, textType: mediaTypeOf(type), attachments: 0 };
}

function readCpim(body: Buffer, depth: number): BodyReading {
  const cpim = parseCpim(body);
  const unknownRequired = cpim.required.filter(
    (required) => !sameCpimNamespace(required.namespace, CPIM_CORE_NAMESPACE) && !sameCpimNamespace(required.namespace, IMDN_NAMESPACE),
  );
  if (unknownRequired.length > 0) {
    // RFC 3862 §3.5 names no failure response; 415 says "we cannot take this content".
    return unsupported(`CPIM Require names headers we do not understand: ${unknownRequired.map((n) => n.name).join(', ')}`);
  }
  const inner = readEntity(parseContentType(cpim.contentType), Buffer.from(cpim.content), depth + 1);
  if (inner.kind === 'rejected') return inner;
  const from = cpimFrom(cpim);
  const dateTime = cpimDateTime(cpim);
  const messageId = cpimHeader(cpim, IMDN_NAMESPACE, 'Message-ID')?.value;
  const envelope: CpimEnvelope = {
    to: cpimTo(cpim).map((address) => address.uri),
    ...(from === undefined ? {} : { from: from.uri }),
    ...(dateTime === undefined ? {} : { dateTime }),
    ...(messageId === undefined ? {} : { messageId }),
  };
  return { ...inner, cpim: envelope };
}

/**
 * RFC 5621 §4.2: mixed shows every text part in order and keeps the rest as attachments;
 * alternative shows the text/plain alternative. Unknown subtypes behave as mixed.
 */
function readMultipart(type: ContentType, body: Buffer): BodyReading {
  const parts = parseMultipart(body, type);
  const leaves = findParts(parts, (part) => part.parts === undefined);
  const texts = leaves.filter((part) => mediaTypeOf(part.contentType) === 'text/plain' && renderable(part));
  if (texts.length === 0) return unsupported('no text/plain part to show');
  const chosen = type.subtype === 'alternative' ? texts.slice(0, 1) : texts;
  const decoded: string[] = [];
  for (const part of chosen) {
    const reading = readText(part.contentType, part.body);
    if (reading.kind === 'rejected') return reading;
    decoded.push(reading.text);
  }
  const attachments = type.subtype === 'alternative' ? 0 : leaves.length - texts.length;
  return { kind: 'text', text: decoded.join('\n'), textType: 'text/plain', attachments };
}

function renderable(part: MimePart): boolean {
  return part.disposition.type === 'render' || part.disposition.type === 'inline';
}

function unsupported(reason: string): BodyReading {
  return { kind: 'rejected', status: 415, reason: `Unsupported Media Type (${reason})` };
}
