/**
 * MIME multipart bodies (RFC 2046 §5.1) as SIP carries them (RFC 5621): parse and build, pure
 * functions on bytes.
 *
 * What a SIP UA must do with them. RFC 5621 §4.2: parse multipart bodies, nested ones included,
 * support multipart/mixed and multipart/alternative, and treat unknown multipart subtypes as
 * mixed (RFC 2046 §5.1.7). The splitting below is the same for every subtype, so "treat as
 * mixed" is automatic; only the meaning of the parts differs, and that is the caller's business
 * (`chooseAlternative` helps with multipart/alternative, §5.1.4). The one syntactic difference
 * is multipart/digest, whose parts default to message/rfc822 (§5.1.5).
 *
 * Bytes, never text. SIP is 8-bit clean and RFC 5621 §3.2 makes binary transfer encoding the
 * normal case, so a part may be DER (RFC 4475 §3.1.1.11, an S/MIME body next to text/plain) full
 * of CR, LF and "-" bytes. Only the part headers are decoded (as UTF-8); bodies are sliced out
 * of the input, and decoded only when a part declares base64 or quoted-printable.
 *
 * The layout (RFC 2046 §5.1.1):
 *
 *     preamble (ignored)
 *     --boundary [padding] CRLF          <- dash-boundary: may be the very first bytes
 *     part headers CRLF CRLF part body
 *     CRLF --boundary [padding] CRLF     <- delimiter: its leading CRLF is not part of the body
 *     part headers CRLF CRLF part body
 *     CRLF --boundary-- [padding]        <- close delimiter
 *     epilogue (ignored)
 *
 * "padding" is transport padding (SP / HTAB) that gateways may add. Bare LF line ends are
 * accepted everywhere a CRLF is expected (senders built on Unix text tools write them).
 *
 * A delimiter is recognised only as a whole line: "--boundary" at the start of a line, then
 * "--" or nothing, then padding, then the line end (or, after a close delimiter, the end of the
 * body). The sender must keep the boundary out of every part (§5.1.1), so a line that starts
 * with "--boundary" and goes on with other text breaks that rule; it is read as content rather
 * than as a delimiter, the way Python's email package does, so that one boundary that is a
 * prefix of another (`b` and `b-1`) cannot cut a part short. Finding the delimiter uses
 * Buffer.indexOf on "LF--boundary", so parsing is linear in the body size.
 *
 * Robustness. Only `ParseError` is thrown on bad input, never anything else: a missing close
 * delimiter is 'truncated', a missing or unusable boundary is 'bad-header-value', a malformed
 * part header line is 'bad-header', more than MAX_PART_HEADERS header fields in one part is
 * 'too-many-headers', and nesting deeper than MAX_MULTIPART_DEPTH levels is 'too-large'.
 */
import { randomBytes } from 'node:crypto';
import { ParseError } from '../sip/message/parse-error.js';
import { Params, formatContentType, isToken, mediaTypeOf, parseContentType, parseParams } from '../sip/header-values.js';
import type { ContentType } from '../sip/header-values.js';

/** Multipart levels parsed, the outermost body counting as 1. Real messages use two or three. */
export const MAX_MULTIPART_DEPTH = 8;

/** Header fields allowed in one part; MIME parts need four or five, so more is abuse. */
export const MAX_PART_HEADERS = 64;

/** RFC 2046 §5.1.1: a boundary is 1 to 70 characters. */
const MAX_BOUNDARY_LENGTH = 70;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

export type DispositionHandling = 'required' | 'optional';

/** A part's Content-Disposition (RFC 3261 §20.11, RFC 2183), defaults filled in. */
export interface ContentDisposition {
  /** Lowercased disposition type: 'render', 'session', 'icon', 'alert', 'attachment', … */
  readonly type: string;
  /**
   * The `handling` parameter: 'optional' only when written so. Absent means 'required'
   * (RFC 3261 §20.11), and so does an unknown value, the reading that never drops a body the
   * sender needed understood.
   */
  readonly handling: DispositionHandling;
  /** All parameters (`handling`, `filename`, …), names lowercased, values unquoted. */
  readonly params: Params;
  /** False when the part had no Content-Disposition header and these are the defaults. */
  readonly explicit: boolean;
}

