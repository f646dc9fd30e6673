/**
 * `message/cpim` bodies (RFC 3862): parse and build, pure functions on bytes.
 *
 * Where a CPIM body starts in SIP. RFC 3862 §2 draws a complete CPIM message as
 *
 *     m: Content-type: Message/CPIM      <- MIME headers of the whole message (§2.1)
 *     s:                                 <- blank line
 *     h: From: ... / To: ... / ...       <- CPIM message headers (§2.2, §3, §4)
 *     s:                                 <- blank line
 *     e: Content-Type: text/plain ...    <- encapsulated MIME entity (§2.4):
 *     e:                                    its MIME headers, a blank line, its content
 *
 * and leaves the end of the content to the framing of the carrying protocol (§2). In SIP the
 * "m:" part is the SIP message's own `Content-Type: message/cpim` header (RFC 3261 §7.4: the
 * SIP header section carries the body's MIME type), so the SIP body starts directly with the
 * "h:" block. RFC 5438's IMDN examples print the same layout (a `Content-type: Message/CPIM` line
 * standing for the carrier's header, then the CPIM headers). Old liblinphone releases did put a
 * copy of the "m:" block inside the SIP body; `parseCpim` recognises and skips such a leading
 * block (see `looksLikeOuterMimeBlock`), `buildCpim` never writes one.
 *
 * Header syntax (RFC 3862 §2.2, §3.6): `Name: value` or `prefix.Name: value`, one per line,
 * names case-sensitive, exactly one SP after the colon (or after the `;param=value` list of
 * §3.3), UTF-8, CRLF, no folding. Values escape control characters and backslashes (§2.3).
 * Namespaces (§3.4): `NS: prefix <uri>` binds a message-local prefix; `NS: <uri>` sets the
 * default namespace for unprefixed names; the core headers (§4) live in
 * `urn:ietf:params:cpim-headers:`. Extension headers must therefore be looked up by namespace
 * URI, never by prefix (`cpimHeader`); RFC 5438 §6.1 relies on this for `urn:ietf:params:imdn`.
 *
 * Robustness. Parsing accepts bare-LF line ends, throws only `ParseError`, never decodes or
 * touches the content bytes, and is strict about what carries meaning (names, namespaces,
 * addresses, dates) because CPIM headers are what a signature over the body vouches for
 * (RFC 3428 §11.5; checklist items 47, 195).
 */
import { ParseError } from '../sip/message/parse-error.js';

/** The core namespace of RFC 3862 §4 (the From, To, cc, DateTime, Subject, NS, Require headers). */
export const CPIM_CORE_NAMESPACE = 'urn:ietf:params:cpim-headers:';

/**
 * RFC 3862 §6 prints the core namespace as `urn:ietf:params-cpim-headers:` (a typo, see the
 * checklist §0). A sender that copied it means the core namespace, so it is read as such.
 */
const CORE_NAMESPACE_TYPO = 'urn:ietf:params-cpim-headers:';

const CORE_HEADER_NAMES: ReadonlySet<string> = new Set(['From', 'To', 'cc', 'DateTime', 'Subject', 'NS', 'Require']);

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** `[Formal-name] <URI>` of the From, To and cc headers (RFC 3862 §4.1–§4.3). */
export interface CpimAddress {
  readonly uri: string;
  /** The formal (display) name, unquoted and unescaped; absent when none was given. */
  readonly name?: string;
}

/** A text value with its optional language tag (RFC 3862 §3.3), e.g. one Subject header. */
export interface CpimText {
  readonly value: string;
  readonly lang?: string;
}

/** A header name resolved to its namespace (RFC 3862 §3.4). */
export interface CpimName {
  readonly namespace: string;
  readonly name: string;
}

/** One CPIM message header, as found in the body. */
export interface CpimHeader {
  /** The name exactly as written, prefix included (e.g. `imdn.Message-ID`). Case-sensitive. */
  readonly name: string;
  /** The prefix as written (`imdn`), or undefined for an unprefixed name. */
  readonly prefix: string | undefined;
  /** The name without its prefix (`Message-ID`). */
  readonly localName: string;
  /** The namespace URI the name belongs to, resolved by the NS headers in force at this line. */
  readonly namespace: string;
  /** The value with the §2.3 escapes decoded. */
  readonly value: string;
  /**
   * The value as written (escapes intact). Structured values (addresses with a quoted formal
   * name) must be parsed from this form: decoding first would confuse `\"` with a closing quote.
   */
  readonly rawValue: string;
  /** The `;lang=` parameter (RFC 3862 §3.3); absent means the default `i-default`. */
  readonly lang?: string;
  /** Other `;name=value` parameters (RFC 3862 §3.6 Ext-param), in order, values unquoted. */
  readonly params: ReadonlyArray<readonly [string, string]>;
}

