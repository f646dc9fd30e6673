/**
 * Cuts a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3, §7.5), without doing I/O.
 *
 * On a stream, the only thing that says where a message ends is its Content-Length header
 * (§18.3: "the Content-Length header field MUST be used with stream oriented transports";
 * §20.14). So the framer reads just enough of each message head to find that header, then
 * counts body octets. It does not parse SIP: the bytes of each message go up whole, and the
 * parser (main/sip/message) decides whether they are a valid request or response.
 *
 * What it does beyond counting, and why:
 * - CRLFs before a start line are skipped (§7.5). Between messages they are also the
 *   RFC 5626 §4.4.1 keep-alive: a double CRLF is a "ping" (the connection owner answers a
 *   single CRLF), a single CRLF is a "pong".
 * - The head ends at the first empty line. CRLF is the rule (§7); a bare LF is tolerated as a
 *   line end, so LFLF also ends a head.
 * - Content-Length is found by name, case-insensitively, in its long or compact form `l`
 *   (§7.3.3), with any whitespace before or after the colon, and with folded continuation
 *   lines joined (§7.3.1) - a folded line inside another header is never mistaken for it.
 *   Conflicting Content-Length values make the message unframeable (RFC 4475 §3.3.9, "mcl01").
 * - The first line must look like a SIP start line (a token first, `SIP/` where §7.1/§7.2 put
 *   it). That is a plausibility check, not parsing: it lets a connection that carries HTTP,
 *   a TLS handshake or noise be closed at once instead of after 16 KiB.
 * - Limits: a head longer than `maxHeadBytes`, or a message (head + body) longer than
 *   `maxMessageBytes`, is an error as soon as it is known, so the framer never holds more than
 *   one unfinished message.
 *
 * After an `error` event the framer is dead: the stream can no longer be resynchronised, and
 * its owner must close the connection. Every later `push` returns no events.
 *
 * Cost is O(n) in the bytes pushed: each byte is scanned once for line ends (the scan
 * position survives between pushes), and buffered bytes are copied a bounded number of times.
 */
import type { ParseErrorCode } from '../message/parse-error.js';

/** Why a stream could not be framed; a subset of the parser's codes, so logs speak one language. */
export type FramingErrorCode = Extract<
  ParseErrorCode,
  'too-large' | 'bad-start-line' | 'bad-content-length' | 'missing-header'
>;

export type FramerEvent =
  /** One whole message: head, empty line and exactly Content-Length body octets. A fresh copy. */
  | { type: 'message'; data: Buffer }
  /** A double CRLF between messages (RFC 5626 §4.4.1): answer with a single CRLF. */
  | { type: 'keepalive-ping' }
  /** A single CRLF between messages (RFC 5626 §4.4.1): the peer answered our ping. */
  | { type: 'keepalive-pong' }
  /** The stream cannot be framed any further; close the connection. */
  | { type: 'error'; code: FramingErrorCode; reason: string };

/** Where the framer is: between messages, inside a head, inside a body, or dead. */
export type FramerPhase = 'idle' | 'head' | 'body' | 'failed';

export interface StreamFramerOptions {
  /** Longest accepted message head, start line to empty line inclusive. */
  maxHeadBytes?: number;
  /** Longest accepted message, head plus body. */
  maxMessageBytes?: number;
}

export const DEFAULT_MAX_HEAD_BYTES = 16 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;

/** "content-length" in lower case, compared byte by byte to avoid decoding every header name. */
const CONTENT_LENGTH = Buffer.from('content-length', 'latin1');

/** A response starts with the version (§7.2); a request ends with it (§7.1). */
const RESPONSE_START = /^SIP\//i;
const REQUEST_END = /[ \t]SIP\/[^ \t]*[ \t]*$/i;

/** token characters of RFC 3261 §25.1: the first byte of any method, and of "SIP/2.0". */
function isTokenByte(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || // DIGIT
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x2d || b === 0x2e || b === 0x21 || b === 0x25 || b === 0x2a || // - . ! % *
    b === 0x5f || b === 0x2b || b === 0x60 || b === 0x27 || b === 0x7e // _ + ` ' ~
  );
}

/** A short printable excerpt of raw bytes for error reasons (never the whole line). */
function excerpt(bytes: Buffer): string {
  const text = bytes.subarray(0, 40).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return bytes.length > 40 ? `${text}...` : text;
}

export class StreamFramer {
  readonly maxHeadBytes: number;
  readonly maxMessageBytes: number;

  /**
   * Unconsumed bytes live in store[0, stored). Index 0 is always the first byte of the message
   * being framed (or of the bytes between messages); `push` compacts after each round.
   */
  private store: Buffer = Buffer.alloc(0);
  private stored = 0;
  private currentPhase: FramerPhase = 'idle';

  // idle phase: line ends seen in the current run of CR/LF between messages
  private lineEndsBetween = 0;
  /** A lone CRLF at the end of a push was already reported as a pong. */
  private pongReported = false;
  /** This side sent a ping and its pong has not come yet (see `awaitPong`). */
  private pongAwaited = false;