/** One body part of a multipart body. */
export interface MimePart {
  /** The part's header fields in order, names as written, values unfolded and trimmed. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /**
   * The part's Content-Type; when it has none, text/plain; charset=us-ascii (RFC 2046 §5.1.1),
   * or message/rfc822 inside multipart/digest (§5.1.5).
   */
  readonly contentType: ContentType;
  /** Content-Disposition, or the defaults of RFC 3261 §20.11 when the part has none. */
  readonly disposition: ContentDisposition;
  /**
   * The content, with the Content-Transfer-Encoding undone (base64 and quoted-printable are
   * decoded; 7bit, 8bit and binary are the bytes as received, a view into the input buffer).
   */
  readonly body: Buffer;
  /**
   * The whole part exactly as received, headers, blank line and encoded content, between the
   * delimiters (a view into the input buffer). A multipart/signed signature covers these bytes
   * (RFC 1847 §2.1), not the decoded body.
   */
  readonly raw: Buffer;
  /** The sub-parts, when this part is itself multipart (parsed recursively). */
  readonly parts?: ReadonlyArray<MimePart>;
}

/** A part for `buildMultipart`. */
export interface MimePartInput {
  /** The Content-Type value, e.g. 'text/plain;charset=utf-8'. Written as the first header. */
  readonly contentType: string;
  /**
   * Further header fields (Content-Disposition, Content-ID, …), written in order after
   * Content-Type. A Content-Transfer-Encoding named here describes `body`: the builder writes
   * `body` as given and encodes nothing (RFC 5621 §3.2: binary is the SIP norm).
   */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body: Uint8Array;
}

export interface BuildMultipartOptions {
  /** The multipart subtype: 'mixed' (the default), 'alternative', 'related', … */
  readonly subtype?: string;
  /** A boundary of one's own: 1–70 bcharsnospace characters (RFC 2046 §5.1.1). Default: a random one. */
  readonly boundary?: string;
}