/** A parsed `message/cpim` body. */
export interface CpimMessage {
  /** A leading copy of the outer MIME headers (old liblinphone), if the body had one; else empty. */
  readonly mimeHeaders: ReadonlyArray<readonly [string, string]>;
  /** The CPIM message headers, in order (RFC 3862 §2.2: order is significant and preserved). */
  readonly headers: ReadonlyArray<CpimHeader>;
  /** Prefix → namespace URI after the last NS header; the default namespace is under ''. */
  readonly namespaces: ReadonlyMap<string, string>;
  /** The names listed by the Require headers (RFC 3862 §3.5, §4.7), resolved to namespaces. */
  readonly required: ReadonlyArray<CpimName>;
  /** The encapsulated entity's Content-Type value as written (RFC 3862 §2.4: it must be present). */
  readonly contentType: string;
  /** The encapsulated entity's other MIME headers, in order, names as written. */
  readonly contentHeaders: ReadonlyArray<readonly [string, string]>;
  /** The content bytes, exactly as received (not decoded, not length-checked: the carrier frames it). */
  readonly content: Uint8Array;
}

/** An extension header for `buildCpim`. */
export interface CpimExtraHeader {
  /** A prefix declared in `namespaces`; omitted means the core namespace (unprefixed name). */
  readonly ns?: string;
  readonly name: string;
  readonly value: string;
  readonly lang?: string;
}

/** What `buildCpim` writes. Headers come out as From, To…, cc…, DateTime, Subject…, NS…, Require, extras. */
export interface CpimBuildInput {
  readonly from: CpimAddress;
  readonly to: ReadonlyArray<CpimAddress>;
  readonly cc?: ReadonlyArray<CpimAddress>;
  /** RFC 3862 §4.4; required here because signed messages must carry a covered date (RFC 3428 §11.4). */
  readonly dateTime: Date;
  /** The UTC offset to write the DateTime in, in minutes (0 → `Z`). */
  readonly utcOffsetMinutes?: number;
  readonly subject?: string | ReadonlyArray<CpimText>;
  /**
   * Prefix → namespace URI, written as NS headers before any use. The default namespace ('')
   * cannot be changed here: the builder writes core headers unprefixed.
   */
  readonly namespaces?: Readonly<Record<string, string>>;
  /** Header names as written, `[prefix.]Name` (RFC 3862 §4.7); prefixes must be declared. */
  readonly require?: ReadonlyArray<string>;
  readonly extraHeaders?: ReadonlyArray<CpimExtraHeader>;
  readonly contentType: string;
  /** Further MIME headers of the encapsulated entity (not Content-Type). */
  readonly contentHeaders?: ReadonlyArray<readonly [string, string]>;
  readonly content: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Character classes (RFC 3862 §3.6)
// ---------------------------------------------------------------------------------------------

/** Name = 1*NAMECHAR; NAMECHAR = %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e / ALPHA / DIGIT. */
const NAME = /^[!#$%&'*+\-^_`|~0-9A-Za-z]+$/;
/** TOKENCHAR = NAMECHAR / "." / UCS-high (surrogates excluded: they only count as a pair). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z\u0080-\uD7FF\uE000-\u{10FFFF}]+$/u;
/** Language-Tag = Primary-subtag *( "-" Subtag ) (RFC 3066, as cited by RFC 3862 §3.6). */
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
/** An absolute URI as far as this layer cares: a scheme, a colon, no whitespace, controls or angle brackets. */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\u0000-\u0020\u007f<>]*$/;
/** RFC 5322 §3.6.8 field-name: printable US-ASCII except the colon. */
const MIME_FIELD_NAME = /^[\u0021-\u0039\u003b-\u007e]+$/;
/** `type/subtype` then optional parameters (RFC 2045 §5.1, tokens per RFC 7230 tchar). */
const MEDIA_TYPE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*(?:;.*)?$/;
/** C0 controls and DEL (RFC 3862 §2.3 "control characters"); HTAB is tested separately. */
const CONTROL_CHARACTER = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function isSpaceOrTab(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t';
}

/** Strips SP and HTAB only: String.prototype.trim would also eat NBSP, U+2028 and friends. */
function trimSpaceAndTab(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isSpaceOrTab(text[start])) start++;
  while (end > start && isSpaceOrTab(text[end - 1])) end--;
  return text.slice(start, end);
}

// ---------------------------------------------------------------------------------------------
// Escapes (RFC 3862 §2.3, §2.3.1)
// ---------------------------------------------------------------------------------------------

const NAMED_ESCAPES: Readonly<Record<string, string>> = { b: '\b', t: '\t', n: '\n', r: '\r' };
const HEX4 = /^[0-9A-Fa-f]{4}$/;

/**
 * Decodes the §2.3 escapes of a header value: `\\ \" \' \b \t \n \r \uXXXX`. An unknown
 * escape stands for the character after the backslash; a lone backslash at the end is dropped
 * (§2.3.1). `\uXXXX` is a UTF-16 code unit, so a pair of them spells an astral character.
 */
export function unescapeCpimValue(raw: string): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = raw[i + 1];
    if (next === undefined) break;
    i++;
    const named = NAMED_ESCAPES[next];
    if (named !== undefined) {
      out += named;
    } else if (next === 'u' && HEX4.test(raw.slice(i + 1, i + 5))) {
      out += String.fromCharCode(Number.parseInt(raw.slice(i + 1, i + 5), 16));
      i += 4;
    } else {
      // `\\`, `\"`, `\'` and every unknown escape: the character itself.
      out += next;
    }
  }
  return out;
}

