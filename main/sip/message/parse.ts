/**
 * Bytes -> SipMessage (RFC 3261 §7, §25; robustness per RFC 4475).
 *
 * The parser reads the start line and splits the header section into rows; header values are
 * interpreted later, on demand (see SipMessage). It is strict where RFC 3261 is strict (the
 * start line, header-name syntax, Content-Length) and tolerant where it is tolerant (whitespace
 * around the colon, folded lines, CRLFs before the start line, LF-only line ends from careless
 * peers). Whatever the input, it returns a message or throws ParseError, and its work is linear
 * in the input: limits on size, header count and line length bound it.
 *
 * It is also on the path of every datagram, so it is written to be cheap. Two readings share
 * the work:
 *  - The one-pass reading (`readUsualMessage`) takes the message every peer sends, CRLF line
 *    ends and nothing wrong. A small WebAssembly module, the head scanner (head-scanner.ts,
 *    source in wasm/head-scanner.ts), finds the lines, the header names, the body and the
 *    bytes above 0x7F with SIMD in one pass, and reads the start line, CSeq, the Vias and the
 *    first From and To when they have the usual shape. This reading then cuts the strings out
 *    of the head, decoded once as latin1, and hands the message those values already read.
 *    At anything else the scanner gives up, wholly or for one value.
 *  - The general reading (`readHead`, `withBody`), which accepts LF-only line ends and
 *    reports every error, then reads the message from the start; values the scanner left
 *    alone are read on demand by header-values.ts, the reference readers.
 * Both give the same message (test/unit/parser-fast-paths.test.ts, head-scanner.test.ts).
 */
import type { ParsedNameAddr, Via } from '../header-values.js';
import { decodeLatin1, decodeUtf8 } from './buffer-text.js';
import { HeaderList, type HeaderRow } from './header-list.js';
import { headerKey, knownHeaderAt } from './header-names.js';
import {
  BODY_START,
  CONTENT_LENGTH,
  CSEQ_METHOD,
  CSEQ_METHOD_END,
  CSEQ_METHOD_START,
  CSEQ_NUMBER,
  CSEQ_READ,
  FIRST_ROW,
  FOLDED,
  HEAD_END,
  METHOD_BY_ID,
  NAME_END,
  NAME_ID,
  NAME_START,
  NON_ASCII as NON_ASCII_COUNT,
  ROW_FIELDS,
  ROW_NON_ASCII,
  SCANNED_NAMES,
  START_KIND,
  START_LINE_NON_ASCII,
  START_LINE_STOP,
  START_METHOD_END_OR_REASON,
  START_METHOD_OR_STATUS,
  START_URI_END,
  START_URI_START,
  VALUE_START,
  VALUE_STOP,
  scan,
  scanHead,
  scannedNameAddr,
  scannedVia,
} from './head-scanner.js';
import { ParseError } from './parse-error.js';
import { SipRequest, SipResponse, type SipMessage } from './sip-message.js';

export interface ParseLimits {
  /** Whole message, head and body. RFC 3261 §18.1.1: a UDP receiver must take 65,535 bytes. */
  maxMessageBytes: number;
  /** Start line plus headers. */
  maxHeadBytes: number;
  /** Header rows after unfolding. */
  maxHeaders: number;
  /** One physical line. */
  maxLineLength: number;
}

export const DEFAULT_PARSE_LIMITS: Readonly<ParseLimits> = {
  maxMessageBytes: 65_535,
  maxHeadBytes: 32_768,
  maxHeaders: 256,
  maxLineLength: 8_192,
};

export interface ParseOptions {
  limits?: Partial<ParseLimits>;
  /**
   * `datagram` (default): a missing Content-Length means the body runs to the end of the
   * data; extra bytes after Content-Length are discarded (§18.3).
   * `stream`: the data was framed by Content-Length, which must therefore be present.
   */
  framing?: 'datagram' | 'stream';
}