export interface BuiltMultipart {
  /** The Content-Type value to send with the body, boundary included: `multipart/mixed;boundary=…`. */
  readonly contentType: string;
  readonly body: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------------

const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const DASH = 0x2d;
const COLON = 0x3a;
const EQUALS = 0x3d;
const DEL = 0x7f;

function isSpaceOrTab(byte: number | undefined): boolean {
  return byte === SP || byte === HTAB;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Parsing: delimiters (RFC 2046 §5.1.1)
// ---------------------------------------------------------------------------------------------

/**
 * The boundary parameter of a multipart Content-Type. RFC 2046 §5.1.1 allows 1–70 characters
 * from a small set (bchars) not ending in a space; this accepts any printable US-ASCII, because
 * the boundary is only ever compared byte for byte, and rejecting a sender's odd but harmless
 * choice would lose its message. Non-ASCII is refused: it would make "characters" and "bytes"
 * differ.
 */
function boundaryOf(contentType: ContentType): string {
  const boundary = contentType.params.get('boundary');
  const fail = (why: string): never => {
    throw new ParseError('bad-header-value', `multipart Content-Type ${why}`, 'Content-Type');
  };
  if (boundary === undefined || boundary === null) return fail('has no boundary parameter');
  if (boundary.length === 0) return fail('has an empty boundary');
  if (boundary.length > MAX_BOUNDARY_LENGTH) return fail(`boundary is longer than ${MAX_BOUNDARY_LENGTH} characters`);
  for (let i = 0; i < boundary.length; i++) {
    const code = boundary.charCodeAt(i);
    if (code < SP || code >= DEL) return fail('boundary has a character outside printable US-ASCII');
  }
  return boundary;
}

/** A delimiter line found in the body. */
interface Delimiter {
  /** Where the content before it ends: its leading CRLF (or LF) belongs to the delimiter. */
  readonly contentEnd: number;
  /** Just after the delimiter line (after its line end), or the body length. */
  readonly next: number;
  /** "--boundary--": the close delimiter. */
  readonly close: boolean;
}

/**
 * Reads the delimiter line whose "--boundary" starts at `at`, or returns undefined when the line
 * goes on with anything other than "--", transport padding and a line end (see the file comment).
 */
function readDelimiterLine(body: Buffer, at: number, dashBoundaryLength: number): { next: number; close: boolean } | undefined {
  let pos = at + dashBoundaryLength;
  const close = body[pos] === DASH && body[pos + 1] === DASH;
  if (close) pos += 2;
  while (isSpaceOrTab(body[pos])) pos++;
  if (pos === body.length) return close ? { next: pos, close } : undefined;
  if (body[pos] === LF) return { next: pos + 1, close };
  if (body[pos] === CR && body[pos + 1] === LF) return { next: pos + 2, close };
  return undefined;
}

/**
 * Finds the first delimiter line at or after `from`, which must be a line start (0, or just
 * after an LF). The delimiter's own line break is searched for too, so "LF--boundary" is the
 * needle: only line starts are ever candidates.
 */
function findDelimiter(body: Buffer, lineNeedle: Buffer, from: number): Delimiter | undefined {
  const dashBoundaryLength = lineNeedle.length - 1;
  // "--boundary" at `from` itself: at the very start of the body (no preamble), or right after
  // the previous delimiter line (an empty part written without its own CRLF; lenient).
  const atFrom = from + dashBoundaryLength <= body.length && body.compare(lineNeedle, 1, lineNeedle.length, from, from + dashBoundaryLength) === 0;
  if (atFrom) {
    const line = readDelimiterLine(body, from, dashBoundaryLength);
    if (line !== undefined) return { contentEnd: from, ...line };
  }
  let searchFrom = from;
  for (;;) {
    const lf = body.indexOf(lineNeedle, searchFrom);
    if (lf < 0) return undefined;
    const line = readDelimiterLine(body, lf + 1, dashBoundaryLength);
    if (line !== undefined) {
      const contentEnd = lf > from && body[lf - 1] === CR ? lf - 1 : lf;
      return { contentEnd, ...line };
    }
    searchFrom = lf + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing: the whole body
// ---------------------------------------------------------------------------------------------

/**
 * Splits a multipart body into its parts (RFC 2046 §5.1.1), recursing into parts that are
 * multipart themselves (RFC 5621 §4.2). `contentType` is the body's parsed Content-Type, e.g.
 * `parseContentType(message.headers.get('content-type'))`; its `boundary` parameter is required.
 *
 * A body whose first delimiter is already the close delimiter has no parts and gives [] (the
 * grammar wants at least one; an empty list is the harmless reading).
 */
export function parseMultipart(body: Uint8Array, contentType: ContentType): MimePart[] {
  return parseMultipartAt(asBuffer(body), contentType, 1);
}

function parseMultipartAt(body: Buffer, contentType: ContentType, depth: number): MimePart[] {
  if (contentType.type !== 'multipart') {
    throw new ParseError('bad-header-value', `${mediaTypeOf(contentType)} is not a multipart type`, 'Content-Type');
  }
  if (depth > MAX_MULTIPART_DEPTH) {
    throw new ParseError('too-large', `multipart bodies nested more than ${MAX_MULTIPART_DEPTH} deep`);
  }
  const lineNeedle = Buffer.from(`\n--${boundaryOf(contentType)}`, 'latin1');
  const partDefaultType = contentType.subtype === 'digest' ? DIGEST_DEFAULT_TYPE : DEFAULT_TYPE;

  const first = findDelimiter(body, lineNeedle, 0);
  if (first === undefined) throw new ParseError('truncated', 'multipart body has no boundary delimiter line');
  const parts: MimePart[] = [];
  let partStart = first.next;
  let close = first.close;
  while (!close) {
    const delimiter = findDelimiter(body, lineNeedle, partStart);
    if (delimiter === undefined) throw new ParseError('truncated', 'multipart body ends without its close delimiter');
    parts.push(parsePart(body.subarray(partStart, delimiter.contentEnd), partDefaultType, depth));
    partStart = delimiter.next;
    close = delimiter.close;
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Parsing: one part
// ---------------------------------------------------------------------------------------------

/** RFC 2046 §5.1.1: a part without Content-Type is text/plain; charset=us-ascii. */
const DEFAULT_TYPE: ContentType = { type: 'text', subtype: 'plain', params: new Params([['charset', 'us-ascii']]) };
/** RFC 2046 §5.1.5: inside multipart/digest the default is message/rfc822. */
const DIGEST_DEFAULT_TYPE: ContentType = { type: 'message', subtype: 'rfc822', params: new Params() };

function parsePart(raw: Buffer, defaultType: ContentType, depth: number): MimePart {
  const { headers, bodyStart } = readPartHeaders(raw);
  const contentTypeValue = singleHeader(headers, 'content-type');
  const contentType = contentTypeValue === undefined ? copyContentType(defaultType) : parseContentType(contentTypeValue, 'Content-Type');
  const dispositionValue = singleHeader(headers, 'content-disposition');
  const disposition =
    dispositionValue === undefined ? defaultDisposition(contentType) : parseContentDisposition(dispositionValue);
  const encodingValue = singleHeader(headers, 'content-transfer-encoding');
  const body = decodeTransferEncoding(raw.subarray(bodyStart), encodingValue);
  const part: MimePart = { headers, contentType, disposition, body, raw };
  if (contentType.type !== 'multipart') return part;
  return { ...part, parts: parseMultipartAt(body, contentType, depth + 1) };
}

/** A fresh copy, so that callers may change a part's params without touching the shared default. */
function copyContentType(contentType: ContentType): ContentType {
  return { type: contentType.type, subtype: contentType.subtype, params: new Params(contentType.params) };
}

/**
 * Reads the header section of a part: `name: value` lines up to the first empty line; lines
 * starting with SP or HTAB continue the previous field (RFC 5322 §2.2.3), joined with one SP as
 * SIP joins them (RFC 3261 §7.3.1). A part that starts with an empty line has no headers; one
 * with no empty line at all is all headers and an empty body (RFC 2046 §5.1.1:
 * body-part := MIME-part-headers [CRLF *OCTET]).
 */
function readPartHeaders(raw: Buffer): { headers: Array<[string, string]>; bodyStart: number } {
  const headers: Array<[string, string]> = [];
  let pos = 0;
  while (pos < raw.length) {
    const lf = raw.indexOf(LF, pos);
    const next = lf < 0 ? raw.length : lf + 1;
    let lineEnd = lf < 0 ? raw.length : lf;
    if (lineEnd > pos && raw[lineEnd - 1] === CR) lineEnd--;
    if (lineEnd === pos) return { headers, bodyStart: next };
    checkHeaderLineBytes(raw, pos, lineEnd);
    const last = headers[headers.length - 1];
    if (isSpaceOrTab(raw[pos])) {
      if (last === undefined) throw new ParseError('bad-header', 'part header section starts with a continuation line');
      const more = decodeTrimmed(raw, pos, lineEnd);
      if (more !== '') last[1] = last[1] === '' ? more : `${last[1]} ${more}`;
    } else {
      const colon = raw.indexOf(COLON, pos);
      if (colon < 0 || colon >= lineEnd) {
        throw new ParseError('bad-header', `part header line without a colon: ${JSON.stringify(raw.toString('utf8', pos, lineEnd))}`);
      }
      const name = decodeTrimmed(raw, pos, colon);
      if (!isFieldName(name)) throw new ParseError('bad-header', `invalid part header name ${JSON.stringify(name)}`);
      if (headers.length === MAX_PART_HEADERS) {
        throw new ParseError('too-many-headers', `a multipart part has more than ${MAX_PART_HEADERS} header fields`);
      }
      headers.push([name, decodeTrimmed(raw, colon + 1, lineEnd)]);
    }
    pos = next;
  }
  return { headers, bodyStart: raw.length };
}

/** Header lines are text: no control characters but HTAB (RFC 5322 §2.2; UTF-8 allowed, RFC 6532). */
function checkHeaderLineBytes(raw: Buffer, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    const byte = raw[i]!;
    if ((byte < SP && byte !== HTAB) || byte === DEL) {
      throw new ParseError('bad-header', `control character 0x${byte.toString(16).padStart(2, '0')} in a part header line`);
    }
  }
}

/** RFC 5322 §3.6.8 field-name = 1*ftext, ftext = %d33-57 / %d59-126 (printable ASCII but ":"). */
function isFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code <= SP || code >= DEL || code === COLON) return false;
  }
  return true;
}

/** The bytes [start, end) without surrounding SP / HTAB, decoded as UTF-8. */
function decodeTrimmed(raw: Buffer, start: number, end: number): string {
  while (start < end && isSpaceOrTab(raw[start])) start++;
  while (end > start && isSpaceOrTab(raw[end - 1])) end--;
  return raw.toString('utf8', start, end);
}

/**
 * The value of a header that may appear at most once. Two Content-Types (or encodings, or
 * dispositions) in one part are refused: different readers would pick different ones, which is
 * how content slips past a filter or a signature check.
 */
function singleHeader(headers: ReadonlyArray<readonly [string, string]>, lowercaseName: string): string | undefined {
  let found: readonly [string, string] | undefined;
  for (const header of headers) {
    if (header[0].toLowerCase() !== lowercaseName) continue;
    if (found !== undefined) throw new ParseError('bad-header', `a multipart part has two ${header[0]} headers`, header[0]);
    found = header;
  }
  return found?.[1];
}

// ---------------------------------------------------------------------------------------------
// Content-Disposition (RFC 3261 §20.11; RFC 2183)
// ---------------------------------------------------------------------------------------------

/**
 * RFC 3261 §20.11: without Content-Disposition the media type decides (application/sdp is a
 * session description, 'session'), and otherwise 'render'; `handling` defaults to 'required'.
 */
function defaultDisposition(contentType: ContentType): ContentDisposition {
  const type = contentType.type === 'application' && contentType.subtype === 'sdp' ? 'session' : 'render';
  return { type, handling: 'required', params: new Params(), explicit: false };
}

/** Content-Disposition = disp-type *( SEMI disp-param ), disp-type a token (RFC 3261 §20.11, §25.1). */
function parseContentDisposition(value: string): ContentDisposition {
  const semicolon = value.indexOf(';');
  const typeText = (semicolon < 0 ? value : value.slice(0, semicolon)).replace(/^[ \t]+|[ \t]+$/g, '');
  if (!isToken(typeText)) {
    throw new ParseError('bad-header-value', `invalid disposition type ${JSON.stringify(typeText)}`, 'Content-Disposition');
  }
  const params = semicolon < 0 ? new Params() : parseParams(value.slice(semicolon), 'Content-Disposition');
  const handling = params.get('handling')?.toLowerCase() === 'optional' ? 'optional' : 'required';
  return { type: typeText.toLowerCase(), handling, params, explicit: true };
}

// ---------------------------------------------------------------------------------------------
// Content-Transfer-Encoding (RFC 2045 §6)
// ---------------------------------------------------------------------------------------------

/**
 * Undoes the part's Content-Transfer-Encoding. The identity encodings (7bit, 8bit, binary, and
 * no header at all, RFC 2045 §6.1) pass the bytes through unchecked: SIP is 8-bit clean and a
 * wrong label hurts nobody. Any other mechanism cannot be read, so the part cannot be either.
 */
function decodeTransferEncoding(encoded: Buffer, value: string | undefined): Buffer {
  const mechanism = value === undefined ? 'binary' : value.toLowerCase();
  switch (mechanism) {
    case '7bit':
    case '8bit':
    case 'binary':
      return encoded;
    case 'base64':
      return decodeBase64(encoded);
    case 'quoted-printable':
      return decodeQuotedPrintable(encoded);
    default:
      throw new ParseError(
        'bad-header-value',
        `unsupported Content-Transfer-Encoding ${JSON.stringify(value)}`,
        'Content-Transfer-Encoding',
      );
  }
}

const BASE64_ALPHABET = new Uint8Array(256);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[ch.charCodeAt(0)] = 1;

/**
 * RFC 2045 §6.8: characters outside the base64 alphabet (line breaks, spaces, junk) are ignored,
 * and "=" marks the end of the data. Node's own decoder would also take the base64url letters
 * "-" and "_", so the alphabet is filtered here first.
 */
function decodeBase64(encoded: Buffer): Buffer {
  const letters = Buffer.alloc(encoded.length);
  let count = 0;
  for (const byte of encoded) {
    if (byte === EQUALS) break;
    if (BASE64_ALPHABET[byte] === 1) letters[count++] = byte;
  }
  return Buffer.from(letters.toString('latin1', 0, count), 'base64');
}

function hexDigitValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10; // lowercase: RFC 2045 §6.7 (1) "robust"
  return -1;
}

/** Whether `pos` is at a line end (LF or CRLF) or at the end of the bytes. */
function isLineEndOrEnd(bytes: Buffer, pos: number): boolean {
  return pos === bytes.length || bytes[pos] === LF || (bytes[pos] === CR && bytes[pos + 1] === LF);
}

/**
 * RFC 2045 §6.7: "=XX" is the octet XX; "=" at the end of a line (after optional whitespace) is
 * a soft line break and disappears; whitespace at the end of a line was added in transit and is
 * dropped (rule 3); line breaks stay as they are. A "=" that starts neither is kept literally,
 * the robust reading §6.7 suggests.
 */
function decodeQuotedPrintable(encoded: Buffer): Buffer {
  const out = Buffer.alloc(encoded.length);
  let length = 0;
  let i = 0;
  while (i < encoded.length) {
    const byte = encoded[i]!;
    if (byte === EQUALS) {
      const high = hexDigitValue(encoded[i + 1]);
      const low = hexDigitValue(encoded[i + 2]);
      if (high >= 0 && low >= 0) {
        out[length++] = high * 16 + low;
        i += 3;
        continue;
      }
      let afterSpace = i + 1;
      while (isSpaceOrTab(encoded[afterSpace])) afterSpace++;
      if (isLineEndOrEnd(encoded, afterSpace)) {
        i = afterSpace === encoded.length ? afterSpace : afterSpace + (encoded[afterSpace] === CR ? 2 : 1);
        continue;
      }
      out[length++] = byte;
      i++;
      continue;
    }
    if (isSpaceOrTab(byte)) {
      let runEnd = i + 1;
      while (isSpaceOrTab(encoded[runEnd])) runEnd++;
      if (!isLineEndOrEnd(encoded, runEnd)) length += encoded.copy(out, length, i, runEnd);
      i = runEnd;
      continue;
    }
    out[length++] = byte;
    i++;
  }
  return out.subarray(0, length);
}

// ---------------------------------------------------------------------------------------------
// Finding parts
// ---------------------------------------------------------------------------------------------

/**
 * Every part, at any depth, that satisfies `predicate`, in depth-first document order (a
 * multipart part comes before its children). `findParts(parts, isPlainText)[0]` is the first
 * text/plain part wherever it sits; a pager shows it and offers the rest as attachments.
 */
export function findParts(parts: ReadonlyArray<MimePart>, predicate: (part: MimePart) => boolean): MimePart[] {
  const found: MimePart[] = [];
  const visit = (list: ReadonlyArray<MimePart>): void => {
    for (const part of list) {
      if (predicate(part)) found.push(part);
      if (part.parts !== undefined) visit(part.parts);
    }
  };
  visit(parts);
  return found;
}

/**
 * The part of a multipart/alternative to show: the alternatives are listed from plainest to
 * richest, so the receiver takes the last one it can handle (RFC 2046 §5.1.4). Undefined when
 * it can handle none.
 */
export function chooseAlternative(
  alternatives: ReadonlyArray<MimePart>,
  canHandle: (part: MimePart) => boolean,
): MimePart | undefined {
  for (let i = alternatives.length - 1; i >= 0; i--) {
    const part = alternatives[i]!;
    if (canHandle(part)) return part;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/** bcharsnospace (RFC 2046 §5.1.1): what a boundary we write may consist of. */
const BOUNDARY_CHARS = /^[0-9A-Za-z'()+_,\-./:=?]$/;

function isValidBoundary(boundary: string): boolean {
  if (boundary.length === 0 || boundary.length > MAX_BOUNDARY_LENGTH) return false;
  for (let i = 0; i < boundary.length; i++) {
    const ch = boundary[i]!;
    // bchars = bcharsnospace / " ", and the last character must not be a space.
    if (!(BOUNDARY_CHARS.test(ch) || (ch === ' ' && i < boundary.length - 1))) return false;
  }
  return true;
}

/** 32 hex digits: 128 random bits, a token, so the Content-Type needs no quotes. */
function randomBoundary(): string {
  return randomBytes(16).toString('hex');
}

/** Header values are one line of text: CR, LF and the other controls but HTAB would break the framing. */
function checkHeaderForBuild(name: string, value: string): void {
  if (!isFieldName(name)) throw new RangeError(`invalid MIME header name ${JSON.stringify(name)}`);
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < SP && code !== HTAB) || code === DEL) {
      throw new RangeError(`control character in the value of MIME header ${name}`);
    }
  }
}

/** One part as it goes between the delimiters: headers, empty line, content. */
function serializePart(part: MimePartInput): Buffer {
  try {
    parseContentType(part.contentType);
  } catch (error) {
    if (error instanceof ParseError) throw new RangeError(`invalid part Content-Type ${JSON.stringify(part.contentType)}: ${error.message}`);
    throw error;
  }
  checkHeaderForBuild('Content-Type', part.contentType);
  let head = `Content-Type: ${part.contentType}\r\n`;
  for (const [name, value] of part.headers ?? []) {
    if (name.toLowerCase() === 'content-type') throw new RangeError('give the part Content-Type as contentType, not among headers');
    checkHeaderForBuild(name, value);
    head += `${name}: ${value}\r\n`;
  }
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'utf8'), part.body]);
}