function hex4(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * Escapes one character for a header value, or returns undefined when it may stay as it is.
 * Control characters and the backslash must be escaped (§2.3.1); unpaired surrogates cannot be
 * written in UTF-8, so they go out as `\uXXXX` too.
 */
function escapeCharacter(text: string, i: number): string | undefined {
  const code = text.charCodeAt(i);
  if (code === 0x5c) return '\\\\';
  if (code === 0x08) return '\\b';
  if (code === 0x09) return '\\t';
  if (code === 0x0a) return '\\n';
  if (code === 0x0d) return '\\r';
  if (code < 0x20 || code === 0x7f) return `\\u${hex4(code)}`;
  if (code >= 0xd800 && code <= 0xdfff) {
    const pairedHigh = code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1));
    const pairedLow = code >= 0xdc00 && isLowSurrogate(code) && isHighSurrogate(text.charCodeAt(i - 1));
    return pairedHigh || pairedLow ? undefined : `\\u${hex4(code)}`;
  }
  return undefined;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * Encodes a header value for the wire (RFC 3862 §2.3.1). Quotes are left alone (they only need
 * escaping inside a quoted String, see `quoteString`). A space at either end goes out as
 * `\u0020`, because §2.2 forbids whitespace at the end of a line and parsers trim it.
 */
export function escapeCpimValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const escaped = escapeCharacter(value, i);
    if (escaped !== undefined) out += escaped;
    else if (value[i] === ' ' && (i === 0 || i === value.length - 1)) out += '\\u0020';
    else out += value[i]!;
  }
  return out;
}

/** String = DQUOTE *( Str-char / Escape ) DQUOTE (RFC 3862 §3.6). */
function quoteString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    out += ch === '"' ? '\\"' : (escapeCharacter(text, i) ?? ch);
  }
  return `${out}"`;
}

/**
 * Reads a quoted String starting at `raw[start] === '"'`. Returns the unescaped contents and
 * the index just after the closing quote, or undefined if the string never closes.
 */
