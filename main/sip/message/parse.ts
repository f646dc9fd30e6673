/**
 * Bytes -> SipMessage (RFC 3261 §7, §25; robustness per RFC 4475).
 *
 * The parser reads the start line and splits the header section into rows; header values are
 * interpreted later, on demand (see SipMessage). It is strict where RFC 3261 is strict (the
 * start line, header-name syntax, Content-Length) and tolerant where it is tolerant (whitespace
 * around the colon, folded lines, CRLFs before the start line, LF-only line ends from careless
 * peers). Whatever the input, it returns a message or throws ParseError, and its work is linear
 * in the input: limits on size, header count and line length bound it.
 */
import { HeaderList, type HeaderRow } from './header-list.js';
import { headerKey } from './header-names.js';
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

const CR = 0x0d;
const LF = 0x0a;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LFLF = Buffer.from('\n\n');

export function parseMessage(data: Buffer, options: ParseOptions = {}): SipMessage {
  const limits = options.limits === undefined ? DEFAULT_PARSE_LIMITS : { ...DEFAULT_PARSE_LIMITS, ...options.limits };
  if (data.length > limits.maxMessageBytes) {
    throw new ParseError('too-large', `message of ${data.length} bytes exceeds the limit of ${limits.maxMessageBytes}`);
  }

  // §7.5: CRLFs before the start line are ignored (on streams they are keep-alives).
  let start = 0;
  while (start < data.length && (data[start] === CR || data[start] === LF)) start++;
  if (start === data.length) throw new ParseError('empty', 'no message: only line breaks or nothing');

  let headEnd = data.indexOf(CRLFCRLF, start);
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
    const partial = tryPartial(() => readHead(data.toString('utf8', start), limits));
    if (partial !== undefined) error.partial = partial;
    throw error;
  }
  if (headEnd - start > limits.maxHeadBytes) {
    throw new ParseError('too-large', `header section of ${headEnd - start} bytes exceeds ${limits.maxHeadBytes}`);
  }

  const message = readHead(data.toString('utf8', start, headEnd), limits);

  // Body framing (§18.3, §20.14): Content-Length counts octets.
  const bodyStart = headEnd + separatorLength;
  const available = data.length - bodyStart;
  let contentLength: number | undefined;
  try {
    contentLength = readContentLength(message.headers);
  } catch (error) {
    throw error instanceof ParseError ? withPartial(error, message) : error;
  }
  if (contentLength === undefined) {
    if (options.framing === 'stream') {
      throw withPartial(new ParseError('missing-header', 'Content-Length is required on stream transports', 'Content-Length'), message);
    }
    message.body = data.subarray(bodyStart);
  } else if (contentLength > available) {
    throw withPartial(
      new ParseError('body-length-mismatch', `Content-Length ${contentLength} but only ${available} body bytes`, 'Content-Length'),
      message,
    );
  } else {
    message.body = data.subarray(bodyStart, bodyStart + contentLength);
  }
  return message;
}

/**
 * The start line and header rows of a message, given its header section as text. A broken
 * request line over sound headers still yields the message, attached to the ParseError as
 * `partial` with the method and URI read leniently, so that the 400 can be sent (RFC 4475
 * §3.1.2.7-§3.1.2.10 want an answer, not silence).
 */
