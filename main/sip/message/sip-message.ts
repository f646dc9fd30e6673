/**
 * SIP requests and responses (RFC 3261 §7).
 *
 * A message is a start line, a HeaderList and a body of bytes. The body is a Buffer and stays
 * one: it is decoded as text only by whoever knows its Content-Type and charset, after
 * framing (§7.4, §18.3), so binary S/MIME bodies never pass through a string decoder.
 *
 * The structured views of the headers every transaction needs (Via, From, To, Call-ID, CSeq,
 * Content-Type) are parsed on first use and cached. A malformed one throws ParseError when it
 * is first read (the URI of From and To when `uri` is first read: see ParsedNameAddr);
 * `validateEssentialHeaders` checks them all at once for a UAS that has to decide between
 * processing a request and answering 400 (a URI or Content-Type whose text passed for the
 * previous message is not parsed again: see LastValidUri).
 */
import {
  parseContentType,
  parseCSeq,
  parseVia,
  readNameAddr,
  type ContentType,
  type CSeq,
  type ParsedNameAddr,
  type Via,
} from '../header-values.js';
import { parseUri, type Uri } from '../uri.js';
import type { HeaderList } from './header-list.js';
import { ParseError } from './parse-error.js';

export const SIP_VERSION = 'SIP/2.0';

abstract class SipMessageBase {
  private cachedVias: Via[] | undefined;
  private cachedFrom: ParsedNameAddr | undefined;
  private cachedTo: ParsedNameAddr | undefined;
  private cachedCSeq: CSeq | undefined;
  private cachedContentType: ContentType | null | undefined;

  constructor(
    readonly headers: HeaderList,
    public body: Buffer,
    /** As written on the start line; `SIP/2.0` for everything we build. */
    readonly version: string = SIP_VERSION,
  ) {}

  /** Every Via entry, top (most recent hop) first (§20.42). */
  get vias(): Via[] {
    if (this.cachedVias === undefined) {
      const rows = this.headers.entries();
      // The first row's array is kept and the others' entries added to it (parseVia returns a
      // fresh array): a message with one Via row, nearly every one, costs no second array.
      let vias: Via[] | undefined;
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!;
        if (row.key !== 'via') continue;
        const parsed = parseVia(row.value);
        if (vias === undefined) vias = parsed;
        else for (let j = 0; j < parsed.length; j++) vias.push(parsed[j]!);
      }
      this.cachedVias = vias ?? [];
    }
    return this.cachedVias;
  }

  /**
   * For the parser: the Vias it has already read from the rows as they stand, what `vias`
   * would give (parse.ts, readUsualMessage).
   */
  primeVias(vias: Via[]): void {
    this.cachedVias = vias;
  }

  /** For the parser, as primeVias: the CSeq as `cseq` would read it. */
  primeCSeq(cseq: CSeq): void {
    this.cachedCSeq = cseq;
  }

  /** For the parser, as primeVias: From and To as `from` and `to` would read them (either may be undefined). */
  primeAddresses(from: ParsedNameAddr | undefined, to: ParsedNameAddr | undefined): void {
    if (from !== undefined) this.cachedFrom = from;
    if (to !== undefined) this.cachedTo = to;
  }

  /** The top Via; its branch identifies the transaction (§17.1.3, §17.2.3). */
  get topVia(): Via {
    const top = this.vias[0];
    if (top === undefined) throw new ParseError('missing-header', 'Via header missing', 'Via');
    return top;
  }

  /** The URI is parsed when `from.uri` is first read. */
  get from(): ParsedNameAddr {
    return (this.cachedFrom ??= readNameAddr(this.required('from', 'From')));
  }

  /** The URI is parsed when `to.uri` is first read. */
  get to(): ParsedNameAddr {
    return (this.cachedTo ??= readNameAddr(this.required('to', 'To')));
  }

  get callId(): string {
    return this.required('call-id', 'Call-ID');
  }

  get cseq(): CSeq {
    return (this.cachedCSeq ??= parseCSeq(this.required('cseq', 'CSeq')));
  }

  /** The parsed Content-Type, or undefined when the message has none. */
  get contentType(): ContentType | undefined {
    if (this.cachedContentType === undefined) {
      const value = this.headers.getByKey('content-type');
      this.cachedContentType = value === undefined ? null : parseContentType(value);
    }
    return this.cachedContentType ?? undefined;
  }

  /** Forget cached views after the headers were changed in place. */
  invalidate(): void {
    this.cachedVias = undefined;
    this.cachedFrom = undefined;
    this.cachedTo = undefined;
    this.cachedCSeq = undefined;
    this.cachedContentType = undefined;
  }

  protected required(key: string, display: string): string {
    const value = this.headers.getByKey(key);
    if (value === undefined) throw new ParseError('missing-header', `${display} header missing`, display);
    return value;
  }
}

export class SipRequest extends SipMessageBase {
  readonly kind = 'request';
  private cachedUri: Uri | undefined;

  constructor(
    readonly method: string,
    /** The Request-URI as written. */
    readonly uri: string,
    headers: HeaderList,
    body: Buffer,
    version?: string,
  ) {
    super(headers, body, version);
  }

  /** The Request-URI, parsed (any scheme; an unknown one parses as an AbsoluteUri). */
  get requestUri(): Uri {
    return (this.cachedUri ??= parseUri(this.uri));
  }
}

export class SipResponse extends SipMessageBase {
  readonly kind = 'response';

