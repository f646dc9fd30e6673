/**
 * URIs as SIP carries them: `sip:` and `sips:` (RFC 3261 §19.1, grammar in §25.1), `im:` and
 * `pres:` (RFC 3860, RFC 3859), and any other absolute URI (`tel:`, `http:`, schemes nobody
 * knows), which RFC 3261 §8.2.2.1 and RFC 4475 §3.3.2 (unkscm) require us to accept in To/From.
 *
 * Pure string functions: `parseUri` turns text into a `Uri`, `formatUri` turns it back, and
 * `uriEquals` implements the comparison rules of RFC 3261 §19.1.4 (as clarified for IP
 * addresses by RFC 5954 §4). The scanners are hand-written loops over char codes with
 * lookup tables: no regular expressions, so no catastrophic backtracking, and they are fast.
 *
 * How text is kept:
 *  - `scheme` is lowercased (schemes are case-insensitive, `SIP:` parses as `sip`).
 *  - `user` and `password` are kept exactly as written, still %-escaped: the user part is an
 *    identity (it may be a telephone-subscriber, RFC 3261 §19.1.6) and we do not rewrite it.
 *    `unescapeUriPart` gives the decoded text for display.
 *  - `host` is lowercased; an IPv6 address keeps its brackets (`[2001:db8::1]`).
 *  - URI parameter and header names and values are kept %-escaped, but *normalised*: an escape
 *    of a character that may appear literally in that place is decoded (`%6C%72` → `lr`,
 *    `%41` → `A`) and the hex of the escapes that remain is uppercased (RFC 3986 §6.2.2). So
 *    `transport=%54CP` reads as `TCP`, and the RFC 4475 esc01 Contact's `%6C%72` is `lr`,
 *    while `v%61lue%25%34%31` stays `value%2541` (one level of unescaping only: it means
 *    "value%41", not "valueA"). Parameter names are also lowercased. The stored form is always
 *    valid to write back as it is.
 *
 * Every malformed input throws `ParseError('bad-uri', …)`, never anything else.
 */
import { ParseError } from './message/parse-error.js';

// ---------------------------------------------------------------------------------------------
// Parameters (shared with header field values; header-values.ts re-exports this class)
// ---------------------------------------------------------------------------------------------

/**
 * The `;name=value;flag` parameters of a URI (RFC 3261 §19.1.1) or of a header field value
 * (§7.3.1, generic-param in §25.1).
 *
 * It behaves as an ordered Map (it implements the `Map` interface, though it is not
 * `instanceof Map`) whose keys are the lowercased parameter names (names are case-insensitive;
 * `get`, `has`, `set` and `delete` lowercase the name you pass). A valueless parameter (`;lr`,
 * `;rport`) maps to `null`. Iteration is in insertion order; `set` on a name already there
 * keeps its place, as Map does.
 *
 * Header parameter values are stored without their quotes and with quoted-pairs undone;
 * `quoted` records which names had a quoted-string value, so formatting writes them quoted again
 * (a quoted value can mean something else than the same bare token, e.g. RFC 3840 feature tags
 * such as `;mobility="fixed"`). A value that cannot be written bare is quoted on output whatever
 * `quoted` says. URI parameters are never quoted (they use %-escapes instead; see the file
 * comment), so their `quoted` set stays empty.
 *
 * Why not a real Map: every parsed message makes several of these (Via, From, To, their URIs),
 * mostly with zero to three entries. A Map allocates a hash table up front and hashes each
 * freshly sliced name; a flat `[name, value, name, value, …]` array searched linearly costs
 * less to build, to look up in and to collect (issue #5: GC was ~17 % of listener CPU; this
 * took the parser benchmark from 1.76x to 1.82x npm `sip`, medians of seven runs each).
 */
export class Params implements Map<string, string | null> {
  // Lowercased names at even indices, their values after them. EMPTY_ITEMS (shared, never
  // written) until the first parameter arrives, so an empty list allocates nothing more.
  #items: (string | null)[] = EMPTY_ITEMS;
  // Created on first use: most parameter sets never have a quoted value, and parsing makes many.
  #quoted: Set<string> | undefined;

  constructor(entries?: Iterable<readonly [string, string | null]> | null) {
    if (entries) for (const [name, value] of entries) this.set(name, value);
  }

  /**
   * For parsers: parameters already known to have distinct lower-case names and no quoted
   * value, as `[name, value, name, value, …]`. The array is kept, not copied.
   */
  static ofDistinct(items: (string | null)[]): Params {
    const params = new Params();
    if (items.length > 0) params.#items = items;
    return params;
  }

  /** Lowercased names whose value arrived (or should be written) as a quoted-string. Change it with `set`. */
  get quoted(): ReadonlySet<string> {
    return this.#quoted ?? NO_NAMES;
  }

  get size(): number {
    return this.#items.length >> 1;
  }

  get [Symbol.toStringTag](): string {
    return 'Params';
  }