function readQuotedString(raw: string, start: number): { text: string; end: number } | undefined {
  for (let i = start + 1; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === '\\') i++;
    else if (ch === '"') return { text: unescapeCpimValue(raw.slice(start + 1, i)), end: i + 1 };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Namespaces (RFC 3862 §3.4)
// ---------------------------------------------------------------------------------------------

/**
 * The form namespace URIs are compared in: the scheme is case-insensitive (RFC 3986 §6.2.2.1),
 * and so is a URN's `urn:NID:` part (RFC 8141 §3.1); the rest is compared exactly.
 */
function namespaceKey(uri: string): string {
  // Every header lookup compares keys of the same few URIs (the core namespace, imdn's).
  const known = namespaceKeys.get(uri);
  if (known !== undefined) return known;
  const key = computeNamespaceKey(uri);
  if (namespaceKeys.size >= NAMESPACE_KEY_CACHE_SIZE) namespaceKeys.clear();
  namespaceKeys.set(uri, key);
  return key;
}

/** URI → `namespaceKey`, remembered; bounded (emptied when full) since URIs come from peers. */
const namespaceKeys = new Map<string, string>();
const NAMESPACE_KEY_CACHE_SIZE = 64;

function computeNamespaceKey(uri: string): string {
  if (uri === CORE_NAMESPACE_TYPO) return CPIM_CORE_NAMESPACE;
  const colon = uri.indexOf(':');
  if (colon < 0) return uri;
  const scheme = uri.slice(0, colon).toLowerCase();
  if (scheme !== 'urn') return scheme + uri.slice(colon);
  const nidEnd = uri.indexOf(':', colon + 1);
  if (nidEnd < 0) return uri.toLowerCase();
  const key = uri.slice(0, nidEnd).toLowerCase() + uri.slice(nidEnd);
  return key.toLowerCase() === CORE_NAMESPACE_TYPO ? CPIM_CORE_NAMESPACE : key;
}

/** Whether two namespace URIs name the same namespace. */
export function sameCpimNamespace(a: string, b: string): boolean {
  return namespaceKey(a) === namespaceKey(b);
}

function isCoreNamespace(uri: string): boolean {
  return namespaceKey(uri) === CPIM_CORE_NAMESPACE;
}

/** Splits `[prefix.]Name`; undefined if it is not one (more than one dot, empty parts, bad characters). */
function splitHeaderName(fullName: string): { prefix: string | undefined; localName: string } | undefined {
  const dot = fullName.indexOf('.');
  if (dot < 0) return NAME.test(fullName) ? { prefix: undefined, localName: fullName } : undefined;
  const prefix = fullName.slice(0, dot);
  const localName = fullName.slice(dot + 1);
  return NAME.test(prefix) && NAME.test(localName) ? { prefix, localName } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Parsing: lines and header blocks
// ---------------------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The lines of one header block, and whether they may hold control characters. */
interface HeaderBlock {
  readonly lines: readonly string[];
  /** The offset just past the empty line that ends the block. */
  readonly end: number;
  /**
   * False when no line can contain a control character (RFC 3862 §2.3): no C0 byte other than
   * HTAB and the CRLF/LF line ends, no DEL. UTF-8 spells these only as themselves (every octet
   * of a multi-octet sequence is ≥ 0x80), so the bytes tell; the line checks then need not run.
   */
  readonly mayHaveControls: boolean;
}

const EMPTY_BLOCK_LINES: readonly string[] = [];

/**
 * Reads header lines from `start` up to and including the next empty line. Lines end in CRLF
 * or, tolerantly, a bare LF. Returns the decoded lines and the offset just past the empty line.
 */
function readHeaderBlock(body: Uint8Array, start: number, what: string): HeaderBlock {
  let mayHaveControls = false;
  let lineStart = start;
  // One pass over the octets: line ends, the empty line, and any control character.
  for (let i = start; i < body.length; i++) {
    const byte = body[i] as number;
    if (byte === 0x0a) {
      const lineEnd = i > lineStart && body[i - 1] === 0x0d ? i - 1 : i;
      if (lineEnd === lineStart) {
        if (lineStart === start) return { lines: EMPTY_BLOCK_LINES, end: i + 1, mayHaveControls: false };
        let text: string;
        try {
          text = utf8.decode(body.subarray(start, lineStart));
        } catch {
          throw new ParseError('bad-header', `${what}: header block is not valid UTF-8`);
        }
        // The block's lines all ended in LF; drop the last one's and split the rest.
        const lines = text.slice(0, -1).split('\n');
        for (let l = 0; l < lines.length; l++) {
          const line = lines[l] as string;
          if (line.endsWith('\r')) lines[l] = line.slice(0, -1);
        }
        return { lines, end: i + 1, mayHaveControls };
      }
      lineStart = i + 1;
    } else if (byte < 0x20 ? byte !== 0x09 && !(byte === 0x0d && body[i + 1] === 0x0a) : byte === 0x7f) {
      mayHaveControls = true;
    }
  }
  throw new ParseError('truncated', `${what}: no empty line ends the header block`);
}

/**
 * Parses MIME header lines (RFC 2045 §3 / RFC 5322 §2.2): case-insensitive names, values
 * trimmed, folded lines unfolded (tolerated on receipt; `buildCpim` never folds).
 */
function parseMimeHeaders(block: HeaderBlock, what: string): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  for (const line of block.lines) {
    if (block.mayHaveControls && CONTROL_CHARACTER.test(line)) throw new ParseError('bad-header', `${what}: control character in a header line`);
    const last = headers[headers.length - 1];
    if (isSpaceOrTab(line[0])) {
      if (last === undefined) throw new ParseError('bad-header', `${what}: continuation line before any header`);
      last[1] = trimSpaceAndTab(`${last[1]}${line}`);
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon);
    if (!MIME_FIELD_NAME.test(name)) throw new ParseError('bad-header', `${what}: malformed header line`);
    headers.push([name, trimSpaceAndTab(line.slice(colon + 1))]);
  }
  return headers;
}

function mediaTypeOf(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return trimSpaceAndTab(semicolon < 0 ? contentType : contentType.slice(0, semicolon)).toLowerCase();
}

/**
 * Whether a first header block is a leaked copy of the outer MIME headers (RFC 3862 §2 "m:")
 * rather than CPIM headers: only MIME-style names (Content-*, MIME-Version) and a Content-Type
 * of message/cpim. A real CPIM header block has neither; a CPIM body without message headers
 * starts with an empty line, so it cannot be mistaken for one.
 */
function looksLikeOuterMimeBlock(lines: ReadonlyArray<string>): boolean {
  let sawCpimType = false;
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) return false;
    const name = line.slice(0, colon).toLowerCase();
    if (!name.startsWith('content-') && name !== 'mime-version') return false;
    if (name === 'content-type' && mediaTypeOf(line.slice(colon + 1)) === 'message/cpim') sawCpimType = true;
  }
  return sawCpimType;
}

// ---------------------------------------------------------------------------------------------
// Parsing: CPIM header lines (RFC 3862 §3.6)
// ---------------------------------------------------------------------------------------------

interface HeaderLine {
  readonly name: string;
  readonly prefix: string | undefined;
  readonly localName: string;
  readonly rawValue: string;
  readonly lang: string | undefined;
  readonly params: Array<readonly [string, string]>;
}

/** Header = Header-name ":" *( ";" Parameter ) SP Header-value CRLF */
function parseHeaderLine(line: string, mayHaveControls: boolean): HeaderLine {
  if (mayHaveControls && CONTROL_CHARACTER.test(line)) {
    throw new ParseError('bad-header', 'CPIM header line contains a control character (RFC 3862 §2.3)');
  }
  const colon = line.indexOf(':');
  const name = colon < 0 ? '' : line.slice(0, colon);
  const split = splitHeaderName(name);
  if (split === undefined) throw new ParseError('bad-header', 'malformed CPIM header name (RFC 3862 §3.1)', name || undefined);

  let pos = colon + 1;
  let lang: string | undefined;
  const params: Array<readonly [string, string]> = [];
  while (line[pos] === ';') {
    const param = readParameter(line, pos + 1, name);
    pos = param.end;
    if (param.name.toLowerCase() === 'lang') {
      if (lang !== undefined || !LANGUAGE_TAG.test(param.value)) {
        throw new ParseError('bad-header', 'bad or repeated lang parameter (RFC 3862 §3.3)', name);
      }
      lang = param.value;
    } else {
      params.push([param.name, param.value]);
    }
  }
  if (pos > colon + 1 && pos < line.length && !isSpaceOrTab(line[pos])) {
    throw new ParseError('bad-header', 'CPIM header parameters must be followed by a space', name);
  }
  // Exactly one SP is required (§2.2); a missing SP, or more whitespace at either end, is
  // tolerated and dropped (§2.2 also forbids whitespace at the end of a line, which is why
  // `escapeCpimValue` writes edge spaces as escapes).
  return { name, prefix: split.prefix, localName: split.localName, rawValue: trimRawValue(line.slice(pos)), lang, params };
}