const HT = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COLON = 0x3a;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LFLF = Buffer.from('\n\n');
/** The body of a message that has none. A Buffer of length 0 holds nothing, so one can be shared. */
const NO_BODY = Buffer.alloc(0);

export function parseMessage(data: Buffer, options: ParseOptions = {}): SipMessage {
  const limits = options.limits === undefined ? DEFAULT_PARSE_LIMITS : { ...DEFAULT_PARSE_LIMITS, ...options.limits };
  if (data.length > limits.maxMessageBytes) {
    throw new ParseError('too-large', `message of ${data.length} bytes exceeds the limit of ${limits.maxMessageBytes}`);
  }

  // §7.5: CRLFs before the start line are ignored (on streams they are keep-alives).
  let start = 0;
  while (start < data.length && (data[start] === CR || data[start] === LF)) start++;
  if (start === data.length) throw new ParseError('empty', 'no message: only line breaks or nothing');

  // Nearly every message takes the one-pass reading; it leaves anything unusual to the rest.
  const usual = readUsualMessage(data, start, limits, options);
  if (usual !== undefined) return usual;

  // The header section ends at the first empty line: CRLF CRLF, or LF LF from a peer that ends
  // its lines with LF alone. The usual CRLF CRLF is tried first. An LF LF before it would be an
  // empty line inside that candidate head: readHead stops there (returns undefined), and the
  // exact search below, which finds whichever comes first, decides.
  const crlfEnd = data.indexOf(CRLFCRLF, start);
  if (crlfEnd >= 0 && crlfEnd - start <= limits.maxHeadBytes) {
    const message = readHead(HeaderSection.decode(data, start, crlfEnd), limits);
    if (message !== undefined) return withBody(message, data, crlfEnd + 4, options);
  }

  let headEnd = crlfEnd;
  let separatorLength = 4;
  const lfEnd = data.indexOf(LFLF, start);
  if (lfEnd >= 0 && (headEnd < 0 || lfEnd < headEnd)) {
    headEnd = lfEnd;
    separatorLength = 2;
  }
  if (headEnd < 0) {
    if (data.length - start > limits.maxHeadBytes) throw new ParseError('too-large', 'header section too large');
    // A datagram cut short before its empty line: still read what is there, so that a UAS
    // can answer 400 to a request it can address (RFC 4475 §3.1.2.15).
    const error = new ParseError('truncated', 'header section does not end with an empty line');
    const partial = tryPartial(HeaderSection.decode(data, start, data.length), limits);
    if (partial !== undefined) error.partial = partial;
    throw error;
  }
  if (headEnd - start > limits.maxHeadBytes) {
    throw new ParseError('too-large', `header section of ${headEnd - start} bytes exceeds ${limits.maxHeadBytes}`);
  }
  const message = readHead(HeaderSection.decode(data, start, headEnd), limits);
  // Cannot happen: the head ends at the first empty line, so it has none inside.
  if (message === undefined) throw new ParseError('bad-header', 'empty line inside the header section');
  return withBody(message, data, headEnd + separatorLength, options);
}