function readHead(head: string, limits: ParseLimits): SipMessage {
  const rows: HeaderRow[] = [];
  let lineEnd = nextLineEnd(head, 0);
  const startLine = lineAt(head, 0, lineEnd, limits);

  // Header rows; a line starting with SP or HT continues the previous row (§7.3.1).
  let lineStart = lineEnd + 1;
  let last: { name: string; key: string; value: string } | undefined;
  while (lineStart < head.length) {
    lineEnd = nextLineEnd(head, lineStart);
    const line = lineAt(head, lineStart, lineEnd, limits);
    lineStart = lineEnd + 1;
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      if (last === undefined) throw new ParseError('bad-header', 'continuation line before the first header');
      const more = trimSws(line);
      if (more.length > 0) last.value = last.value.length === 0 ? more : `${last.value} ${more}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ParseError('bad-header', `header line without a name and colon: ${preview(line)}`);
    const name = trimSws(line.slice(0, colon));
    if (!isToken(name)) throw new ParseError('bad-header', `invalid header name: ${preview(name)}`);
    if (last !== undefined) rows.push(last);
    if (rows.length >= limits.maxHeaders) {
      throw new ParseError('too-many-headers', `more than ${limits.maxHeaders} header rows`);
    }
    last = { name, key: headerKey(name), value: trimSws(line.slice(colon + 1)) };
  }
  if (last !== undefined) rows.push(last);

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

/** `INVITE  <sip:a@b>  SIP/2.0 ` read as loosely as possible, for answering it with 400. */
function lenientRequest(line: string, headers: HeaderList): SipRequest | undefined {
  const parts = line.trim().split(/[ \t]+/);
  const method = parts[0];
  const uri = parts[1];
  if (method === undefined || uri === undefined || !isToken(method) || method.toUpperCase().startsWith('SIP/')) return undefined;
  return new SipRequest(method, uri.replace(/^<|>$/g, ''), headers, Buffer.alloc(0));
}

function tryPartial(read: () => SipMessage): SipMessage | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof ParseError) return error.partial;
    throw error;
  }
}

/** Parses the start line and makes the message object it announces (§7.1, §7.2). */
function parseStartLine(line: string, headers: HeaderList): SipMessage {
  const empty = Buffer.alloc(0);
  if (line.length > 4 && line.slice(0, 4).toUpperCase() === 'SIP/') {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    const sp1 = line.indexOf(' ');
    if (sp1 < 0) throw new ParseError('bad-start-line', `status line without a status code: ${preview(line)}`);
    const version = line.slice(0, sp1);
    checkVersion(version);
    const sp2 = line.indexOf(' ', sp1 + 1);
    const code = sp2 < 0 ? line.slice(sp1 + 1) : line.slice(sp1 + 1, sp2);
    if (!/^[1-6]\d\d$/.test(code)) throw new ParseError('bad-status', `invalid status code: ${preview(code)}`);
    const reason = sp2 < 0 ? '' : line.slice(sp2 + 1);
    return new SipResponse(Number(code), reason, headers, empty, version);
  }

  // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP each (§7.1, RFC 4475 §3.1.2.9).
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) {
    throw new ParseError('bad-start-line', `request line is not "METHOD URI SIP/2.0": ${preview(line)}`);
  }
  const method = line.slice(0, sp1);
  const uri = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!isToken(method)) throw new ParseError('bad-method', `invalid method: ${preview(method)}`);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]+$/.test(uri)) throw new ParseError('bad-uri', `invalid Request-URI: ${preview(uri)}`);
  checkVersion(version);
  return new SipRequest(method, uri, headers, empty, version);
}

/**
 * Any `SIP/x.y` is syntactically a version; only 2.0 is ours, and a UAS answers others with
 * 505 (RFC 4475 §3.1.2.16), so that is the UA's decision, not a parse error.
 */
function checkVersion(version: string): void {
  if (!/^SIP\/\d{1,3}\.\d{1,3}$/i.test(version)) throw new ParseError('bad-version', `invalid SIP version: ${preview(version)}`);
}

/** Content-Length, requiring every row to agree (several different values: RFC 4475 §3.3.9). */
function readContentLength(headers: HeaderList): number | undefined {
  let result: number | undefined;
  for (const row of headers.entries()) {
    if (row.key !== 'content-length') continue;
    if (!/^\d{1,9}$/.test(row.value)) {
      throw new ParseError('bad-content-length', `invalid Content-Length: ${preview(row.value)}`, 'Content-Length');
    }
    const value = Number(row.value);
    if (result !== undefined && result !== value) {
      throw new ParseError('bad-content-length', 'several Content-Length headers disagree', 'Content-Length');
    }
    result = value;
  }
  return result;
}

function nextLineEnd(text: string, from: number): number {
  const end = text.indexOf('\n', from);
  return end < 0 ? text.length : end;
}

/** The line between `from` and the LF at `end`, without its CR. */
function lineAt(text: string, from: number, end: number, limits: ParseLimits): string {
  const stop = end > from && text.charCodeAt(end - 1) === CR ? end - 1 : end;
  if (stop - from > limits.maxLineLength) {
    throw new ParseError('line-too-long', `a line of ${stop - from} characters exceeds ${limits.maxLineLength}`);
  }
  const line = text.slice(from, stop);
  if (line.indexOf('\r') >= 0) throw new ParseError('bad-header', 'bare CR inside a line');
  return line;
}

/** Strips SP and HT (SWS), and nothing else: other Unicode spaces are content. */
function trimSws(text: string): string {
  let a = 0;
  let b = text.length;
  while (a < b && isSws(text.charCodeAt(a))) a++;
  while (b > a && isSws(text.charCodeAt(b - 1))) b--;
  return a === 0 && b === text.length ? text : text.slice(a, b);
}

function isSws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** RFC 3261 §25.1 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~". */
const TOKEN_CHARS = (() => {
  const table = new Uint8Array(128);
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