  /** Index of `key` (exact, already lowercased) in #items, or -1. */
  #indexOf(key: string): number {
    const items = this.#items;
    for (let i = 0; i < items.length; i += 2) if (items[i] === key) return i;
    return -1;
  }

  // Names are stored lowercased, so a name found as it is needs no lowercasing (the usual case:
  // callers ask for 'branch' or 'tag'); any other is looked up again lowercased.
  #find(name: string): number {
    const i = this.#indexOf(name);
    if (i >= 0) return i;
    const key = name.toLowerCase();
    return key === name ? -1 : this.#indexOf(key);
  }

  get(name: string): string | null | undefined {
    const i = this.#find(name);
    return i < 0 ? undefined : (this.#items[i + 1] as string | null);
  }

  has(name: string): boolean {
    return this.#find(name) >= 0;
  }

  /** Sets a parameter; `quoted` asks for the value to be written as a quoted-string. */
  set(name: string, value: string | null, quoted = false): this {
    const key = name.toLowerCase();
    const i = this.#indexOf(key);
    if (i >= 0) this.#items[i + 1] = value;
    else this.#append(key, value);
    if (quoted) (this.#quoted ??= new Set()).add(key);
    else this.#quoted?.delete(key);
    return this;
  }

  /**
   * For parsers, which lowercase names themselves and must refuse a repeated one (§7.3.1,
   * §19.1.1): adds `lowercaseName` unless it is already there, and says whether it did. Skips
   * the lowercasing and the quoted-set upkeep of `set`.
   */
  addNew(lowercaseName: string, value: string | null, quoted = false): boolean {
    if (this.#indexOf(lowercaseName) >= 0) return false;
    this.#append(lowercaseName, value);
    if (quoted) (this.#quoted ??= new Set()).add(lowercaseName);
    return true;
  }

  #append(key: string, value: string | null): void {
    // The first pair gets an array of exactly its size; later ones grow it.
    if (this.#items === EMPTY_ITEMS) this.#items = [key, value];
    else this.#items.push(key, value);
  }

  delete(name: string): boolean {
    const key = name.toLowerCase();
    this.#quoted?.delete(key);
    const i = this.#indexOf(key);
    if (i < 0) return false;
    this.#items.splice(i, 2);
    return true;
  }

  clear(): void {
    this.#quoted = undefined;
    this.#items = EMPTY_ITEMS;
  }

  // Iteration works on a snapshot taken when it starts: deleting entries while iterating is
  // safe (as with a Map); entries added meanwhile are not visited (a Map would visit them).

  forEach(callback: (value: string | null, name: string, params: Map<string, string | null>) => void, thisArg?: unknown): void {
    const items = this.#items.slice();
    for (let i = 0; i < items.length; i += 2) callback.call(thisArg, items[i + 1] as string | null, items[i] as string, this);
  }

  entries(): MapIterator<[string, string | null]> {
    const items = this.#items;
    const pairs: [string, string | null][] = [];
    for (let i = 0; i < items.length; i += 2) pairs.push([items[i] as string, items[i + 1] as string | null]);
    return pairs.values();
  }

  keys(): MapIterator<string> {
    const items = this.#items;
    const names: string[] = [];
    for (let i = 0; i < items.length; i += 2) names.push(items[i] as string);
    return names.values();
  }

  values(): MapIterator<string | null> {
    const items = this.#items;
    const values: (string | null)[] = [];
    for (let i = 1; i < items.length; i += 2) values.push(items[i] as string | null);
    return values.values();
  }

  [Symbol.iterator](): MapIterator<[string, string | null]> {
    return this.entries();
  }
}

const EMPTY_ITEMS: (string | null)[] = [];
const NO_NAMES: ReadonlySet<string> = new Set();

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** A `sip:` or `sips:` URI (RFC 3261 §19.1.1). */
export interface SipUri {
  scheme: 'sip' | 'sips';
  /** As written, still %-escaped. Absent when the URI has no userinfo (`sip:example.com`). */
  user?: string;
  /** As written, still %-escaped; may be `''` (`sip:alice:@host`). RFC 3261 §19.1.1 says NOT RECOMMENDED. */
  password?: string;
  /** Lowercased hostname, IPv4 address, or IPv6 reference with brackets (`[2001:db8::1]`). */
  host: string;
  /** Absent when not written; an absent port is not 5060 for comparison (§19.1.4). */
  port?: number;
  /** URI parameters (`;transport=tcp;lr`), names lowercased, values normalised-escaped. */
  params: Params;
  /** URI headers (`?subject=x&priority=urgent`) in order, normalised-escaped. */
  headers: Array<[string, string]>;
}

/** An `im:` (RFC 3860 §3) or `pres:` (RFC 3859 §3) URI: mailto-like, `im:alice@example.com`. */
export interface ImUri {
  scheme: 'im' | 'pres';
  /** The local part, as written (%-escaped). */
  user?: string;
  /** Lowercased domain (or an IP literal). */
  host: string;
  headers: Array<[string, string]>;
}

/** Any other absolute URI (`tel:+1-212-555-0101`, `http://…`, `urn:…`, unknown schemes). */
export interface AbsoluteUri {
  /** Lowercased. */
  scheme: string;
  /** Everything after the first `:`, as written. */
  opaque: string;
}

export type Uri = SipUri | ImUri | AbsoluteUri;

export function isSipUri(uri: Uri): uri is SipUri {
  return !('opaque' in uri) && (uri.scheme === 'sip' || uri.scheme === 'sips');
}

export function isImUri(uri: Uri): uri is ImUri {
  return !('opaque' in uri) && (uri.scheme === 'im' || uri.scheme === 'pres');
}

export function isAbsoluteUri(uri: Uri): uri is AbsoluteUri {
  return 'opaque' in uri;
}

// ---------------------------------------------------------------------------------------------
// Character classes (RFC 3261 §25.1; RFC 2396 §2 for absoluteURI)
// ---------------------------------------------------------------------------------------------

const ALPHA = 1 << 0;
const DIGIT = 1 << 1;
/** mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")" */
const MARK = 1 << 2;
/** user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/" */
const USER_EXTRA = 1 << 3;
/** password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ) */
const PASSWORD_EXTRA = 1 << 4;
/** param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$" */
const PARAM_EXTRA = 1 << 5;
/** hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$" */
const HNV_EXTRA = 1 << 6;
/** RFC 2396 reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / "," (plus "[" "]" of RFC 2732) */
const URIC_EXTRA = 1 << 7;
/** scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
const SCHEME_EXTRA = 1 << 8;
const HEXDIG = 1 << 9;
/** Local part of an im:/pres: URI: "&" / "=" / "+" / "$" / "," / "/" beside unreserved. */
const IM_USER_EXTRA = 1 << 10;

const UNRESERVED = ALPHA | DIGIT | MARK;
const USER_CHARS = UNRESERVED | USER_EXTRA;
const PASSWORD_CHARS = UNRESERVED | PASSWORD_EXTRA;
const PARAM_CHARS = UNRESERVED | PARAM_EXTRA;
const HEADER_CHARS = UNRESERVED | HNV_EXTRA;
const URIC_CHARS = UNRESERVED | URIC_EXTRA;
const IM_USER_CHARS = UNRESERVED | IM_USER_EXTRA;

const CHAR_CLASS = new Uint16Array(128);
function addClass(chars: string, bit: number): void {
  for (let i = 0; i < chars.length; i++) CHAR_CLASS[chars.charCodeAt(i)]! |= bit;
}
addClass('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', ALPHA);
addClass('0123456789', DIGIT);
addClass("-_.!~*'()", MARK);
addClass('&=+$,;?/', USER_EXTRA);
addClass('&=+$,', PASSWORD_EXTRA);
addClass('[]/:&+$', PARAM_EXTRA);
addClass('[]/?:+$', HNV_EXTRA);
addClass(';/?:@&=+$,[]', URIC_EXTRA);
addClass('+-.', SCHEME_EXTRA);
addClass('0123456789ABCDEFabcdef', HEXDIG);
addClass('&=+$,/', IM_USER_EXTRA);

function inClass(code: number, mask: number): boolean {
  return code < 128 && (CHAR_CLASS[code]! & mask) !== 0;
}

function hexValue(code: number): number {
  if (code <= 57) return code - 48;
  return (code | 0x20) - 87;
}

const PERCENT = 37;
const COLON = 58;
const SEMICOLON = 59;
const QUESTION = 63;
const DOT = 46;
const HYPHEN = 45;
const LBRACKET = 91;
const RBRACKET = 93;
const AMPERSAND = 38;
const EQUALS = 61;

function fail(message: string): never {
  throw new ParseError('bad-uri', message);
}

/**
 * Returns the index of the first character from `pos` that is neither in `mask` nor part of a
 * `%HH` escape. A `%` not followed by two hex digits is an error anywhere in a URI.
 */
function scanEscaped(text: string, pos: number, end: number, mask: number): number {
  while (pos < end) {
    const c = text.charCodeAt(pos);
    if (c === PERCENT) {
      if (pos + 2 >= end || !inClass(text.charCodeAt(pos + 1), HEXDIG) || !inClass(text.charCodeAt(pos + 2), HEXDIG)) {
        fail(`invalid %-escape at offset ${pos}`);
      }
      pos += 3;
    } else if (c < 128 && (CHAR_CLASS[c]! & mask) !== 0) {
      pos++;
    } else {
      break;
    }
  }
  return pos;
}

// ---------------------------------------------------------------------------------------------
// Hosts: hostnames, IPv4, IPv6 (RFC 3261 §25.1 as corrected by RFC 5954 §3; RFC 5118)
// ---------------------------------------------------------------------------------------------

/** Whether [start, end) is exactly `a.b.c.d`, each 1–3 digits and ≤ 255. Allocates nothing. */
function isIPv4Span(text: string, start: number, end: number): boolean {
  let i = start;
  for (let octet = 0; ; octet++) {
    let value = 0;
    const digitsStart = i;
    while (i < end && i - digitsStart < 4) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      value = value * 10 + (c - 48);
      i++;
    }
    const digits = i - digitsStart;
    if (digits === 0 || digits > 3 || value > 255) return false;
    if (octet === 3) return i === end;
    if (i >= end || text.charCodeAt(i) !== DOT) return false;
    i++;
  }
}

/** Parses `a.b.c.d` (each 1–3 digits, ≤ 255) spanning exactly [start, end); null if not one. */
function parseIPv4(text: string, start: number, end: number): number[] | null {
  if (!isIPv4Span(text, start, end)) return null;
  return text.slice(start, end).split('.').map(Number);
}

/**
 * Parses an IPv6 address (no brackets) spanning exactly [start, end) into its eight 16-bit
 * groups, or returns null. Follows RFC 4291 §2.2 (the grammar RFC 5954 puts into RFC 3261),
 * and tolerates the one extra form RFC 3261's original ABNF allowed, three colons before an
 * embedded IPv4 address (`2001:db8:::192.0.2.1`), which RFC 5118 §4.10 says to accept.
 */
function parseIPv6(text: string, start: number, end: number): number[] | null {
  const head: number[] = [];
  let tail: number[] | null = null; // groups after "::"; null while no "::" has been seen
  let i = start;

  // After a "::", a third colon is allowed only right before an embedded IPv4 address.
  const skipBuggyThirdColon = (): boolean => {
    if (i < end && text.charCodeAt(i) === COLON) {
      if (!isIPv4Span(text, i + 1, end)) return false;
      i++;
    }
    return true;
  };

  if (end - start >= 2 && text.charCodeAt(i) === COLON && text.charCodeAt(i + 1) === COLON) {
    tail = [];
    i += 2;
    if (!skipBuggyThirdColon()) return null;
  } else if (i < end && text.charCodeAt(i) === COLON) {
    return null;
  }

  while (i < end) {
    const groups: number[] = tail ?? head;
    let j = i;
    let value = 0;
    while (j < end && j - i < 5 && inClass(text.charCodeAt(j), HEXDIG)) {
      value = value * 16 + hexValue(text.charCodeAt(j));
      j++;
    }
    if (j < end && text.charCodeAt(j) === DOT) {
      // An embedded IPv4 address is always the last 32 bits.
      const v4 = parseIPv4(text, i, end);
      if (v4 === null) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      i = end;
      break;
    }
    if (j === i || j - i > 4) return null;
    groups.push(value);
    i = j;
    if (i === end) break;
    if (text.charCodeAt(i) !== COLON) return null;
    i++;
    if (i < end && text.charCodeAt(i) === COLON) {
      if (tail !== null) return null; // a second "::"
      tail = [];
      i++;
      if (!skipBuggyThirdColon()) return null;
    } else if (i === end) {
      return null; // a single trailing colon
    }
  }

  if (tail === null) return head.length === 8 ? head : null;
  const count = head.length + tail.length;
  if (count > 7) return null;
  const zeros: number[] = new Array<number>(8 - count).fill(0);
  return head.concat(zeros, tail);
}

/**
 * Reads a hostname or an IPv4 address starting at `pos`, up to the first character that
 * cannot be part of one, in a single pass. Returns it as stored (lowercased), or null if what
 * is there is neither; its length is how much text it took.
 *
 * hostname = *( domainlabel "." ) toplabel [ "." ]: labels are alphanumerics with inner
 * hyphens, and the top label starts with a letter, so a text with no letter at all can only be
 * an IPv4address (1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each at most 255).
 */
function readNameOrIPv4(text: string, pos: number): string | null {
  const n = text.length;
  let labelStart = pos; // where the current label starts
  let previousLabelStart = pos; // where the label before the last "." starts
  let hasLetter = false;
  let hasUpper = false;
  // The IPv4 reading, kept along the way: dots so far, digits and value of the current label.
  let dots = 0;
  let octetDigits = 0;
  let octetValue = 0;
  let octetsFit = true; // every label so far is 1-3 digits and at most 255
  let previous = DOT; // the character before `i`; a label start looks like one after a dot
  let i = pos;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 97 && c <= 122) hasLetter = true;
    else if (c >= 65 && c <= 90) hasLetter = hasUpper = true;
    else if (c === HYPHEN) {
      if (previous === DOT) return null; // a label cannot start with "-"
      octetsFit = false;
    } else if (c === DOT) {
      if (previous === DOT || previous === HYPHEN) return null; // empty label, or ending in "-"
      previousLabelStart = labelStart;
      labelStart = i + 1;
      dots++;
      octetDigits = 0;
      octetValue = 0;
    } else if (c >= 48 && c <= 57) {
      octetValue = octetValue * 10 + (c - 48);
      if (++octetDigits > 3 || octetValue > 255) octetsFit = false;
    } else {
      break;
    }
    previous = c;
  }
  if (i === pos) return null;
  if (!hasLetter) return octetsFit && dots === 3 && octetDigits > 0 ? text.slice(pos, i) : null;
  if (previous === HYPHEN) return null;
  // With a trailing dot (`example.com.`) the top label is the one before it.
  const topLabel = previous === DOT ? previousLabelStart : labelStart;
  if (!inClass(text.charCodeAt(topLabel), ALPHA)) return null;
  const host = text.slice(pos, i);
  return hasUpper ? host.toLowerCase() : host;
}