/**
 * Builds a multipart body (RFC 2046 §5.1.1) from at least one part, with CRLF line ends and
 * binary content (RFC 5621 §3.2). The boundary is random unless given; either way it must not
 * occur anywhere inside the parts (§5.1.1), which is checked: a random one is drawn again, a
 * given one throws a RangeError. Invalid input (no parts, a bad subtype, boundary, Content-Type
 * or header) is a caller bug and throws a RangeError.
 *
 * To nest, build the inner body first and pass it as a part with the Content-Type it returned.
 */
export function buildMultipart(parts: ReadonlyArray<MimePartInput>, options: BuildMultipartOptions = {}): BuiltMultipart {
  if (parts.length === 0) throw new RangeError('a multipart body needs at least one part (RFC 2046 §5.1.1)');
  const subtype = options.subtype ?? 'mixed';
  if (!isToken(subtype)) throw new RangeError(`invalid multipart subtype ${JSON.stringify(subtype)}`);
  const entities = parts.map(serializePart);
  const occursInside = (boundary: string): boolean => entities.some((entity) => entity.includes(boundary, 0, 'latin1'));

  let boundary: string;
  if (options.boundary !== undefined) {
    boundary = options.boundary;
    if (!isValidBoundary(boundary)) throw new RangeError(`invalid multipart boundary ${JSON.stringify(boundary)}`);
    if (occursInside(boundary)) throw new RangeError(`the boundary ${JSON.stringify(boundary)} occurs inside a part`);
  } else {
    // 128 random bits: a repeat is astronomically unlikely, but the rule is absolute, so check.
    do boundary = randomBoundary();
    while (occursInside(boundary));
  }

  const chunks: Buffer[] = [];
  for (const entity of entities) {
    chunks.push(Buffer.from(`--${boundary}\r\n`, 'latin1'), entity, Buffer.from('\r\n', 'latin1'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  const contentType = formatContentType({ type: 'multipart', subtype: subtype.toLowerCase(), params: new Params([['boundary', boundary]]) });
  return { contentType, body: Buffer.concat(chunks) };
}