  // head phase (indices into store)
  private lineStart = 0;
  private scanFrom = 0;
  private lineNumber = 0;
  private inContentLengthHeader = false;
  private contentLengthText = '';
  private contentLength: number | undefined;

  // body phase
  private messageEnd = 0;

  constructor(options: StreamFramerOptions = {}) {
    this.maxHeadBytes = options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!(this.maxHeadBytes > 0) || !(this.maxMessageBytes > 0)) {
      throw new RangeError('StreamFramer limits must be positive');
    }
  }

  get phase(): FramerPhase {
    return this.currentPhase;
  }

  /** Bytes held for the unfinished message; never more than `maxMessageBytes` between pushes. */
  get bufferedBytes(): number {
    return this.stored;
  }

  /**
   * Says that this side has just sent a ping (RFC 5626 §4.4.1), so a pong is expected. Until it
   * comes, a lone CRLF at the end of a push is final: it is that pong, and a CRLF at the start
   * of the next push begins a new run rather than completing a ping split across segments.
   * Without this hint the split-ping reading wins (see `skipBetweenMessages`), which would turn
   * the second of two pongs in a row - the normal traffic of a client keeping a flow alive -
   * into a ping.
   */
  awaitPong(): void {
    this.pongAwaited = true;
  }

  /** Feeds the next bytes of the stream; returns what they completed, in stream order. */
  push(chunk: Uint8Array): FramerEvent[] {
    const events: FramerEvent[] = [];
    // A caller may hand over a huge chunk; taking it in slices keeps the store at most one
    // unfinished message plus one slice, whatever the chunk size.
    const slice = this.maxMessageBytes;
    for (let offset = 0; offset < chunk.length && this.currentPhase !== 'failed'; offset += slice) {
      this.append(chunk.subarray(offset, offset + slice));
      this.frame(events);
    }
    return events;
  }

  private append(bytes: Uint8Array): void {
    const needed = this.stored + bytes.length;
    if (needed > this.store.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.store.length * 2, 1024));
      this.store.copy(grown, 0, 0, this.stored);
      this.store = grown;
    }
    this.store.set(bytes, this.stored);
    this.stored = needed;
  }

  /** Frames as much as the stored bytes allow, then drops what was consumed. */
  private frame(events: FramerEvent[]): void {
    let pos = 0; // first unconsumed byte
    for (;;) {
      if (this.currentPhase === 'idle') {
        pos = this.skipBetweenMessages(pos, events);
        if (this.currentPhase === 'idle') break; // ran out of bytes
      } else if (this.currentPhase === 'head') {
        if (!this.scanHead(pos, events)) break;
      } else if (this.currentPhase === 'body') {
        if (this.stored < this.messageEnd) break;
        events.push({ type: 'message', data: Buffer.from(this.store.subarray(pos, this.messageEnd)) });
        pos = this.messageEnd;
        this.currentPhase = 'idle';
        this.lineEndsBetween = 0;
        this.pongReported = false;
      } else {
        return; // failed: fail() already released the store
      }
    }
    this.compact(pos);
  }

  /**
   * Skips CR/LF before a start line (§7.5), reporting RFC 5626 keep-alives, and enters the
   * head phase at the first other byte. Returns the new consumed position.
   */
  private skipBetweenMessages(pos: number, events: FramerEvent[]): number {
    const bytes = this.store;
    while (pos < this.stored) {
      const b = bytes[pos]!;
      if (b === LF) {
        pos++;
        this.lineEndsBetween++;
        if (this.lineEndsBetween === 2) {
          events.push({ type: 'keepalive-ping' });
          this.lineEndsBetween = 0;
          this.pongReported = false;
        }
        continue;
      }
      if (b === CR) {
        pos++;
        continue;
      }
      if (this.lineEndsBetween === 1 && !this.pongReported) {
        events.push({ type: 'keepalive-pong' });
        this.pongAwaited = false;
      }
      this.lineEndsBetween = 0;
      this.pongReported = false;
      if (!isTokenByte(b)) {
        this.fail(events, 'bad-start-line', `stream does not start with a SIP start line: "${excerpt(bytes.subarray(pos, this.stored))}"`);
        return pos;
      }
      this.currentPhase = 'head';
      this.lineStart = pos;
      this.scanFrom = pos;
      this.lineNumber = 0;
      this.inContentLengthHeader = false;
      this.contentLengthText = '';
      this.contentLength = undefined;
      return pos;
    }
    // A lone CRLF at the end of what arrived is a pong, reported now rather than when the next
    // message comes. If the next push starts with another CRLF, the pair is a ping split across
    // segments and is reported as a ping as well: answering a ping matters more than the
    // occasional extra pong event - unless our own ping awaits this pong: then the CRLF is
    // taken as final and the run ends here.
    if (this.lineEndsBetween === 1 && !this.pongReported) {
      events.push({ type: 'keepalive-pong' });
      this.pongReported = true;
      if (this.pongAwaited) {
        this.pongAwaited = false;
        this.lineEndsBetween = 0;
        this.pongReported = false;
      }
    }
    return pos;
  }

  /**
   * Scans complete head lines from `scanFrom`. Returns true when the head is complete (phase is
   * now 'body') or the framer failed, false when more bytes are needed.
   */
  private scanHead(messageStart: number, events: FramerEvent[]): boolean {
    const bytes = this.store.subarray(0, this.stored);
    for (;;) {
      const lf = bytes.indexOf(LF, this.scanFrom);
      if (lf === -1) {
        this.scanFrom = this.stored;
        if (this.stored - messageStart > this.maxHeadBytes) {
          this.fail(events, 'too-large', `message head exceeds ${this.maxHeadBytes} bytes`);
          return true;
        }
        return false;
      }
      if (lf + 1 - messageStart > this.maxHeadBytes) {
        this.fail(events, 'too-large', `message head exceeds ${this.maxHeadBytes} bytes`);
        return true;
      }
      const lineEnd = lf > this.lineStart && bytes[lf - 1] === CR ? lf - 1 : lf;
      const line = bytes.subarray(this.lineStart, lineEnd);
      this.lineStart = this.scanFrom = lf + 1;

      if (line.length === 0) return this.endHead(messageStart, lf + 1, events);

      if (this.lineNumber++ === 0) {
        const text = line.toString('latin1');
        if (!RESPONSE_START.test(text) && !REQUEST_END.test(text)) {
          this.fail(events, 'bad-start-line', `not a SIP start line: "${excerpt(line)}"`);
          return true;
        }
      } else if (line[0] === SP || line[0] === HT) {
        // Folded continuation of the previous header (§7.3.1): part of its value.
        if (this.inContentLengthHeader) this.contentLengthText += ` ${line.toString('latin1')}`;
      } else {
        if (!this.finishHeader(events)) return true;
        this.startHeader(line);
      }
    }
  }

  private startHeader(line: Buffer): void {
    const colon = line.indexOf(COLON);
    let nameEnd = colon;
    while (nameEnd > 0 && (line[nameEnd - 1] === SP || line[nameEnd - 1] === HT)) nameEnd--;
    this.inContentLengthHeader = colon > 0 && isContentLengthName(line, nameEnd);
    if (this.inContentLengthHeader) this.contentLengthText = line.subarray(colon + 1).toString('latin1');
  }

  /** Settles the header that just ended, if it was Content-Length. False if the framer failed. */
  private finishHeader(events: FramerEvent[]): boolean {
    if (!this.inContentLengthHeader) return true;
    this.inContentLengthHeader = false;
    const text = this.contentLengthText.trim();
    // Content-Length = 1*DIGIT (§20.14, §25.1): no sign, no fraction, one value.
    if (!/^[0-9]+$/.test(text)) {
      this.fail(events, 'bad-content-length', `invalid Content-Length "${text.slice(0, 20)}"`);
      return false;
    }
    const value = Number(text);
    if (this.contentLength !== undefined && this.contentLength !== value) {
      this.fail(events, 'bad-content-length', `conflicting Content-Length values ${this.contentLength} and ${text.slice(0, 20)}`);
      return false;
    }
    this.contentLength = value;
    return true;
  }

  private endHead(messageStart: number, headEnd: number, events: FramerEvent[]): boolean {
    if (!this.finishHeader(events)) return true;
    if (this.contentLength === undefined) {
      this.fail(
        events,
        'missing-header',
        'missing Content-Length: a message on a stream transport cannot be framed without it (RFC 3261 §18.3, §20.14)',
      );
      return true;
    }
    const total = headEnd - messageStart + this.contentLength;
    if (total > this.maxMessageBytes) {
      this.fail(events, 'too-large', `message of ${total} bytes exceeds ${this.maxMessageBytes} bytes`);
      return true;
    }
    this.messageEnd = messageStart + total;
    this.currentPhase = 'body';
    return true;
  }

  /** Drops consumed bytes from the front of the store and shifts the saved indices with them. */
  private compact(consumed: number): void {
    if (consumed === 0) return;
    this.store.copyWithin(0, consumed, this.stored);
    this.stored -= consumed;
    this.lineStart -= consumed;
    this.scanFrom -= consumed;
    this.messageEnd -= consumed;
    // An idle connection should not pin the buffer a large message needed.
    if (this.stored === 0 && this.store.length > 16 * 1024) this.store = Buffer.alloc(0);
  }

  private fail(events: FramerEvent[], code: FramingErrorCode, reason: string): void {
    events.push({ type: 'error', code, reason });
    this.currentPhase = 'failed';
    this.store = Buffer.alloc(0);
    this.stored = 0;
  }
}

/** True if line[0, nameEnd) is "Content-Length" or its compact form "l", in any case (§7.3.3). */
function isContentLengthName(line: Buffer, nameEnd: number): boolean {
  if (nameEnd === 1) return (line[0]! | 0x20) === 0x6c; // 'l' / 'L'
  if (nameEnd !== CONTENT_LENGTH.length) return false;
  for (let i = 0; i < nameEnd; i++) {
    const b = line[i]!;
    const lower = b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
    if (lower !== CONTENT_LENGTH[i]) return false;
  }
  return true;
}