/** True for a textual IPv4 address (`192.0.2.1`). */
export function isIPv4Address(text: string): boolean {
  return isIPv4Span(text, 0, text.length);
}

/**
 * Whether [start, end) is an IPv6 address, exactly as `parseIPv6` decides it, without building
 * its groups: only counting them (the Via of every datagram from an IPv6 peer asks this).
 */
export function isIPv6Span(text: string, start: number, end: number): boolean {
  let head = 0;
  let tail = -1; // groups after "::"; -1 while no "::" has been seen
  let i = start;
  if (end - start >= 2 && text.charCodeAt(i) === COLON && text.charCodeAt(i + 1) === COLON) {
    tail = 0;
    i += 2;
    // After a "::", a third colon is allowed only right before an embedded IPv4 address.
    if (i < end && text.charCodeAt(i) === COLON) {
      if (!isIPv4Span(text, i + 1, end)) return false;
      i++;
    }
  } else if (i < end && text.charCodeAt(i) === COLON) {
    return false;
  }
  while (i < end) {
    let j = i;
    while (j < end && j - i < 5 && inClass(text.charCodeAt(j), HEXDIG)) j++;
    if (j < end && text.charCodeAt(j) === DOT) {
      // An embedded IPv4 address is always the last 32 bits: two groups.
      if (!isIPv4Span(text, i, end)) return false;
      if (tail < 0) head += 2;
      else tail += 2;
      break;
    }
    if (j === i || j - i > 4) return false;
    if (tail < 0) head++;
    else tail++;
    i = j;
    if (i === end) break;
    if (text.charCodeAt(i) !== COLON) return false;
    i++;
    if (i < end && text.charCodeAt(i) === COLON) {
      if (tail >= 0) return false; // a second "::"
      tail = 0;
      i++;
      if (i < end && text.charCodeAt(i) === COLON) {
        if (!isIPv4Span(text, i + 1, end)) return false;
        i++;
      }
    } else if (i === end) {
      return false; // a single trailing colon
    }
  }
  return tail < 0 ? head === 8 : head + tail <= 7;
}