/** Frames the body that starts at `bodyStart` (§18.3, §20.14: Content-Length counts octets) and sets it. */
function withBody(message: SipMessage, data: Buffer, bodyStart: number, options: ParseOptions): SipMessage {
  const available = data.length - bodyStart;
  let contentLength: number | undefined;
  try {
    contentLength = readContentLength(message.headers.entries());
  } catch (error) {
    throw error instanceof ParseError ? withPartial(error, message) : error;
  }
  if (contentLength === undefined) {
    if (options.framing === 'stream') {
      throw withPartial(new ParseError('missing-header', 'Content-Length is required on stream transports', 'Content-Length'), message);
    }
    message.body = available === 0 ? NO_BODY : data.subarray(bodyStart);
  } else if (contentLength > available) {
    throw withPartial(
      new ParseError('body-length-mismatch', `Content-Length ${contentLength} but only ${available} body bytes`, 'Content-Length'),
      message,
    );
  } else {
    message.body = contentLength === 0 ? NO_BODY : data.subarray(bodyStart, bodyStart + contentLength);
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// The one-pass reading of the usual message
// ---------------------------------------------------------------------------------------------

/**
 * How much of a datagram the one-pass reading gives the head scanner in search of the end of
 * the header section: every usual head fits, and a large body is not copied for nothing.
 */
const USUAL_WINDOW = 8192;

/**
 * Reads a message whose lines all end with CR LF (§7), in one pass over its bytes: the head
 * scanner (head-scanner.ts) finds the lines, the names and the values, and this cuts out the
 * start line and the rows and primes the message with the values the scanner read. It reads
 * exactly what the general reading (readHead, withBody) reads, but only messages that break
 * no rule and take none of its detours: it returns undefined at an LF-only line end, a bare
 * CR, a line or head over the limits, a line that is not `name SWS ":"`, too many rows, a
 * start line that does not parse, or a body that Content-Length does not frame, and the
 * general reading then reads the message again and finds what is wrong.
 */
function readUsualMessage(data: Buffer, start: number, limits: ParseLimits, options: ParseOptions): SipMessage | undefined {
  const windowEnd = Math.min(data.length, start + Math.min(USUAL_WINDOW, limits.maxHeadBytes + 4));
  const rowCount = scanHead(data, start, windowEnd, limits.maxLineLength, limits.maxHeadBytes, limits.maxHeaders);
  if (rowCount < 0) return undefined;

  // The header section ends before the CR LF of its last line; the text keeps that CR LF, so
  // that every line in it, the last too, ends with one (unfoldedValue relies on it). Parts
  // with bytes above 0x7F are decoded again as the UTF-8 they are; the scanner says which.
  const text = decodeLatin1(data, start, start + scan[HEAD_END]! + 2);
  let section: HeaderSection | undefined;

  const rows: HeaderRow[] = [];
  // The Vias, read by the scanner while the bytes are at hand; undefined when a Via row is not
  // of the usual shape, and then the message reads them all on demand as usual.
  let vias: Via[] | undefined = [];
  // The first From and To, likewise (what `from` and `to` read).
  let from: ParsedNameAddr | undefined;
  let to: ParsedNameAddr | undefined;
  let fromSeen = false;
  let toSeen = false;
  for (let index = 0, row = FIRST_ROW; index < rowCount; index++, row += ROW_FIELDS) {
    const valueStart = scan[row + VALUE_START]!;
    const valueStop = scan[row + VALUE_STOP]!;
    let value: string;
    if (scan[row + FOLDED] !== 0) {
      section ??= new HeaderSection(data, start, text, scan[NON_ASCII_COUNT]!);
      value = unfoldedValue(section, valueStart, valueStop);
    } else if (scan[row + ROW_NON_ASCII] === 0) {
      value = text.slice(valueStart, valueStop);
    } else {
      value = decodeUtf8(data, start + valueStart, start + valueStop);
    }
    const nameId = scan[row + NAME_ID]!;
    let name: string;
    let key: string;
    if (nameId >= 0) {
      const known = SCANNED_NAMES[nameId]!;
      name = known.spelling;
      key = known.key;
    } else {
      // A token: ASCII, no decoding needed.
      name = text.slice(scan[row + NAME_START], scan[row + NAME_END]);
      key = headerKey(name);
      // A Content-Length the scanner did not know by name (`CONTENT-LENGTH`): the general reading frames it.
      if (key === 'content-length') return undefined;
    }
    rows.push({ name, key, value });
    if (key === 'via' && vias !== undefined) {
      const via = scan[row + FOLDED] === 0 ? scannedVia(text, valueStart, valueStop) : undefined;
      if (via === undefined) vias = undefined;
      else vias.push(via);
    } else if (key === 'from' && !fromSeen) {
      fromSeen = true;
      if (scan[row + FOLDED] === 0) from = scannedNameAddr(data, start, text, valueStart, valueStop);
    } else if (key === 'to' && !toSeen) {
      toSeen = true;
      if (scan[row + FOLDED] === 0) to = scannedNameAddr(data, start, text, valueStart, valueStop);
    }
  }

  // The body (§18.3): Content-Length counts octets.
  const contentLength = scan[CONTENT_LENGTH]!;
  const bodyStart = start + scan[BODY_START]!;
  const available = data.length - bodyStart;
  let body: Buffer;
  if (contentLength < 0) {
    if (options.framing === 'stream') return undefined;
    body = available === 0 ? NO_BODY : data.subarray(bodyStart);
  } else {
    if (contentLength > available) return undefined;
    body = contentLength === 0 ? NO_BODY : data.subarray(bodyStart, bodyStart + contentLength);
  }

  const message = usualStartLine(data, start, text, new HeaderList(rows));
  if (message === undefined) return undefined;
  message.body = body;
  if (vias !== undefined && vias.length > 0) message.primeVias(vias);
  message.primeAddresses(from, to);
  if (scan[CSEQ_READ] === 1) {
    const methodId = scan[CSEQ_METHOD]!;
    const method = methodId > 0 ? METHOD_BY_ID[methodId]! : text.slice(scan[CSEQ_METHOD_START], scan[CSEQ_METHOD_END]);
    message.primeCSeq({ seq: scan[CSEQ_NUMBER]! >>> 0, method });
  }
  return message;
}

/**
 * The message the last scanned start line announces: read by the scanner when it has the
 * usual shape, else by parseStartLine; undefined when it does not parse (the general reading
 * then reports it).
 */
function usualStartLine(data: Buffer, start: number, text: string, headers: HeaderList): SipMessage | undefined {
  const kind = scan[START_KIND];
  if (kind === 1) {
    const methodId = scan[START_METHOD_OR_STATUS]!;
    const method = methodId > 0 ? METHOD_BY_ID[methodId]! : text.slice(0, scan[START_METHOD_END_OR_REASON]);
    return new SipRequest(method, text.slice(scan[START_URI_START], scan[START_URI_END]), headers, NO_BODY, SIP_2_0);
  }
  const stop = scan[START_LINE_STOP]!;
  if (kind === 2) {
    const reasonStart = scan[START_METHOD_END_OR_REASON]!;
    let reason = '';
    if (reasonStart >= 0) reason = scan[START_LINE_NON_ASCII] === 0 ? text.slice(reasonStart, stop) : decodeUtf8(data, start + reasonStart, start + stop);
    return new SipResponse(scan[START_METHOD_OR_STATUS]!, reason, headers, NO_BODY, SIP_2_0);
  }
  const line = scan[START_LINE_NON_ASCII] === 0 ? text.slice(0, stop) : decodeUtf8(data, start, start + stop);
  try {
    return parseStartLine(line, headers);
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

/**
 * The value of a folded row: its first line after the colon and each continuation line,
 * trimmed, the non-empty ones joined with one SP (§7.3.1), as readHead joins them. `stop` is
 * where the last line stops; each line ends with CR LF.
 */
function unfoldedValue(section: HeaderSection, valueStart: number, stop: number): string {
  const text = section.text;
  let lineStop = text.indexOf('\r', valueStart);
  let value = trimmedSlice(section, valueStart, lineStop);
  while (lineStop < stop) {
    const lineStart = lineStop + 2;
    lineStop = text.indexOf('\r', lineStart);
    const more = trimmedSlice(section, lineStart, lineStop);
    if (more.length > 0) value = value.length === 0 ? more : `${value} ${more}`;
  }
  return value;
}

/** How many characters of the latin1 `text` are bytes above 0x7F (each is two bytes in UTF-8: the excess counts them). */
function nonAsciiCount(text: string): number {
  return Buffer.byteLength(text, 'utf8') - text.length;
}

/** A byte above 0x7F, in latin1 text. */
const NON_ASCII = /[\x80-\xff]/g;

/**
 * The header section, as text. It is UTF-8 (§7.3.1) but nearly always plain ASCII, so it is
 * decoded as latin1: one character per byte, so that offsets in the text are offsets in the
 * bytes, and always a one-byte string. That is faster to decode and, more, to scan: V8 runs
 * string code slower once some strings are two-byte, and a single Cyrillic display name would
 * otherwise make every value of the message two-byte. The parts that do have bytes above 0x7F
 * are decoded as UTF-8 by `slice`; they never split a UTF-8 sequence, since they start and end
 * at ASCII characters (line ends, the colon, SP, HT).
 */
class HeaderSection {
  /** The bytes as latin1. */
  readonly text: string;
  /** How many bytes above 0x7F the text has that `slice` has not decoded yet. */
  private nonAsciiLeft: number;
  /** The first byte above 0x7F at or after `searchedFrom`, or text.length if there is none. */
  private nextNonAscii: number;
  private searchedFrom = 0;

  /**
   * `text` is data[start, …) as latin1, at least the header section and possibly more (the
   * one-pass reading decodes a window before it knows where the section ends);
   * `nonAsciiCount` is how many bytes above 0x7F the header section has.
   */
  constructor(
    private readonly data: Buffer,
    private readonly start: number,
    text: string,
    nonAsciiCount: number,
  ) {
    this.text = text;
    this.nonAsciiLeft = nonAsciiCount;
    this.nextNonAscii = nonAsciiCount === 0 ? text.length : -1;
  }

  /** The section data[start, end). */
  static decode(data: Buffer, start: number, end: number): HeaderSection {
    const text = decodeLatin1(data, start, end);
    return new HeaderSection(data, start, text, nonAsciiCount(text));
  }

  /**
   * text[from, to), decoded as the UTF-8 it is. Calls cover ranges that do not overlap, in
   * order, so that once every byte above 0x7F has been decoded no more searching is needed.
   */
  slice(from: number, to: number): string {
    if (!this.hasNonAscii(from, to)) return this.text.slice(from, to);
    this.nonAsciiLeft -= Buffer.byteLength(this.text.slice(from, to), 'utf8') - (to - from);
    if (this.nonAsciiLeft === 0) {
      this.nextNonAscii = this.text.length;
      this.searchedFrom = 0;
    }
    return decodeUtf8(this.data, this.start + from, this.start + to);
  }

  /** The length in characters of text[from, to) decoded as UTF-8 (any range, any order). */
  decodedLength(from: number, to: number): number {
    return this.data.toString('utf8', this.start + from, this.start + to).length;
  }

  /** Whether text[from, to) has a byte above 0x7F. Linear over calls whose `from` does not go back. */
  hasNonAscii(from: number, to: number): boolean {
    if (this.nextNonAscii < from || from < this.searchedFrom) {
      NON_ASCII.lastIndex = from;
      this.nextNonAscii = NON_ASCII.test(this.text) ? NON_ASCII.lastIndex - 1 : this.text.length;
      this.searchedFrom = from;
    }
    return this.nextNonAscii < to;
  }
}

/**
 * The start line and header rows of a message, given its header section as text. A broken
 * request line over sound headers still yields the message, attached to the ParseError as
 * `partial` with the method and URI read leniently, so that the 400 can be sent (RFC 4475
 * §3.1.2.7-§3.1.2.10 want an answer, not silence). Undefined when the text has an empty line:
 * the header section really ends there, and the caller reads it again up to that line.
 */
function readHead(section: HeaderSection, limits: ParseLimits): SipMessage | undefined {
  const head = section.text;
  const n = head.length;
  // The next CR at or after the current line, or n when there is none: every CR must end a
  // line (it is followed by LF, or by the end of the text), which one search per line checks.
  let nextCr = -1;

  let lineEnd = lineEndFrom(head, 0);
  let stop = lineEnd > 0 && head.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd;
  nextCr = checkLine(section, 0, stop, nextCr, limits);
  const startLine = section.slice(0, stop);

  // Header rows; a line starting with SP or HT continues the previous row (§7.3.1). The row
  // being read is held in `name`, `key`, `value` until the next one starts.
  const rows: HeaderRow[] = [];
  let name: string | undefined;
  let key = '';
  let value = '';
  let lineStart = lineEnd + 1;
  while (lineStart < n) {
    lineEnd = lineEndFrom(head, lineStart);
    if (lineEnd === lineStart) return undefined;
    stop = head.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd;
    nextCr = checkLine(section, lineStart, stop, nextCr, limits);
    const from = lineStart;
    lineStart = lineEnd + 1;

    const first = head.charCodeAt(from);
    if (first === SP || first === HT) {
      if (name === undefined) throw new ParseError('bad-header', 'continuation line before the first header');
      const more = trimmedSlice(section, from, stop);
      if (more.length > 0) value = value.length === 0 ? more : `${value} ${more}`;
      continue;
    }
    // Name, SWS, colon. A usual name written the usual way is recognised where it stands;
    // any other goes through the general reading, which also finds every error.
    let nextName: string;
    let nextKey: string;
    let colon = -1;
    const known = knownHeaderAt(head, from);
    if (known !== undefined) {
      let afterName = from + known.spelling.length;
      while (isSws(head.charCodeAt(afterName))) afterName++;
      if (head.charCodeAt(afterName) === COLON) colon = afterName;
    }
    if (known !== undefined && colon >= 0) {
      nextName = known.spelling;
      nextKey = known.key;
    } else {
      colon = head.indexOf(':', from);
      if (colon <= from || colon >= stop) {
        throw new ParseError('bad-header', `header line without a name and colon: ${preview(section.slice(from, stop))}`);
      }
      // The name may be followed by SWS before the colon; the line does not start with any.
      let nameEnd = colon;
      while (isSws(head.charCodeAt(nameEnd - 1))) nameEnd--;
      nextName = section.slice(from, nameEnd);
      if (!isToken(nextName)) throw new ParseError('bad-header', `invalid header name: ${preview(nextName)}`);
      nextKey = headerKey(nextName);
    }
    if (name !== undefined) rows.push({ name, key, value });
    if (rows.length >= limits.maxHeaders) {
      throw new ParseError('too-many-headers', `more than ${limits.maxHeaders} header rows`);
    }
    name = nextName;
    key = nextKey;
    value = trimmedSlice(section, colon + 1, stop);
  }
  if (name !== undefined) rows.push({ name, key, value });

  const headers = new HeaderList(rows);
  try {
    return parseStartLine(startLine, headers);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    const lenient = lenientRequest(startLine, headers);
    if (lenient !== undefined) error.partial = lenient;
    throw error;
  }
}

/** The index of the LF ending the line that starts at `from`, or the end of the text. */
function lineEndFrom(text: string, from: number): number {
  const end = text.indexOf('\n', from);
  return end < 0 ? text.length : end;
}

/**
 * Checks the line [from, stop) (its CR LF or LF excluded): not longer than the limit, and no CR
 * inside. `nextCr` is the last CR found, or -1; returns the one to pass for the next line.
 */
function checkLine(section: HeaderSection, from: number, stop: number, nextCr: number, limits: ParseLimits): number {
  const text = section.text;
  // The limit counts characters; bytes are as many unless some are above 0x7F.
  if (stop - from > limits.maxLineLength) {
    const length = section.hasNonAscii(from, stop) ? section.decodedLength(from, stop) : stop - from;
    if (length > limits.maxLineLength) {
      throw new ParseError('line-too-long', `a line of ${length} characters exceeds ${limits.maxLineLength}`);
    }
  }
  if (nextCr < from) {
    nextCr = text.indexOf('\r', from);
    if (nextCr < 0) nextCr = text.length;
  }
  if (nextCr < stop) throw new ParseError('bad-header', 'bare CR inside a line');
  return nextCr;
}

/** The text of [start, end) without leading and trailing SP and HT (SWS), and nothing else: other Unicode spaces are content. */
function trimmedSlice(section: HeaderSection, start: number, end: number): string {
  const text = section.text;
  while (start < end && isSws(text.charCodeAt(start))) start++;
  while (end > start && isSws(text.charCodeAt(end - 1))) end--;
  return section.slice(start, end);
}

function isSws(code: number): boolean {
  return code === SP || code === HT;
}

/** `INVITE  <sip:a@b>  SIP/2.0 ` read as loosely as possible, for answering it with 400. */
function lenientRequest(line: string, headers: HeaderList): SipRequest | undefined {
  const parts = line.trim().split(/[ \t]+/);
  const method = parts[0];
  const uri = parts[1];
  if (method === undefined || uri === undefined || !isToken(method) || method.toUpperCase().startsWith('SIP/')) return undefined;
  return new SipRequest(method, uri.replace(/^<|>$/g, ''), headers, NO_BODY);
}

function tryPartial(section: HeaderSection, limits: ParseLimits): SipMessage | undefined {
  try {
    // (The data has no empty line at all, so readHead does not stop early.)
    return readHead(section, limits);
  } catch (error) {
    if (error instanceof ParseError) return error.partial;
    throw error;
  }
}

/** Parses the start line and makes the message object it announces (§7.1, §7.2). */
function parseStartLine(line: string, headers: HeaderList): SipMessage {
  if (line.length > 4 && startsWithSipSlash(line)) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    const sp1 = line.indexOf(' ');
    if (sp1 < 0) throw new ParseError('bad-start-line', `status line without a status code: ${preview(line)}`);
    const version = sp1 === 7 && isSip20At(line, 0) ? SIP_2_0 : checkVersion(line.slice(0, sp1));
    const sp2 = line.indexOf(' ', sp1 + 1);
    const codeEnd = sp2 < 0 ? line.length : sp2;
    const status = statusCodeAt(line, sp1 + 1, codeEnd);
    if (status < 0) throw new ParseError('bad-status', `invalid status code: ${preview(line.slice(sp1 + 1, codeEnd))}`);
    const reason = sp2 < 0 ? '' : line.slice(sp2 + 1);
    return new SipResponse(status, reason, headers, NO_BODY, version);
  }

  // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP each (§7.1, RFC 4475 §3.1.2.9).
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  // A line ending in exactly " SIP/2.0" has no further SP to look for.
  const usualVersion = sp2 >= 0 && line.length - sp2 === 8 && isSip20At(line, sp2 + 1);
  if (sp1 <= 0 || sp2 < 0 || (!usualVersion && line.indexOf(' ', sp2 + 1) >= 0)) {
    throw new ParseError('bad-start-line', `request line is not "METHOD URI SIP/2.0": ${preview(line)}`);
  }
  const method = line.slice(0, sp1);
  const uri = line.slice(sp1 + 1, sp2);
  if (!isToken(method)) throw new ParseError('bad-method', `invalid method: ${preview(method)}`);
  if (!REQUEST_URI_SHAPE.test(uri)) throw new ParseError('bad-uri', `invalid Request-URI: ${preview(uri)}`);
  const version = usualVersion ? SIP_2_0 : checkVersion(line.slice(sp2 + 1));
  return new SipRequest(method, uri, headers, NO_BODY, version);
}

/** `SIP/`, case-insensitively, at the start of `line`. */
function startsWithSipSlash(line: string): boolean {
  return (
    (line.charCodeAt(0) | 0x20) === 0x73 && // s
    (line.charCodeAt(1) | 0x20) === 0x69 && // i
    (line.charCodeAt(2) | 0x20) === 0x70 && // p
    line.charCodeAt(3) === 0x2f // /
  );
}

/** Status-Code = 3DIGIT, 100-699 (§7.2, §21): its value, or -1. */
function statusCodeAt(line: string, start: number, end: number): number {
  if (end - start !== 3) return -1;
  const a = line.charCodeAt(start) - 0x30;
  const b = line.charCodeAt(start + 1) - 0x30;
  const c = line.charCodeAt(start + 2) - 0x30;
  if (a < 1 || a > 6 || !(b >= 0 && b <= 9) || !(c >= 0 && c <= 9)) return -1;
  return a * 100 + b * 10 + c;
}

const SIP_2_0 = 'SIP/2.0';

/** `SIP/2.0` at `start` in `line` (then no need to cut it out to compare it). */
function isSip20At(line: string, start: number): boolean {
  return (
    line.charCodeAt(start) === 0x53 && // S
    line.charCodeAt(start + 1) === 0x49 && // I
    line.charCodeAt(start + 2) === 0x50 && // P
    line.charCodeAt(start + 3) === 0x2f && // /
    line.charCodeAt(start + 4) === 0x32 && // 2
    line.charCodeAt(start + 5) === 0x2e && // .
    line.charCodeAt(start + 6) === 0x30 // 0
  );
}
const VERSION_SHAPE = /^SIP\/\d{1,3}\.\d{1,3}$/i;

/**
 * Any `SIP/x.y` is syntactically a version; only 2.0 is ours, and a UAS answers others with
 * 505 (RFC 4475 §3.1.2.16), so that is the UA's decision, not a parse error. Returns the version.
 */
function checkVersion(version: string): string {
  if (version === SIP_2_0) return SIP_2_0;
  if (!VERSION_SHAPE.test(version)) throw new ParseError('bad-version', `invalid SIP version: ${preview(version)}`);
  return version;
}

/**
 * The Request-URI is parsed only when someone asks (`requestUri`); here it must just look like
 * an absolute URI: scheme ":" and then no whitespace, "<" or ">". (A regular expression is the
 * fastest way to check that here: V8 compiles it to a tight native scan.)
 */
const REQUEST_URI_SHAPE = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]+$/;

/** Content-Length, requiring every row to agree (several different values: RFC 4475 §3.3.9). */
function readContentLength(rows: readonly HeaderRow[]): number | undefined {
  let result: number | undefined;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (row.key !== 'content-length') continue;
    const value = smallNumber(row.value);
    if (value < 0) {
      throw new ParseError('bad-content-length', `invalid Content-Length: ${preview(row.value)}`, 'Content-Length');
    }
    if (result !== undefined && result !== value) {
      throw new ParseError('bad-content-length', 'several Content-Length headers disagree', 'Content-Length');
    }
    result = value;
  }
  return result;
}

/** The value of 1 to 9 ASCII digits (`^\d{1,9}$`), or -1 for anything else. */
function smallNumber(text: string): number {
  const n = text.length;
  if (n === 0 || n > 9) return -1;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (!(digit >= 0 && digit <= 9)) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/** RFC 3261 §25.1 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~". */
const TOKEN_CHARS = (() => {
  // 256 wide: latin1 text has codes up to 0xFF.
  const table = new Uint8Array(256);
  for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~') table[ch.charCodeAt(0)] = 1;
  return table;
})();

export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 128 || TOKEN_CHARS[code] !== 1) return false;
  }
  return true;
}

function withPartial(error: ParseError, message: SipMessage): ParseError {
  error.partial = message;
  return error;
}

function preview(text: string): string {
  const short = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(short);
}