/**
 * Trims SP and HTAB around a raw value, except a last one that a backslash escapes
 * (`x\ ` is an unknown escape standing for a space, §2.3.1, not trailing whitespace).
 */
function trimRawValue(raw: string): string {
  let start = 0;
  let end = raw.length;
  while (start < end && isSpaceOrTab(raw[start])) start++;
  while (end > start && isSpaceOrTab(raw[end - 1])) end--;
  if (end < raw.length) {
    let backslashes = 0;
    while (end - 1 - backslashes >= start && raw[end - 1 - backslashes] === '\\') backslashes++;
    if (backslashes % 2 === 1) end++;
  }
  return raw.slice(start, end);
}

/** Parameter = Param-name "=" ( Token / Number / String ), starting after the ";". */
function readParameter(line: string, start: number, header: string): { name: string; value: string; end: number } {
  const equals = line.indexOf('=', start);
  const name = equals < 0 ? '' : line.slice(start, equals);
  if (!NAME.test(name)) throw new ParseError('bad-header', 'malformed CPIM header parameter (RFC 3862 §3.6)', header);
  if (line[equals + 1] === '"') {
    const quoted = readQuotedString(line, equals + 1);
    if (quoted === undefined) throw new ParseError('bad-header', 'unterminated quoted parameter value', header);
    return { name, value: quoted.text, end: quoted.end };
  }
  let end = equals + 1;
  while (end < line.length && line[end] !== ';' && !isSpaceOrTab(line[end])) end++;
  const value = line.slice(equals + 1, end);
  if (!TOKEN.test(value)) throw new ParseError('bad-header', 'malformed CPIM header parameter value', header);
  return { name, value, end };
}

/** NS-header value: [ Name-prefix SP ] "<" URI ">" (RFC 3862 §4.6). */
function parseNamespaceDeclaration(raw: string, header: string): { prefix: string; uri: string } {
  let prefix = '';
  let rest = raw;
  if (!raw.startsWith('<')) {
    let space = 0;
    while (space < raw.length && !isSpaceOrTab(raw[space])) space++;
    prefix = raw.slice(0, space);
    rest = trimSpaceAndTab(raw.slice(space));
    if (!NAME.test(prefix)) throw new ParseError('bad-header-value', 'malformed NS prefix (RFC 3862 §4.6)', header);
  }
  const uri = unescapeCpimValue(rest.slice(1, -1));
  if (!rest.startsWith('<') || !rest.endsWith('>') || !ABSOLUTE_URI.test(uri)) {
    throw new ParseError('bad-header-value', 'NS value must be [prefix] <absolute-URI> (RFC 3862 §4.6)', header);
  }
  return { prefix, uri };
}

/**
 * Parses a CPIM `message/cpim` body (RFC 3862 §2). The body is what follows the SIP header
 * section of a request whose Content-Type is message/cpim: CPIM headers, an empty line, the
 * encapsulated entity's MIME headers, an empty line, the content.
 *
 * @throws ParseError `empty`, `truncated` (a header block has no closing empty line),
 *   `bad-header` (malformed line, invalid UTF-8, control character, undeclared prefix),
 *   `bad-header-value` (malformed NS or Require, bad or repeated Content-Type),
 *   `missing-header` (no Content-Type in the encapsulated entity, §2.4).
 */