/** True for an IPv6 address written without brackets (`2001:db8::1`). */
export function isIPv6Address(text: string): boolean {
  return parseIPv6(text, 0, text.length) !== null;
}

/** True for an IPv6 reference: an IPv6 address in brackets (`[2001:db8::1]`). */
export function isIPv6Reference(text: string): boolean {
  const n = text.length;
  return n > 2 && text.charCodeAt(0) === LBRACKET && text.charCodeAt(n - 1) === RBRACKET && parseIPv6(text, 1, n - 1) !== null;
}

/**
 * Validates `host` = hostname / IPv4address / IPv6reference (RFC 3261 §25.1) and returns it
 * in the form we store (lowercased, brackets kept), or null if it is not a host. An IPv6
 * address without brackets is not a host here (RFC 5118 §4.2: `sip:2001:db8::10` is invalid).
 */
export function normalizeHost(text: string): string | null {
  const host = readHost(text, 0);
  return host !== null && host.length === text.length ? host : null;
}

/**
 * Reads a host (hostname, IPv4 address, or IPv6 reference in brackets) starting at `pos` and
 * returns it as stored (lowercased), or null if there is none. It occupied `host.length`
 * characters; the caller checks what follows.
 */
export function readHost(text: string, pos: number): string | null {
  if (pos < text.length && text.charCodeAt(pos) === LBRACKET) {
    const close = text.indexOf(']', pos);
    if (close === -1 || parseIPv6(text, pos + 1, close) === null) return null;
    return text.slice(pos, close + 1).toLowerCase();
  }
  return readNameOrIPv4(text, pos);
}