  constructor(
    readonly status: number,
    readonly reason: string,
    headers: HeaderList,
    body: Buffer,
    version?: string,
  ) {
    super(headers, body, version);
  }
}

export type SipMessage = SipRequest | SipResponse;

/**
 * Headers that must appear at most once (§7.3.1; RFC 4475 §3.3.8 "multi01"), by lookup key,
 * with the bit each has in `checkSingleHeaders`'s masks; a duplicate is reported by the first
 * of them, in this order, that appears twice.
 */
const SINGLE_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['from', 'From'],
  ['to', 'To'],
  ['call-id', 'Call-ID'],
  ['cseq', 'CSeq'],
  ['max-forwards', 'Max-Forwards'],
  ['content-type', 'Content-Type'],
];

/** The bit of a key in `checkSingleHeaders`'s masks (1 << its index in SINGLE_HEADERS), else 0. */
function singleHeaderBit(key: string): number {
  switch (key) {
    case 'from':
      return 1;
    case 'to':
      return 2;
    case 'call-id':
      return 4;
    case 'cseq':
      return 8;
    case 'max-forwards':
      return 16;
    case 'content-type':
      return 32;
    default:
      return 0;
  }
}

/** Throws naming the first of SINGLE_HEADERS that appears more than once: one pass over the rows. */
function checkSingleHeaders(headers: HeaderList): void {
  const rows = headers.entries();
  let seen = 0;
  let repeated = 0;
  for (let i = 0; i < rows.length; i++) {
    const bit = singleHeaderBit(rows[i]!.key);
    repeated |= seen & bit;
    seen |= bit;
  }
  if (repeated === 0) return;
  for (let index = 0; index < SINGLE_HEADERS.length; index++) {
    if ((repeated & (1 << index)) === 0) continue;
    const display = SINGLE_HEADERS[index]![1];
    throw new ParseError('bad-header', `${display} appears more than once`, display);
  }
}

/**
 * URI text that parsed, remembered for the next message: under load consecutive requests come
 * from the same sender, to the same AoR, at the same Request-URI, so `validateEssentialHeaders`
 * parses each URI only when its text differs from the last one that passed. Parsing is a pure
 * function of the text, so the answer is the same; only success is remembered, so an error is
 * thrown every time, and the message's own lazy views still parse when someone reads them.
 */
class LastValidUri {
  #text: string | undefined;
  /** The scheme of `#text`, lower case (as `parseUri` gives it). */
  #scheme = '';

  /** Whether `text` is the last URI that passed. */
  passed(text: string): boolean {
    return text === this.#text;
  }

  /** Remembers `text` as valid, with what it parsed into (reading a bad URI throws first). */
  remember(text: string, uri: Uri): void {
    this.#scheme = uri.scheme;
    this.#text = text;
  }

  /** The scheme of `text` if it is the last URI that passed, else undefined. */
  schemeOf(text: string): string | undefined {
    return text === this.#text ? this.#scheme : undefined;
  }
}

const lastValidFromUri = new LastValidUri();
const lastValidToUri = new LastValidUri();
const lastValidRequestUri = new LastValidUri();
/** The last Content-Type value that parsed (as for the URIs above). */
let lastValidContentType: string | undefined;

/**
 * Reads every header that request processing depends on (§8.2, §17.2.3), so a malformed one
 * is found before anything is done rather than halfway through. Throws ParseError naming the
 * header; the caller answers 400 with it as the reason.
 */
export function validateEssentialHeaders(message: SipMessage): void {
  if (message.vias.length === 0) throw new ParseError('missing-header', 'Via header missing', 'Via');
  checkSingleHeaders(message.headers);
  const from = message.from;
  if (!lastValidFromUri.passed(from.uriText)) lastValidFromUri.remember(from.uriText, from.uri);
  const to = message.to;
  if (!lastValidToUri.passed(to.uriText)) lastValidToUri.remember(to.uriText, to.uri);
  if (message.callId.length === 0) throw new ParseError('bad-header-value', 'Call-ID is empty', 'Call-ID');
  void message.cseq;
  if (message.kind === 'request') {
    if (!lastValidRequestUri.passed(message.uri)) lastValidRequestUri.remember(message.uri, message.requestUri);
    const maxForwards = message.headers.getByKey('max-forwards');
    if (maxForwards !== undefined && !/^\d{1,10}$/.test(maxForwards)) {
      throw new ParseError('bad-header-value', 'Max-Forwards is not a number', 'Max-Forwards');
    }
  }
  const contentType = message.headers.getByKey('content-type');
  if (contentType !== undefined && contentType !== lastValidContentType) {
    void message.contentType;
    lastValidContentType = contentType;
  }
}

/**
 * The scheme of a request's Request-URI, lower case: `request.requestUri.scheme`, without
 * parsing the URI again when it is the last one `validateEssentialHeaders` passed.
 */
export function requestUriScheme(request: SipRequest): string {
  return lastValidRequestUri.schemeOf(request.uri) ?? request.requestUri.scheme;
}

/**
 * §8.1.1.5: a request's CSeq method must be its own method. Checked apart from the essential
 * headers because an unknown method deserves 501 before a mismatch deserves 400 (RFC 4475
 * §3.1.2.18 "mismatch02").
 */
export function checkCSeqMethod(request: SipRequest): void {
  if (request.cseq.method !== request.method) {
    throw new ParseError('bad-header-value', `CSeq method ${request.cseq.method} does not match ${request.method}`, 'CSeq');
  }
}