export function parseCpim(body: Uint8Array): CpimMessage {
  if (body.length === 0) throw new ParseError('empty', 'empty message/cpim body');

  let block = readHeaderBlock(body, 0, 'message/cpim');
  let mimeHeaders: Array<[string, string]> = [];
  if (looksLikeOuterMimeBlock(block.lines)) {
    mimeHeaders = parseMimeHeaders(block, 'message/cpim MIME headers');
    block = readHeaderBlock(body, block.end, 'message/cpim');
  }

  const bindings = new Map<string, string>([['', CPIM_CORE_NAMESPACE]]);
  const headers: CpimHeader[] = [];
  const required: CpimName[] = [];
  for (const lineText of block.lines) {
    const line = parseHeaderLine(lineText, block.mayHaveControls);
    let namespace: string;
    if (line.prefix !== undefined) {
      const bound = bindings.get(line.prefix);
      if (bound === undefined) {
        throw new ParseError('bad-header', `namespace prefix "${line.prefix}" used before its NS header (RFC 3862 §3.4)`, line.name);
      }
      namespace = bound;
    } else if (line.localName === 'NS') {
      // An unprefixed NS always declares, even under a changed default namespace; otherwise a
      // message could never switch the default back. (Our reading: RFC 3862 §3.4 does not say.)
      namespace = CPIM_CORE_NAMESPACE;
    } else {
      namespace = bindings.get('')!;
    }

    if (line.localName === 'NS' && isCoreNamespace(namespace)) {
      const declaration = parseNamespaceDeclaration(line.rawValue, line.name);
      bindings.set(declaration.prefix, declaration.uri);
    } else if (line.localName === 'Require' && isCoreNamespace(namespace)) {
      required.push(...parseRequire(unescapeCpimValue(line.rawValue), bindings, line.name));
    }

    const value = unescapeCpimValue(line.rawValue);
    // Two literals rather than a spread: one object per header, of one of two shapes.
    const header: CpimHeader =
      line.lang === undefined
        ? { name: line.name, prefix: line.prefix, localName: line.localName, namespace, value, rawValue: line.rawValue, params: line.params }
        : { name: line.name, prefix: line.prefix, localName: line.localName, namespace, value, rawValue: line.rawValue, params: line.params, lang: line.lang };
    headers.push(header);
  }

  const entity = readHeaderBlock(body, block.end, 'message/cpim encapsulated entity');
  const entityHeaders = parseMimeHeaders(entity, 'message/cpim encapsulated entity');
  const contentTypes = entityHeaders.filter(([name]) => name.toLowerCase() === 'content-type');
  const contentType = contentTypes[0]?.[1];
  if (contentType === undefined) {
    throw new ParseError('missing-header', 'the encapsulated entity has no Content-Type (RFC 3862 §2.4)', 'Content-Type');
  }
  if (contentTypes.length > 1 || !MEDIA_TYPE.test(contentType)) {
    throw new ParseError('bad-header-value', 'the encapsulated entity has a bad or repeated Content-Type', 'Content-Type');
  }

  return {
    mimeHeaders,
    headers,
    namespaces: bindings,
    required,
    contentType,
    contentHeaders: entityHeaders.filter(([name]) => name.toLowerCase() !== 'content-type'),
    content: body.slice(entity.end),
  };
}

/** Require-header value: Header-name *( "," Header-name ), prefixes resolved where the header stands. */
function parseRequire(value: string, bindings: ReadonlyMap<string, string>, header: string): CpimName[] {
  return value.split(',').map((item) => {
    const split = splitHeaderName(trimSpaceAndTab(item));
    const namespace = split && bindings.get(split.prefix ?? '');
    if (split === undefined || namespace === undefined) {
      throw new ParseError('bad-header-value', 'Require lists a malformed name or an undeclared prefix (RFC 3862 §4.7)', header);
    }
    return { namespace, name: split.localName };
  });
}

// ---------------------------------------------------------------------------------------------
// Lookup and typed accessors
// ---------------------------------------------------------------------------------------------

/** All headers named `localName` in namespace `namespaceUri`, whatever prefix the sender chose. */
export function cpimHeaders(message: CpimMessage, namespaceUri: string, localName: string): CpimHeader[] {
  const key = namespaceKey(namespaceUri);
  const found: CpimHeader[] = [];
  for (const header of message.headers) {
    if (header.localName === localName && namespaceKey(header.namespace) === key) found.push(header);
  }
  return found;
}

/** The first header named `localName` in namespace `namespaceUri`, if any (see `cpimHeaders`). */
export function cpimHeader(message: CpimMessage, namespaceUri: string, localName: string): CpimHeader | undefined {
  return cpimHeaders(message, namespaceUri, localName)[0];
}

function singleCoreHeader(message: CpimMessage, localName: string): CpimHeader | undefined {
  const found = cpimHeaders(message, CPIM_CORE_NAMESPACE, localName);
  if (found.length > 1) throw new ParseError('bad-header-value', `more than one ${localName} header`, localName);
  return found[0];
}

/**
 * Reads `[Formal-name] "<" URI ">"` from a header (RFC 3862 §4.1–§4.3), where
 * Formal-name = 1*( Token SP ) / String.
 */
export function cpimHeaderAddress(header: CpimHeader): CpimAddress {
  const raw = header.rawValue;
  let name: string;
  let rest: string;
  if (raw.startsWith('"')) {
    const quoted = readQuotedString(raw, 0);
    if (quoted === undefined) throw new ParseError('bad-header-value', 'unterminated formal name', header.name);
    name = quoted.text;
    rest = trimSpaceAndTab(raw.slice(quoted.end));
  } else {
    const open = raw.indexOf('<');
    name = unescapeCpimValue(trimSpaceAndTab(open < 0 ? raw : raw.slice(0, open)));
    rest = open < 0 ? '' : raw.slice(open);
  }
  const uri = unescapeCpimValue(rest.slice(1, -1));
  if (!rest.startsWith('<') || !rest.endsWith('>') || !ABSOLUTE_URI.test(uri)) {
    throw new ParseError('bad-header-value', `${header.name} must be [Formal-name] <absolute-URI> (RFC 3862 §4.1)`, header.name);
  }
  return name === '' ? { uri } : { uri, name };
}