/** Formats eight 16-bit groups the RFC 5952 way (lowercase, longest zero run as "::"). */
function formatIPv6Groups(groups: readonly number[]): string {
  // IPv4-mapped addresses (::ffff:a.b.c.d) are written with the dotted quad, RFC 5952 §5.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    const g6 = groups[6]!;
    const g7 = groups[7]!;
    return `::ffff:${g6 >> 8}.${g6 & 255}.${g7 >> 8}.${g7 & 255}`;
  }
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The canonical text of a host we stored: IPv6 compressed per RFC 5952, names lowercased. */
function canonicalHost(host: string): string {
  const n = host.length;
  if (n > 2 && host.charCodeAt(0) === LBRACKET && host.charCodeAt(n - 1) === RBRACKET) {
    const groups = parseIPv6(host, 1, n - 1);
    if (groups !== null) return `[${formatIPv6Groups(groups)}]`;
  } else if (host.includes(':')) {
    const groups = parseIPv6(host, 0, n);
    if (groups !== null) return `[${formatIPv6Groups(groups)}]`;
  } else {
    const octets = parseIPv4(host, 0, n);
    if (octets !== null) return octets.join('.');
  }
  return host.toLowerCase();
}

/**
 * Hosts match case-insensitively; IP addresses match when they are the same address however
 * written (RFC 5954 §4: `[::1]` equals `[0:0:0:0:0:0:0:1]`).
 */
function hostsEqual(a: string, b: string): boolean {
  if (a === b) return true;
  return canonicalHost(a) === canonicalHost(b);
}

// ---------------------------------------------------------------------------------------------
// Escapes
// ---------------------------------------------------------------------------------------------

const UPPER_HEX = '0123456789ABCDEF';

function percentByte(byte: number): string {
  return '%' + UPPER_HEX[byte >> 4]! + UPPER_HEX[byte & 15]!;
}

/** Percent-encodes one code point as UTF-8 (a lone surrogate becomes U+FFFD). */
function percentEncodeCodePoint(cp: number): string {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x80) return percentByte(cp);
  if (cp < 0x800) return percentByte(0xc0 | (cp >> 6)) + percentByte(0x80 | (cp & 63));
  if (cp < 0x10000) {
    return percentByte(0xe0 | (cp >> 12)) + percentByte(0x80 | ((cp >> 6) & 63)) + percentByte(0x80 | (cp & 63));
  }
  return (
    percentByte(0xf0 | (cp >> 18)) +
    percentByte(0x80 | ((cp >> 12) & 63)) +
    percentByte(0x80 | ((cp >> 6) & 63)) +
    percentByte(0x80 | (cp & 63))
  );
}

function isEscapeAt(text: string, i: number): boolean {
  return (
    i + 2 < text.length &&
    text.charCodeAt(i) === PERCENT &&
    inClass(text.charCodeAt(i + 1), HEXDIG) &&
    inClass(text.charCodeAt(i + 2), HEXDIG)
  );
}

/**
 * Makes `text` safe to write in a URI component whose literal characters are `mask`: valid
 * `%HH` escapes stay as they are, every other character outside `mask` is %-encoded (UTF-8).
 * Idempotent on text that is already a valid escaped form, which is how everything parsed is kept.
 */
function escapeComponent(text: string, mask: number): string {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === PERCENT ? !isEscapeAt(text, i) : !inClass(c, mask)) break;
    i += c === PERCENT ? 3 : 1;
  }
  if (i >= n) return text;
  let out = text.slice(0, i);
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === PERCENT && isEscapeAt(text, i)) {
      out += text.slice(i, i + 3);
      i += 3;
    } else if (inClass(c, mask)) {
      out += text[i];
      i++;
    } else {
      const cp = text.codePointAt(i)!;
      out += percentEncodeCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
    }
  }
  return out;
}

/**
 * Normalises the escapes of an already valid escaped form: decodes `%HH` where that byte is
 * an ASCII character allowed literally by `mask`, and uppercases the hex of the others
 * (RFC 3986 §6.2.2.1–2). Never changes what the text means.
 */
function normalizeEscapes(text: string, mask: number): string {
  if (!text.includes('%')) return text;
  let out = '';
  let runStart = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    if (text.charCodeAt(i) !== PERCENT || !isEscapeAt(text, i)) continue;
    const byte = hexValue(text.charCodeAt(i + 1)) * 16 + hexValue(text.charCodeAt(i + 2));
    out += text.slice(runStart, i);
    out += inClass(byte, mask) ? String.fromCharCode(byte) : percentByte(byte);
    i += 2;
    runStart = i + 1;
  }
  return out + text.slice(runStart);
}

/**
 * The form two escaped texts are compared in ("escaped characters equal unescaped ones",
 * §19.1.4): every escaped ASCII character except `%` itself is decoded, the other escapes are
 * uppercased, and literal non-ASCII characters are written as their UTF-8 escapes. A stray
 * `%` that does not start an escape counts as `%25`, as `formatUri` would write it.
 */
function comparableEscapes(text: string): string {
  const n = text.length;
  let plain = true;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === PERCENT || c >= 128) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === PERCENT) {
      if (isEscapeAt(text, i)) {
        const byte = hexValue(text.charCodeAt(i + 1)) * 16 + hexValue(text.charCodeAt(i + 2));
        out += byte < 128 && byte !== PERCENT ? String.fromCharCode(byte) : percentByte(byte);
        i += 2;
      } else {
        out += '%25';
      }
    } else if (c < 128) {
      out += text[i];
    } else {
      const cp = text.codePointAt(i)!;
      out += percentEncodeCodePoint(cp);
      if (cp > 0xffff) i++;
    }
  }
  return out;
}

const utf8Decoder = new TextDecoder('utf-8');

/**
 * Decodes every `%HH` escape of a URI component (user, password, parameter, header) and reads
 * the bytes as UTF-8 (a malformed sequence becomes U+FFFD). One level only: `%2541` → `%41`.
 * For display and for comparing against plain text; never write the result back into a URI.
 * Throws ParseError('bad-uri') on a `%` that is not followed by two hex digits.
 */
export function unescapeUriPart(text: string): string {
  if (!text.includes('%')) return text;
  let out = '';
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (text.charCodeAt(i) !== PERCENT) {
      const next = text.indexOf('%', i);
      const stop = next === -1 ? n : next;
      out += text.slice(i, stop);
      i = stop;
      continue;
    }
    // A run of escapes is decoded together so multi-byte UTF-8 sequences come out whole.
    const bytes: number[] = [];
    while (i < n && text.charCodeAt(i) === PERCENT) {
      if (!isEscapeAt(text, i)) fail(`invalid %-escape at offset ${i}`);
      bytes.push(hexValue(text.charCodeAt(i + 1)) * 16 + hexValue(text.charCodeAt(i + 2)));
      i += 3;
    }
    out += utf8Decoder.decode(Uint8Array.from(bytes));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/**
 * Parses a URI. `sip:`/`sips:` get the full RFC 3261 §19.1.1 treatment, `im:`/`pres:` the
 * RFC 3860 one, and any other scheme is checked only for legal characters (RFC 2396 absoluteURI)
 * and kept opaque. The text must be the bare URI: no angle brackets, no surrounding whitespace.
 */
export function parseUri(text: string): Uri {
  const n = text.length;
  if (n === 0) fail('empty URI');
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  if (!inClass(text.charCodeAt(0), ALPHA)) fail('a URI must start with a scheme');
  let i = 1;
  while (i < n && inClass(text.charCodeAt(i), ALPHA | DIGIT | SCHEME_EXTRA)) i++;
  if (i >= n || text.charCodeAt(i) !== COLON) fail('missing ":" after the URI scheme');
  const scheme = text.slice(0, i).toLowerCase();
  const rest = i + 1;
  switch (scheme) {
    case 'sip':
    case 'sips':
      return parseSipUri(text, scheme, rest);
    case 'im':
    case 'pres':
      return parseImUri(text, scheme, rest);
    default: {
      if (rest === n) fail(`empty ${scheme}: URI`);
      const end = scanEscaped(text, rest, n, URIC_CHARS);
      if (end !== n) fail(`invalid character ${JSON.stringify(text[end])} in ${scheme}: URI`);
      return { scheme, opaque: text.slice(rest) };
    }
  }
}

/**
 * Whether the host that ended at `pos` is followed by a second ":" before the parameters: the
 * sign of an IPv6 address written without brackets (`sip:2001:db8::10`), so we can say so.
 */
function looksLikeBareIPv6(text: string, pos: number): boolean {
  let colons = 0;
  for (let i = pos; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === SEMICOLON || c === QUESTION) break;
    if (c === COLON && ++colons === 2) return true;
  }
  return false;
}

/** Reads host [":" port] at `pos`; the host must end at `:`, `;`, `?` or the end of text. */
function readHostPort(text: string, pos: number, allowPort: boolean): { host: string; port?: number; end: number } {
  const n = text.length;
  let host: string;
  if (pos < n && text.charCodeAt(pos) === LBRACKET) {
    const close = text.indexOf(']', pos);
    if (close === -1) fail('unbalanced "[" in host');
    if (parseIPv6(text, pos + 1, close) === null) fail(`invalid IPv6 address ${JSON.stringify(text.slice(pos, close + 1))}`);
    host = text.slice(pos, close + 1).toLowerCase();
    pos = close + 1;
  } else {
    const name = readNameOrIPv4(text, pos);
    if (name === null) {
      if (pos >= n) fail('missing host');
      let end = pos;
      while (end < n && (inClass(text.charCodeAt(end), ALPHA | DIGIT) || text.charCodeAt(end) === HYPHEN || text.charCodeAt(end) === DOT)) end++;
      if (allowPort && end > pos && looksLikeBareIPv6(text, end)) fail('an IPv6 address must be written in brackets, "[...]" (RFC 5118 §4.2)');
      fail(end > pos ? `invalid host ${JSON.stringify(text.slice(pos, end))}` : `invalid character ${JSON.stringify(text[pos])} in host`);
    }
    host = name;
    pos += name.length;
  }
  let port: number | undefined;
  if (pos < n && text.charCodeAt(pos) === COLON) {
    if (!allowPort) fail('a port is not allowed here');
    const hostEnd = pos;
    const digitsStart = ++pos;
    let value = 0;
    while (pos < n) {
      const c = text.charCodeAt(pos);
      if (c < 48 || c > 57) break;
      value = value * 10 + (c - 48);
      if (value > 65535) fail('port out of range (0-65535)');
      pos++;
    }
    if (pos === digitsStart || (pos < n && text.charCodeAt(pos) === COLON)) {
      // `sip:fe80::1` reads as host "fe80" followed by something that is not a port.
      fail(looksLikeBareIPv6(text, hostEnd) ? 'an IPv6 address must be written in brackets, "[...]" (RFC 5118 §4.2)' : 'invalid port');
    }
    port = value;
  }
  if (pos < n) {
    const c = text.charCodeAt(pos);
    if (c !== SEMICOLON && c !== QUESTION) {
      if (c === RBRACKET) fail('unbalanced "]" in host');
      fail(`invalid character ${JSON.stringify(text[pos])} after host`);
    }
  }
  return port === undefined ? { host, end: pos } : { host, port, end: pos };
}

/** Reads `?hname=hvalue&…` (RFC 3261 §19.1.1 headers) from `pos`, which must be at `?`. */
function readUriHeaders(text: string, pos: number, headers: Array<[string, string]>): number {
  const n = text.length;
  for (;;) {
    pos++; // past "?" or "&"
    const nameEnd = scanEscaped(text, pos, n, HEADER_CHARS);
    if (nameEnd === pos) fail('empty URI header name');
    if (nameEnd >= n || text.charCodeAt(nameEnd) !== EQUALS) fail('URI header without "="');
    const valueEnd = scanEscaped(text, nameEnd + 1, n, HEADER_CHARS);
    headers.push([
      normalizeEscapes(text.slice(pos, nameEnd), HEADER_CHARS),
      normalizeEscapes(text.slice(nameEnd + 1, valueEnd), HEADER_CHARS),
    ]);
    pos = valueEnd;
    if (pos < n && text.charCodeAt(pos) === AMPERSAND) continue;
    return pos;
  }
}