/** The From address (RFC 3862 §4.1); undefined if absent; a second From is an error. */
export function cpimFrom(message: CpimMessage): CpimAddress | undefined {
  const header = singleCoreHeader(message, 'From');
  return header && cpimHeaderAddress(header);
}

/** The To addresses in order (RFC 3862 §4.2). */
export function cpimTo(message: CpimMessage): CpimAddress[] {
  return cpimHeaders(message, CPIM_CORE_NAMESPACE, 'To').map(cpimHeaderAddress);
}

/** The cc addresses in order (RFC 3862 §4.3). */
export function cpimCc(message: CpimMessage): CpimAddress[] {
  return cpimHeaders(message, CPIM_CORE_NAMESPACE, 'cc').map(cpimHeaderAddress);
}

/** The Subject headers in order, each with its language tag (RFC 3862 §4.5). */
export function cpimSubjects(message: CpimMessage): CpimText[] {
  return cpimHeaders(message, CPIM_CORE_NAMESPACE, 'Subject').map((h) =>
    h.lang === undefined ? { value: h.value } : { value: h.value, lang: h.lang },
  );
}

/** The DateTime instant (RFC 3862 §4.4); undefined if absent; malformed or repeated is an error. */
export function cpimDateTime(message: CpimMessage): Date | undefined {
  const header = singleCoreHeader(message, 'DateTime');
  return header && parseCpimDateTime(header.value, 'DateTime').date;
}

// ---------------------------------------------------------------------------------------------
// DateTime (RFC 3339 §5.6, as RFC 3862 §4.4 requires)
// ---------------------------------------------------------------------------------------------

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Parses an RFC 3339 date-time. Fractions beyond milliseconds are cut; a leap second (:60)
 * rolls over into the next minute, since Date cannot hold it.
 *
 * @throws ParseError `bad-header-value` (with `header` as the header name) if malformed or out of range.
 */
export function parseCpimDateTime(text: string, header = 'DateTime'): { date: Date; utcOffsetMinutes: number } {
  const m = DATE_TIME.exec(text);
  if (m === null) throw badDateTime(text, header);
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  const offsetHours = Number(m[10] ?? 0);
  const offsetMinutesPart = Number(m[11] ?? 0);
  if (
    month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) ||
    hour > 23 || minute > 59 || second > 60 || offsetHours > 23 || offsetMinutesPart > 59
  ) {
    throw badDateTime(text, header);
  }
  // `|| 0` turns the -0 of "-00:00" (RFC 3339 §4.3: offset unknown) into a plain 0.
  const utcOffsetMinutes = (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutesPart) || 0;
  const fraction = m[7];
  const millis = fraction === undefined ? 0 : Number(fraction.slice(0, 3).padEnd(3, '0'));
  let localTime: number;
  if (year >= 100) {
    localTime = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  } else {
    // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999.
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day);
    date.setUTCHours(hour, minute, second, millis);
    localTime = date.getTime();
  }
  return { date: new Date(localTime - utcOffsetMinutes * 60_000), utcOffsetMinutes };
}