function parseSipUri(text: string, scheme: 'sip' | 'sips', pos: number): SipUri {
  const n = text.length;
  let user: string | undefined;
  let password: string | undefined;

  // userinfo: "@" may appear nowhere else unescaped, so the first one ends it. The user part
  // itself may contain ";" and "?" (user-unreserved; RFC 4475 semiuri and intmeth).
  const at = text.indexOf('@', pos);
  if (at !== -1) {
    const userEnd = scanEscaped(text, pos, at, USER_CHARS);
    if (userEnd === pos) fail('empty user part');
    user = text.slice(pos, userEnd);
    if (userEnd < at) {
      if (text.charCodeAt(userEnd) !== COLON) fail(`invalid character ${JSON.stringify(text[userEnd])} in user part`);
      const passwordEnd = scanEscaped(text, userEnd + 1, at, PASSWORD_CHARS);
      if (passwordEnd !== at) fail(`invalid character ${JSON.stringify(text[passwordEnd])} in password`);
      password = text.slice(userEnd + 1, at);
    }
    pos = at + 1;
  }

  const hostPort = readHostPort(text, pos, true);
  pos = hostPort.end;

  // uri-parameters = *( ";" uri-parameter ); pname/pvalue = 1*paramchar
  const params = new Params();
  while (pos < n && text.charCodeAt(pos) === SEMICOLON) {
    const nameStart = pos + 1;
    const nameEnd = scanEscaped(text, nameStart, n, PARAM_CHARS);
    if (nameEnd === nameStart) fail('empty URI parameter name');
    const name = normalizeEscapes(text.slice(nameStart, nameEnd), PARAM_CHARS).toLowerCase();
    let value: string | null = null;
    pos = nameEnd;
    if (pos < n && text.charCodeAt(pos) === EQUALS) {
      const valueEnd = scanEscaped(text, pos + 1, n, PARAM_CHARS);
      if (valueEnd === pos + 1) fail(`empty value for URI parameter "${name}"`);
      value = normalizeEscapes(text.slice(pos + 1, valueEnd), PARAM_CHARS);
      pos = valueEnd;
    }
    if (!params.addNew(name, value)) fail(`duplicate URI parameter "${name}"`);
  }

  const headers: Array<[string, string]> = [];
  if (pos < n && text.charCodeAt(pos) === QUESTION) pos = readUriHeaders(text, pos, headers);
  if (pos < n) fail(`invalid character ${JSON.stringify(text[pos])} in URI`);

  const uri: SipUri = { scheme, host: hostPort.host, params, headers };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (hostPort.port !== undefined) uri.port = hostPort.port;
  return uri;
}

/**
 * IM-URI = "im:" [ to ] [ headers ] (RFC 3860 §3; pres: is the same shape, RFC 3859 §3), where
 * `to` is a mailbox. We accept `local@domain` and a bare `domain`; RFC 2822 display-name
 * mailboxes do not occur in URIs in practice. No port, no parameters.
 */
function parseImUri(text: string, scheme: 'im' | 'pres', pos: number): ImUri {
  const n = text.length;
  let user: string | undefined;
  const at = text.indexOf('@', pos);
  if (at !== -1) {
    const userEnd = scanEscaped(text, pos, at, IM_USER_CHARS);
    if (userEnd === pos) fail(`empty local part in ${scheme}: URI`);
    if (userEnd !== at) fail(`invalid character ${JSON.stringify(text[userEnd])} in ${scheme}: URI local part`);
    user = text.slice(pos, at);
    pos = at + 1;
  }
  const hostPort = readHostPort(text, pos, false);
  pos = hostPort.end;
  const headers: Array<[string, string]> = [];
  if (pos < n && text.charCodeAt(pos) === QUESTION) pos = readUriHeaders(text, pos, headers);
  if (pos < n) fail(`invalid character ${JSON.stringify(text[pos])} in ${scheme}: URI`);
  const uri: ImUri = { scheme, host: hostPort.host, headers };
  if (user !== undefined) uri.user = user;
  return uri;
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

function formatHost(host: string): string {
  // Someone may have put a bare IPv6 address into `host`; a URI needs the brackets.
  if (host.includes(':') && host.charCodeAt(0) !== LBRACKET) return `[${host}]`;
  return host;
}

function formatUriHeaders(headers: ReadonlyArray<readonly [string, string]>): string {
  let out = '';
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    out += (i === 0 ? '?' : '&') + escapeComponent(name, HEADER_CHARS) + '=' + escapeComponent(value, HEADER_CHARS);
  }
  return out;
}

/**
 * Writes a URI. What came from `parseUri` is written back in its stored form; characters that
 * a caller put into a field and that are not allowed there literally are %-escaped, so the
 * result always parses (an empty `user` is treated as no user).
 */
export function formatUri(uri: Uri): string {
  if ('opaque' in uri) return `${uri.scheme}:${escapeComponent(uri.opaque, URIC_CHARS)}`;
  if (uri.scheme === 'im' || uri.scheme === 'pres') {
    const im = uri as ImUri;
    const userinfo = im.user ? escapeComponent(im.user, IM_USER_CHARS) + '@' : '';
    return `${im.scheme}:${userinfo}${formatHost(im.host)}${formatUriHeaders(im.headers)}`;
  }
  const sip = uri as SipUri;
  let out = sip.scheme + ':';
  if (sip.user) {
    out += escapeComponent(sip.user, USER_CHARS);
    if (sip.password !== undefined) out += ':' + escapeComponent(sip.password, PASSWORD_CHARS);
    out += '@';
  }
  out += formatHost(sip.host);
  if (sip.port !== undefined) out += ':' + sip.port;
  for (const [name, value] of sip.params) {
    out += ';' + escapeComponent(name, PARAM_CHARS);
    if (value !== null) out += '=' + escapeComponent(value, PARAM_CHARS);
  }
  return out + formatUriHeaders(sip.headers);
}

// ---------------------------------------------------------------------------------------------
// Comparison (RFC 3261 §19.1.4)
// ---------------------------------------------------------------------------------------------

/** Parameters that must match if either URI has them; absent never equals present (§19.1.4). */
const MUST_MATCH_PARAMS = ['transport', 'user', 'ttl', 'method', 'maddr'] as const;

function sameCaseSensitive(a: string, b: string): boolean {
  return a === b || comparableEscapes(a) === comparableEscapes(b);
}

function sameIgnoringCase(a: string, b: string): boolean {
  return a === b || comparableEscapes(a).toLowerCase() === comparableEscapes(b).toLowerCase();
}

function sameParamValue(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  return sameIgnoringCase(a, b);
}

function sameOptional(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return sameCaseSensitive(a, b);
}

/**
 * URI headers are never ignored: every header must be in both URIs, in any order (§19.1.4).
 * Names compare case-insensitively, values exactly after unescaping (header values such as
 * Call-IDs in `Replaces` or a `body` are case-sensitive, and we do not guess per header).
 */
function sameHeaders(a: ReadonlyArray<readonly [string, string]>, b: ReadonlyArray<readonly [string, string]>): boolean {
  if (a.length !== b.length) return false;
  const used = new Array<boolean>(b.length).fill(false);
  outer: for (const [name, value] of a) {
    for (let j = 0; j < b.length; j++) {
      if (used[j]) continue;
      const [otherName, otherValue] = b[j]!;
      if (sameIgnoringCase(name, otherName) && sameCaseSensitive(value, otherValue)) {
        used[j] = true;
        continue outer;
      }
    }
    return false;
  }
  return true;
}

/**
 * Whether two URIs are equivalent (RFC 3261 §19.1.4):
 *  - sip and sips never match each other, nor any other scheme;
 *  - user and password compare case-sensitively, the rest case-insensitively, and an escaped
 *    character equals the same character unescaped;
 *  - hosts compare case-insensitively, IP addresses by value (RFC 5954 §4);
 *  - the port must match, and an absent port does not match an explicit 5060;
 *  - transport, user, ttl, method and maddr parameters must match if either URI has them;
 *    any other parameter is compared only when both have it;
 *  - URI headers must all match, in any order.
 * Note the relation is not transitive (`;security=on` matches no parameter and so does
 * `;security=off`, but they do not match each other).
 *
 * im:/pres: URIs compare the same way (local part case-sensitive, domain not, headers
 * must match). Other schemes have their own rules (e.g. RFC 3966 for tel:) which we do not
 * implement: they match when the scheme is the same and the rest is equal after unescaping.
 */
export function uriEquals(a: Uri, b: Uri): boolean {
  if (a.scheme !== b.scheme) return false;
  if ('opaque' in a || 'opaque' in b) {
    return 'opaque' in a && 'opaque' in b && sameCaseSensitive(a.opaque, b.opaque);
  }
  if (a.scheme === 'im' || a.scheme === 'pres') {
    const x = a as ImUri;
    const y = b as ImUri;
    return sameOptional(x.user, y.user) && hostsEqual(x.host, y.host) && sameHeaders(x.headers, y.headers);
  }
  const x = a as SipUri;
  const y = b as SipUri;
  if (!sameOptional(x.user || undefined, y.user || undefined)) return false;
  if (!sameOptional(x.password, y.password)) return false;
  if (!hostsEqual(x.host, y.host)) return false;
  if (x.port !== y.port) return false;
  for (const name of MUST_MATCH_PARAMS) {
    const va = x.params.get(name);
    const vb = y.params.get(name);
    if (va === undefined || vb === undefined) {
      if (va !== vb) return false;
    } else if (!sameParamValue(va, vb)) {
      return false;
    }
  }
  for (const [name, va] of x.params) {
    if ((MUST_MATCH_PARAMS as readonly string[]).includes(name)) continue;
    const vb = y.params.get(name);
    if (vb !== undefined && !sameParamValue(va, vb)) return false;
  }
  return sameHeaders(x.headers, y.headers);
}

// ---------------------------------------------------------------------------------------------
// Address of record
// ---------------------------------------------------------------------------------------------

/** The escaped form with every escape that can be decoded decoded, and non-ASCII escaped. */
function canonicalComponent(text: string, mask: number): string {
  return normalizeEscapes(escapeComponent(text, mask), mask);
}

/**
 * The address-of-record form of a URI, used to name a peer (RFC 3261 §10.2 names a user by
 * its AoR; checklist design decision 4: strip GRUUs and parameters so that one person is one
 * conversation). `formatUri(aorOf(uri))` is the canonical string to key identities on.
 *
 *  - sip/sips: scheme, user, host and port only. Password, parameters (`;gr`, `;transport`,
 *    `;user=phone`, `;ob`, …) and headers are dropped; the port is kept only if it was
 *    written, since `sip:a@b` and `sip:a@b:5070` are different URIs (§19.1.4). sip and sips
 *    stay different.
 *  - im/pres: scheme, user and host; headers dropped.
 *  - other schemes: the same URI, escapes normalised.
 * The user part keeps its case (it is case-sensitive) but its escapes are normalised
 * (`%61lice` → `alice`, remaining hex uppercased, non-ASCII escaped); the host is lowercased
 * and an IPv6 address written the RFC 5952 way (`[2001:DB8:0::1]` → `[2001:db8::1]`). So URIs
 * that §19.1.4 calls equal in these parts give the same formatted AoR.
 */
export function aorOf(uri: Uri): Uri {
  if ('opaque' in uri) return { scheme: uri.scheme.toLowerCase(), opaque: canonicalComponent(uri.opaque, URIC_CHARS) };
  if (uri.scheme === 'im' || uri.scheme === 'pres') {
    const im = uri as ImUri;
    const aor: ImUri = { scheme: im.scheme, host: canonicalHost(im.host), headers: [] };
    if (im.user) aor.user = canonicalComponent(im.user, IM_USER_CHARS);
    return aor;
  }
  const sip = uri as SipUri;
  const aor: SipUri = { scheme: sip.scheme, host: canonicalHost(sip.host), params: new Params(), headers: [] };
  if (sip.user) aor.user = canonicalComponent(sip.user, USER_CHARS);
  if (sip.port !== undefined) aor.port = sip.port;
  return aor;
}