/** A function, not a closure per call: the DateTime of every signed message is parsed. */
function badDateTime(text: string, header: string): ParseError {
  return new ParseError('bad-header-value', `not an RFC 3339 date-time: ${JSON.stringify(text)}`, header);
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/**
 * Formats an RFC 3339 date-time in the given UTC offset (`Z` for 0), with milliseconds only
 * when they are not zero.
 *
 * @throws RangeError for an invalid Date, an offset outside ±23:59 or not whole minutes, or a year outside 0000–9999.
 */
export function formatCpimDateTime(date: Date, utcOffsetMinutes = 0): string {
  if (!Number.isInteger(utcOffsetMinutes) || Math.abs(utcOffsetMinutes) >= 24 * 60) {
    throw new RangeError(`bad UTC offset: ${utcOffsetMinutes} minutes`);
  }
  const local = new Date(date.getTime() + utcOffsetMinutes * 60_000);
  if (Number.isNaN(local.getTime())) throw new RangeError('invalid Date');
  const year = local.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year ${year} cannot be written in RFC 3339`);
  const millis = local.getUTCMilliseconds();
  const fraction = millis === 0 ? '' : `.${pad(millis, 3)}`;
  const abs = Math.abs(utcOffsetMinutes);
  const offset =
    utcOffsetMinutes === 0 ? 'Z' : `${utcOffsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
  return (
    `${pad(year, 4)}-${pad(local.getUTCMonth() + 1, 2)}-${pad(local.getUTCDate(), 2)}` +
    `T${pad(local.getUTCHours(), 2)}:${pad(local.getUTCMinutes(), 2)}:${pad(local.getUTCSeconds(), 2)}${fraction}${offset}`
  );
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

function formatAddress(address: CpimAddress, header: string): string {
  if (!ABSOLUTE_URI.test(address.uri)) throw new RangeError(`${header}: not an absolute URI: ${JSON.stringify(address.uri)}`);
  const uri = `<${escapeCpimValue(address.uri)}>`;
  const name = address.name ?? '';
  if (name === '') return uri;
  // Formal-name = 1*( Token SP ) / String: plain words stay bare, anything else is quoted.
  const bare = name.split(' ').every((word) => TOKEN.test(word));
  return `${bare ? name : quoteString(name)} ${uri}`;
}

function headerLine(name: string, value: string, lang?: string): string {
  if (lang !== undefined && !LANGUAGE_TAG.test(lang)) throw new RangeError(`${name}: bad language tag ${JSON.stringify(lang)}`);
  return `${name}:${lang === undefined ? '' : `;lang=${lang}`} ${value}`;
}

function checkHeaderName(name: string): void {
  if (!NAME.test(name)) throw new RangeError(`not a CPIM header name: ${JSON.stringify(name)}`);
}

function checkRequiredName(fullName: string, prefixes: ReadonlySet<string>): void {
  const split = splitHeaderName(fullName);
  if (split === undefined || (split.prefix !== undefined && !prefixes.has(split.prefix))) {
    throw new RangeError(`Require: bad name or undeclared prefix: ${JSON.stringify(fullName)}`);
  }
}

/** An unpaired surrogate: TextEncoder would silently write it as U+FFFD. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkMimeHeader(name: string, value: string): void {
  if (!MIME_FIELD_NAME.test(name)) throw new RangeError(`not a MIME header name: ${JSON.stringify(name)}`);
  // MIME headers have no escape mechanism, so what cannot be written as is is refused.
  if (/[\u0000-\u001f\u007f]/.test(value) || LONE_SURROGATE.test(value) || trimSpaceAndTab(value) !== value) {
    throw new RangeError(`${name}: MIME header values must be well-formed, without control characters or edge whitespace`);
  }
}

/**
 * Builds a `message/cpim` body (to be sent with SIP `Content-Type: message/cpim`): CPIM headers
 * per RFC 3862 §2.2 (UTF-8, CRLF, one SP after the colon, no folding, §2.3 escapes), an empty
 * line, `Content-Type` and the other content headers, an empty line, the content bytes as given.
 *
 * @throws RangeError for input that cannot be written faithfully: a URI that is not absolute
 *   or contains whitespace or angle brackets, a bad header name, language tag or date, an
 *   undeclared prefix, a default namespace, an extension header that would shadow a core one.
 */
export function buildCpim(input: CpimBuildInput): Uint8Array {
  const lines: string[] = [];
  lines.push(headerLine('From', formatAddress(input.from, 'From')));
  for (const to of input.to) lines.push(headerLine('To', formatAddress(to, 'To')));
  for (const cc of input.cc ?? []) lines.push(headerLine('cc', formatAddress(cc, 'cc')));
  lines.push(headerLine('DateTime', formatCpimDateTime(input.dateTime, input.utcOffsetMinutes ?? 0)));

  const subjects = typeof input.subject === 'string' ? [{ value: input.subject }] : (input.subject ?? []);
  for (const subject of subjects) lines.push(headerLine('Subject', escapeCpimValue(subject.value), subject.lang));

  const prefixes = new Set<string>();
  for (const [prefix, uri] of Object.entries(input.namespaces ?? {})) {
    if (prefix === '') throw new RangeError('buildCpim writes core headers unprefixed, so the default namespace cannot be changed');
    checkHeaderName(prefix);
    if (!ABSOLUTE_URI.test(uri)) throw new RangeError(`NS ${prefix}: not an absolute URI: ${JSON.stringify(uri)}`);
    lines.push(headerLine('NS', `${prefix} <${escapeCpimValue(uri)}>`));
    prefixes.add(prefix);
  }

  if (input.require !== undefined && input.require.length > 0) {
    for (const name of input.require) checkRequiredName(name, prefixes);
    lines.push(headerLine('Require', input.require.join(',')));
  }

  for (const extra of input.extraHeaders ?? []) {
    checkHeaderName(extra.name);
    if (extra.ns === undefined && CORE_HEADER_NAMES.has(extra.name)) {
      throw new RangeError(`${extra.name} is a core header: use its own field of CpimBuildInput`);
    }
    if (extra.ns !== undefined && !prefixes.has(extra.ns)) throw new RangeError(`undeclared namespace prefix ${JSON.stringify(extra.ns)}`);
    const name = extra.ns === undefined ? extra.name : `${extra.ns}.${extra.name}`;
    lines.push(headerLine(name, escapeCpimValue(extra.value), extra.lang));
  }

  if (!MEDIA_TYPE.test(input.contentType)) throw new RangeError(`not a media type: ${JSON.stringify(input.contentType)}`);
  checkMimeHeader('Content-Type', input.contentType);
  const entityLines = [`Content-Type: ${input.contentType}`];
  for (const [name, value] of input.contentHeaders ?? []) {
    if (name.toLowerCase() === 'content-type') throw new RangeError('Content-Type goes in contentType');
    checkMimeHeader(name, value);
    entityLines.push(`${name}: ${value}`);
  }

  const head = new TextEncoder().encode(`${lines.join('\r\n')}\r\n\r\n${entityLines.join('\r\n')}\r\n\r\n`);
  const out = new Uint8Array(head.length + input.content.length);
  out.set(head, 0);
  out.set(input.content, head.length);
  return out;
}
