/**
 * Values of the SIP header fields the stack itself reads (RFC 3261 §7.3, §20, grammar §25.1):
 * comma-separated lists, name-addr (To, From, Contact, Route, …), Via, CSeq, Content-Type,
 * Content-Length, and the generic `;name=value` parameters they share.
 *
 * Input is one header field value as the message parser hands it over: continuation lines
 * already joined with a single SP, surrounding whitespace trimmed, decoded from UTF-8. LWS
 * (SP / HTAB) is accepted wherever the grammar allows it (around "/", ":", ";", "=" —
 * RFC 4475 wsinv has every such case).
 *
 * Pure functions and hand-written scanners. Every malformed value throws
 * `ParseError('bad-header-value', message, header)` — `header` is the optional header name the
 * caller passes so that the error says where it happened — and nothing else.
 *
 * Speed: a Via and a From, To and their parameters are read for every message, so the shapes
 * nearly every peer writes (`USUAL_VIA`, `USUAL_PARAMS`) are first checked whole by a regular
 * expression, which V8 compiles to a native scan several times faster than a loop over
 * characters, and then cut up with `indexOf`. Those expressions only recognise a subset of
 * what the scanners accept (anything else, errors included, goes to the scanners, which are
 * the reference), and they run in time linear in the value: each repeated part ends at a
 * delimiter ("." ";" "=") the part before cannot contain. test/unit/parser-fast-paths.test.ts
 * checks that both paths agree.
 */
import { ParseError } from './message/parse-error.js';
import { Params, formatUri, isIPv4Address, isIPv6Address, isIPv6Span, isIPv6Reference, normalizeHost, parseUri, readHost } from './uri.js';
import type { Uri } from './uri.js';

export { Params };

// ---------------------------------------------------------------------------------------------
// Characters
// ---------------------------------------------------------------------------------------------

const TOKEN = 1;
const DIGIT = 2;

const CHAR_CLASS = new Uint8Array(128);
{
  const mark = (chars: string, bit: number): void => {
    for (let i = 0; i < chars.length; i++) CHAR_CLASS[chars.charCodeAt(i)]! |= bit;
  };
  const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  // token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
  mark(alnum + "-.!%*_+`'~", TOKEN);
  mark('0123456789', DIGIT);
}

function isTokenChar(code: number): boolean {
  return code < 128 && (CHAR_CLASS[code]! & TOKEN) !== 0;
}

const HTAB = 9;
const SP = 32;
const DQUOTE = 34;
const COMMA = 44;
const SLASH = 47;
const COLON = 58;
const SEMICOLON = 59;
const LAQUOT = 60;
const EQUALS = 61;
const RAQUOT = 62;
const LBRACKET = 91;
const BACKSLASH = 92;
const RBRACKET = 93;
const DEL = 127;

function isWs(code: number): boolean {
  return code === SP || code === HTAB;
}

function skipWs(text: string, pos: number): number {
  while (pos < text.length && isWs(text.charCodeAt(pos))) pos++;
  return pos;
}

function scanToken(text: string, pos: number): number {
  while (pos < text.length && isTokenChar(text.charCodeAt(pos))) pos++;
  return pos;
}

/**
 * Whether `literal` is written at `pos` in `text`. A plain loop: for the short literals it is
 * used with, it is several times faster than `startsWith`, which V8 does not inline.
 */
function spelledAt(text: string, pos: number, literal: string): boolean {
  const n = literal.length;
  if (pos + n > text.length) return false;
  for (let i = 0; i < n; i++) if (text.charCodeAt(pos + i) !== literal.charCodeAt(i)) return false;
  return true;
}

function fail(message: string, header: string | undefined): never {
  throw new ParseError('bad-header-value', message, header);
}

function describe(text: string, pos: number): string {
  return pos >= text.length ? 'end of value' : `${JSON.stringify(text[pos])} at offset ${pos}`;
}

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") (§25.1) */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (!isTokenChar(text.charCodeAt(i))) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Quoted strings (§25.1: quoted-string, qdtext, quoted-pair)
// ---------------------------------------------------------------------------------------------

/**
 * Reads the quoted-string starting at `pos` (which must be `"`), returning its content with
 * quoted-pairs undone and the index after the closing quote. qdtext is LWS, %x21, %x23-5B,
 * %x5D-7E or non-ASCII (UTF-8); quoted-pair is "\" followed by any ASCII except CR and LF
 * (which lets NUL, BEL and DEL in, RFC 4475 intmeth).
 */
function readQuotedString(text: string, pos: number, header: string | undefined): { value: string; end: number } {
  const n = text.length;
  let value = '';
  let i = pos + 1;
  let runStart = i;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === DQUOTE) return { value: value + text.slice(runStart, i), end: i + 1 };
    if (c === BACKSLASH) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : -1;
      if (next < 0 || next === 10 || next === 13 || next > DEL) {
        fail(`invalid quoted-pair in quoted string at offset ${i}`, header);
      }
      value += text.slice(runStart, i) + text[i + 1];
      i += 2;
      runStart = i;
      continue;
    }
    if ((c < SP && c !== HTAB) || c === DEL) fail(`control character in quoted string at offset ${i}`, header);
    i++;
  }
  return fail('unterminated quoted string', header);
}

/**
 * Writes `text` as a quoted-string: `"` and `\` and the control characters qdtext does not
 * allow (all but HTAB, and DEL) become quoted-pairs. CR and LF cannot be represented in a
 * quoted-string at all; they throw a RangeError (a caller bug — sanitise display text first),
 * which also rules out header injection.
 */
export function quoteString(text: string): string {
  let out = '"';
  let runStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === DQUOTE || c === BACKSLASH || (c < SP && c !== HTAB) || c === DEL) {
      if (c === 10 || c === 13) throw new RangeError('CR and LF cannot be written in a SIP quoted-string');
      out += text.slice(runStart, i) + '\\' + text[i];
      runStart = i + 1;
    }
  }
  return out + text.slice(runStart) + '"';
}

/** Reads a complete quoted-string (`"a \"b\""` → `a "b"`). Throws ParseError otherwise. */
export function unquoteString(text: string, header?: string): string {
  if (text.charCodeAt(0) !== DQUOTE) fail('not a quoted string', header);
  const { value, end } = readQuotedString(text, 0, header);
  if (end !== text.length) fail(`unexpected ${describe(text, end)} after quoted string`, header);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Generic parameters (§7.3.1; generic-param = token [ EQUAL gen-value ],
// gen-value = token / host / quoted-string)
// ---------------------------------------------------------------------------------------------

/**
 * A parameter value that may be written without quotes: a token, an IPv6 reference, or — as
 * Via `received` carries it (RFC 3261 §20.42 grammar; RFC 5118 §4.5) — a bare IPv6 address.
 */
function isBareParamValue(value: string): boolean {
  return isToken(value) || isIPv6Reference(value) || isIPv6Address(value);
}

/** Which parameter values a header's grammar restricts beyond generic-param (see `paramProblem`). */
const enum ParamRules {
  Generic,
  /** Via: branch, received, maddr, ttl, rport (§20.42, RFC 3581, RFC 5118 §4.5). */
  Via,
  /** media-type: every m-parameter has a value (§20.15). */
  Media,
}

/**
 * Parameter names the stack meets in nearly every message. `paramNameAt` hands out these
 * literals when the text spells one of them, instead of cutting and lowercasing a new string.
 */
const USUAL_PARAM_NAMES: readonly string[] = [
  'branch',
  'received',
  'rport',
  'maddr',
  'ttl',
  'tag',
  'expires',
  'q',
  'lr',
  'transport',
  'user',
  'method',
  'charset',
  'boundary',
  'smime-type',
  'name',
  'reg-id',
  '+sip.instance',
];
const PARAM_NAMES_BY_LENGTH: string[][] = [];
for (const name of USUAL_PARAM_NAMES) (PARAM_NAMES_BY_LENGTH[name.length] ??= []).push(name);

/** The lowercased parameter name `text[start, end)` (a token). */
function paramNameAt(text: string, start: number, end: number): string {
  const candidates = PARAM_NAMES_BY_LENGTH[end - start];
  if (candidates !== undefined) {
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]!;
      if (spelledAt(text, start, candidate)) return candidate;
    }
  }
  return lowercaseSlice(text, start, end);
}

/**
 * Reads `*( SEMI generic-param )` from `pos` to the end of `text` into `params`. Parameter
 * names must not repeat (§7.3.1). `rules` adds the checks of a particular header; a value they
 * refuse is reported once the whole list has been read, so that a syntax error further on is
 * what the caller hears about first, as it would be if the values were checked afterwards.
 */
function readParams(text: string, pos: number, params: Params, header: string | undefined, rules: ParamRules): void {
  // Nothing after the value (a To without a tag, a bare media type): nothing to check either.
  if (pos >= text.length || readUsualParams(text, pos, params, rules)) return;
  const n = text.length;
  let problem: string | undefined;
  for (;;) {
    pos = skipWs(text, pos);
    if (pos >= n) break;
    if (text.charCodeAt(pos) !== SEMICOLON) fail(`expected ";" but found ${describe(text, pos)}`, header);
    pos = skipWs(text, pos + 1);
    const nameEnd = scanToken(text, pos);
    if (nameEnd === pos) fail(`expected a parameter name at ${describe(text, pos)}`, header);
    const name = paramNameAt(text, pos, nameEnd);
    pos = skipWs(text, nameEnd);
    let value: string | null = null;
    let quoted = false;
    // True when the value is known to be a token (read bare, token characters only).
    let tokenValue = false;
    if (pos < n && text.charCodeAt(pos) === EQUALS) {
      pos = skipWs(text, pos + 1);
      if (pos < n && text.charCodeAt(pos) === DQUOTE) {
        const q = readQuotedString(text, pos, header);
        value = q.value;
        quoted = true;
        pos = q.end;
      } else {
        // token chars, plus ":" "[" "]" for host values (IPv6 references and bare addresses)
        let end = pos;
        let onlyToken = true;
        while (end < n) {
          const c = text.charCodeAt(end);
          if (!isTokenChar(c)) {
            if (c !== COLON && c !== LBRACKET && c !== RBRACKET) break;
            onlyToken = false;
          }
          end++;
        }
        if (end === pos) fail(`missing value for parameter "${name}"`, header);
        value = text.slice(pos, end);
        if (!onlyToken && !isBareParamValue(value)) fail(`invalid value ${JSON.stringify(value)} for parameter "${name}"`, header);
        tokenValue = onlyToken;
        pos = end;
      }
    }
    // The half-read params are dropped with the error.
    if (!params.addNew(name, value, quoted)) fail(`duplicate parameter "${name}"`, header);
    if (rules !== ParamRules.Generic && problem === undefined) problem = paramProblem(rules, name, value, tokenValue);
  }
  if (problem !== undefined) fail(problem, header);
}

/**
 * The parameters most values carry, `;name=token` with lower-case names and no whitespace or
 * quoting (`;tag=8f3a`, `;charset=UTF-8`), up to the end of the text. As with `USUAL_VIA`, one
 * native check of the whole shape, then `indexOf` to cut it up, is much cheaper than reading it
 * a character at a time.
 */
const USUAL_PARAMS = /(?:;[a-z0-9.!%*_+`'~-]+(?:=[A-Za-z0-9.!%*_+`'~-]+)?)*$/y;

/**
 * Reads the parameters from `pos` into `params` if they have the usual shape and `rules` has
 * nothing against them, as readParams would. Otherwise false, with `params` left empty, and
 * readParams reads them (and reports what is wrong).
 */
function readUsualParams(text: string, pos: number, params: Params, rules: ParamRules): boolean {
  USUAL_PARAMS.lastIndex = pos;
  return USUAL_PARAMS.test(text) && cutUsualParams(text, pos, params, rules);
}

/**
 * Cuts the parameters from `pos` to the end of `text`, already known to have the usual shape
 * (`USUAL_PARAMS`, or that of `USUAL_VIA`), into `params`. False, with `params` emptied, at a
 * repeated name or at a value `rules` leave to readParams.
 */
function cutUsualParams(text: string, pos: number, params: Params, rules: ParamRules): boolean {
  const n = text.length;
  while (pos < n) {
    let next = text.indexOf(';', pos + 1);
    if (next < 0) next = n;
    // A usual Via may have one SP before a ";" (see USUAL_VIA).
    const end = next < n && text.charCodeAt(next - 1) === SP ? next - 1 : next;
    const equals = text.indexOf('=', pos + 1);
    let name: string;
    let value: string | null = null;
    if (equals >= 0 && equals < end) {
      name = text.slice(pos + 1, equals);
      value = text.slice(equals + 1, end);
    } else {
      name = text.slice(pos + 1, end);
    }
    if (!params.addNew(name, value) || !isUsualParam(rules, name, value)) {
      params.clear();
      return false;
    }
    pos = next;
  }
  return true;
}

/** Whether `rules` accept this token-valued parameter as it is; false also for the cases they leave to readParams. */
function isUsualParam(rules: ParamRules, name: string, value: string | null): boolean {
  if (rules === ParamRules.Generic) return true;
  if (rules === ParamRules.Media) return value !== null;
  return isUsualViaParam(name, value);
}

/** What is wrong with this parameter under `rules`, or undefined. */
function paramProblem(rules: ParamRules, name: string, value: string | null, tokenValue: boolean): string | undefined {
  if (rules === ParamRules.Media) return value === null ? `media type parameter "${name}" needs a value` : undefined;
  switch (name) {
    case 'branch':
      if (value === null || !(tokenValue || isToken(value))) return 'Via branch needs a token value';
      break;
    case 'received':
      if (value === null || !(isIPv4Address(value) || isIPv6Address(value) || isIPv6Reference(value))) {
        return `Via received must be an IP address, not ${JSON.stringify(value)}`;
      }
      break;
    case 'maddr':
      if (value === null || normalizeHost(value) === null) return `invalid Via maddr ${JSON.stringify(value)}`;
      break;
    case 'ttl':
      if (value === null) return 'Via ttl needs a value';
      return numberProblem(value, 255, 'Via ttl');
    case 'rport':
      if (value !== null) return numberProblem(value, 65535, 'Via rport');
      break;
  }
  return undefined;
}

/**
 * Parses header parameters such as `;tag=x;lr;q=0.5`. The leading ";" is optional (`tag=x;lr`
 * is accepted too); LWS around ";" and "=" is allowed. Names are lowercased, quoted values are
 * unquoted (and remembered in `params.quoted`).
 */
export function parseParams(text: string, header?: string): Params {
  const params = new Params();
  let pos = skipWs(text, 0);
  if (pos < text.length && text.charCodeAt(pos) !== SEMICOLON) {
    // Accept "a=b;c" by reading it as ";a=b;c".
    return parseParams(';' + text.slice(pos), header);
  }
  readParams(text, pos, params, header, ParamRules.Generic);
  return params;
}

/**
 * Writes parameters as `;name=value;flag` ('' for none). A value is quoted when it was quoted
 * (`params.quoted`, for a `Params`) or when it cannot be written bare. Throws a RangeError for
 * a name that is not a token (a caller bug).
 */
export function formatParams(params: ReadonlyMap<string, string | null>): string {
  const quoted = params instanceof Params ? params.quoted : undefined;
  let out = '';
  for (const [name, value] of params) {
    if (!isToken(name)) throw new RangeError(`parameter name ${JSON.stringify(name)} is not a token`);
    out += ';' + name;
    if (value === null) continue;
    out += '=' + (quoted?.has(name) || !isBareParamValue(value) ? quoteString(value) : value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lists (§7.3.1)
// ---------------------------------------------------------------------------------------------

function trimWs(text: string, start: number, end: number): string {
  while (start < end && isWs(text.charCodeAt(start))) start++;
  while (end > start && isWs(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/**
 * Splits a comma-separated list header value (`Via`, `Contact`, `Route`, `Accept`, …) into
 * its elements. Commas inside a quoted string (with `\` escapes) or inside `<…>` do not split.
 * Elements are trimmed, empty ones dropped. An unterminated quote or `<` throws.
 */
export function splitHeaderList(value: string, header?: string): string[] {
  const n = value.length;
  // Most values (one Via, one Contact, Allow: MESSAGE) have nothing to split or skip over.
  if (value.indexOf(',') === -1 && value.indexOf('"') === -1 && value.indexOf('<') === -1) {
    const only = trimWs(value, 0, n);
    return only === '' ? [] : [only];
  }
  const parts: string[] = [];
  let start = 0;
  let inAngle = false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (inAngle) {
      if (c === RAQUOT) inAngle = false;
    } else if (c === DQUOTE) {
      // Skip to the closing quote, honouring quoted-pairs.
      i++;
      while (i < n) {
        const q = value.charCodeAt(i);
        if (q === DQUOTE) break;
        i += q === BACKSLASH ? 2 : 1;
      }
      if (i >= n) fail('unterminated quoted string', header);
    } else if (c === LAQUOT) {
      inAngle = true;
    } else if (c === COMMA) {
      const part = trimWs(value, start, i);
      if (part !== '') parts.push(part);
      start = i + 1;
    }
  }
  if (inAngle) fail('unterminated "<"', header);
  const last = trimWs(value, start, n);
  if (last !== '') parts.push(last);
  return parts;
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec (§20.10 Contact, §20.20 From, §20.39 To, §20.30 Record-Route, §20.34 Route)
// ---------------------------------------------------------------------------------------------

/** `[display-name] <uri> *(;param)`, or a bare addr-spec followed by header parameters. */
export interface NameAddr {
  /** Without quotes and quoted-pairs; absent when none was written (`""` gives `''`). */
  displayName?: string;
  uri: Uri;
  /** Header parameters (tag, expires, q, +sip.instance, lr of a Route entry is in the URI). */
  params: Params;
}

/**
 * A name-addr read from a header value, as `parseNameAddr` and the From and To of a parsed
 * message give it. Its URI is kept as written (`uriText`) and parsed the first time `uri` is
 * read: a UAS reads the tags of every From and To, but their URIs only for a request it
 * accepts, and the URI is the larger part of the work. A URI that does not parse makes `uri`
 * throw the ParseError that reading the whole name-addr would have thrown.
 */
export class ParsedNameAddr implements NameAddr {
  declare displayName?: string;
  /** The URI as written: between "<" and ">", or the bare addr-spec. */
  readonly uriText: string;
  params: Params;
  #uri: Uri | undefined;
  readonly #header: string | undefined;

  constructor(displayName: string | undefined, uriText: string, params: Params, header: string | undefined) {
    this.uriText = uriText;
    this.params = params;
    this.#header = header;
    if (displayName !== undefined) this.displayName = displayName;
  }

  get uri(): Uri {
    return (this.#uri ??= parseUriIn(this.uriText, this.#header));
  }

  set uri(uri: Uri) {
    this.#uri = uri;
  }
}

/** `Contact: *` (§10.2.2, §20.10: STAR = SWS "*" SWS) — not a name-addr; the caller handles it. */
export function isStarContact(value: string): boolean {
  const start = skipWs(value, 0);
  return start < value.length && value.charCodeAt(start) === 42 /* * */ && skipWs(value, start + 1) === value.length;
}

function parseUriIn(text: string, header: string | undefined): Uri {
  try {
    return parseUri(text);
  } catch (error) {
    if (error instanceof ParseError) fail(`invalid URI ${JSON.stringify(text)}: ${error.message}`, header);
    throw error;
  }
}

/**
 * Parses one name-addr or addr-spec with its header parameters:
 *   `"Quoted \"Name\"" <sip:a@b;uparam>;tag=x`, `Bob Smith <sip:b@c>`, `<sip:a@b>`,
 *   `sip:a@b;tag=x` (bare addr-spec: per §20 the parameters after it belong to the header,
 *   not to the URI, so the URI is `sip:a@b` and `tag=x` is a header parameter).
 * A bare addr-spec must not contain "," "?" or ";" of its own — such URIs must be in angle
 * brackets (§20; RFC 4475 regbadct). No whitespace is allowed inside the brackets (RFC 4475
 * badaspec), and an unquoted display name is tokens separated by LWS (RFC 4475 baddn), kept
 * with each run of LWS written as one SP. `*` is not a name-addr: see `isStarContact`.
 * The URI is parsed too, so that every error shows here.
 */
export function parseNameAddr(value: string, header?: string): ParsedNameAddr {
  const nameAddr = readNameAddr(value, header);
  void nameAddr.uri;
  return nameAddr;
}

/**
 * `parseNameAddr` except that the URI is parsed when first read. Every other error throws
 * here, and when the parameters are wrong and the URI too, the URI's error, as `parseNameAddr`
 * reports it.
 */
export function readNameAddr(value: string, header?: string): ParsedNameAddr {
  const n = value.length;
  let pos = skipWs(value, 0);
  if (pos >= n) fail('empty address', header);
  let displayName: string | undefined;
  const first = value.charCodeAt(pos);
  if (first === DQUOTE) {
    const q = readQuotedString(value, pos, header);
    displayName = q.value;
    pos = skipWs(value, q.end);
    if (pos >= n || value.charCodeAt(pos) !== LAQUOT) fail(`expected "<" after the display name, found ${describe(value, pos)}`, header);
  } else if (first !== LAQUOT) {
    // display-name = *(token LWS): collect tokens until "<"; anything else means a bare addr-spec
    // (whose scheme is also a token: "sip" followed by ":").
    let name = '';
    let i = pos;
    for (;;) {
      const wordEnd = scanToken(value, i);
      if (wordEnd === i) break;
      const next = skipWs(value, wordEnd);
      if (next < n && value.charCodeAt(next) === LAQUOT) {
        displayName = name + value.slice(i, wordEnd);
        pos = next;
        break;
      }
      if (next === wordEnd || next >= n || !isTokenChar(value.charCodeAt(next))) break;
      name += value.slice(i, wordEnd) + ' ';
      i = next;
    }
    if (displayName === undefined) return readAddrSpec(value, pos, header);
  }

  // value[pos] is "<"; the URI runs to the first ">" (no URI character is ">").
  const close = value.indexOf('>', pos + 1);
  if (close === -1) fail('unterminated "<"', header);
  const uriText = value.slice(pos + 1, close);
  return new ParsedNameAddr(displayName, uriText, readHeaderParams(value, close + 1, uriText, header), header);
}

function readAddrSpec(value: string, pos: number, header: string | undefined): ParsedNameAddr {
  const n = value.length;
  let end = pos;
  while (end < n) {
    const c = value.charCodeAt(end);
    if (c === SEMICOLON || isWs(c)) break;
    if (c === COMMA || c === 63 /* ? */ || c === LAQUOT || c === RAQUOT || c === DQUOTE) {
      fail(`a URI containing ${JSON.stringify(value[end])} must be enclosed in "<" ">" (RFC 3261 §20)`, header);
    }
    end++;
  }
  const uriText = value.slice(pos, end);
  return new ParsedNameAddr(undefined, uriText, readHeaderParams(value, end, uriText, header), header);
}

/** The parameters after a name-addr's URI; a broken URI is reported before broken parameters. */
function readHeaderParams(value: string, pos: number, uriText: string, header: string | undefined): Params {
  const params = new Params();
  try {
    readParams(value, pos, params, header, ParamRules.Generic);
  } catch (error) {
    parseUriIn(uriText, header);
    throw error;
  }
  return params;
}

/**
 * Writes a name-addr. The URI is always put in angle brackets (valid whatever it contains);
 * a display name is always quoted.
 */
export function formatNameAddr(nameAddr: NameAddr): string {
  const name = nameAddr.displayName !== undefined ? quoteString(nameAddr.displayName) + ' ' : '';
  return `${name}<${formatUri(nameAddr.uri)}>${formatParams(nameAddr.params)}`;
}

// ---------------------------------------------------------------------------------------------
// Via (§20.42, §18.2.1; RFC 3581 rport; RFC 5118 §4.5 received)
// ---------------------------------------------------------------------------------------------

/** One via-parm: `SIP/2.0/UDP host:port;branch=…;received=…;rport`. */
export interface Via {
  /** Uppercased protocol name: 'SIP'. */
  protocol: string;
  /** '2.0' */
  version: string;
  /** Uppercased: 'UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS', or any other token. */
  transport: string;
  /** sent-by host: lowercased name, IPv4, or IPv6 reference with brackets. */
  host: string;
  port?: number;
  /** branch, received, rport, maddr, ttl and any extension parameters. */
  params: Params;
}

/**
 * Parses a Via header field value, which may hold several comma-separated via-parms, top
 * first. Accepts LWS around "/", ":", ";" and "=" (RFC 4475 wsinv). Checks the parameters
 * whose syntax the stack relies on: `branch` (a token), `received` (an IPv4 or IPv6 address;
 * with or without brackets, RFC 5118 §4.5), `rport` (empty or a port, RFC 3581), `ttl`
 * (0–255) and `maddr` (a host).
 */
export function parseVia(value: string, header?: string): Via[] {
  // One via-parm of the usual shape has no comma, quote or "<", so it is the whole list.
  const usual = readUsualVia(value);
  if (usual !== undefined) return [usual];
  const parts = splitHeaderList(value, header);
  if (parts.length === 0) fail('empty Via', header);
  // A part that is the whole value was just refused by readUsualVia.
  return parts.map((part) => (part === value ? parseViaParm(part, header) : (readUsualVia(part) ?? parseViaParm(part, header))));
}

/**
 * The via-parm nearly every peer writes: `SIP/2.0/UDP host[:port]` with a lower-case host name,
 * an IPv4 address or an IPv6 reference in lower-case hex, then `;name[=token]` parameters with
 * lower-case names, no quoting, and no whitespace except one SP before a ";" (what unfolding
 * leaves of a folded Via, §7.3.1). `USUAL_VIA` checks that whole shape at once (V8 compiles it
 * to a native scan, several times faster than a character loop here), so the pieces can then
 * be cut out by `indexOf` alone. Whatever it accepts, the general reader (`parseViaParm`) reads
 * the same way; it accepts only values the general reader accepts (an IPv6 reference still has
 * to parse: `isIPv6Span`), and everything else, errors included, is left to that reader.
 *
 * Host: hostname = *(domainlabel ".") toplabel ["."], labels of alphanumerics and inner
 * hyphens, the top label starting with a letter; IPv4address = four decimal octets of one to
 * three digits, each at most 255 (RFC 3261 §25.1, as `readHost` reads them); IPv6reference =
 * "[" IPv6address "]" (RFC 5118 §4.1).
 */
const USUAL_VIA = (() => {
  const octet = '(?:25[0-5]|2[0-4][0-9]|[01][0-9][0-9]|[0-9][0-9]?)';
  const label = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
  const topLabel = '[a-z](?:[a-z0-9-]*[a-z0-9])?';
  const ipv6Reference = '\\[[0-9a-f:.]+\\]';
  const host = `(?:${octet}\\.${octet}\\.${octet}\\.${octet}|(?:${label}\\.)*${topLabel}\\.?|${ipv6Reference})`;
  const token = "[A-Za-z0-9.!%*_+`'~-]+";
  const lowerToken = "[a-z0-9.!%*_+`'~-]+";
  return new RegExp(`^SIP/2\\.0/[A-Z]+ ${host}(?::[0-9]{1,5})?(?: ?;${lowerToken}(?:=${token})?)*$`);
})();

function readUsualVia(text: string): Via | undefined {
  if (!USUAL_VIA.test(text)) return undefined;
  const n = text.length;
  const space = text.indexOf(' ', 8);
  const transport = transportName(text, 8, space);
  let paramsStart = text.indexOf(';', space);
  if (paramsStart < 0) paramsStart = n;
  // The SP a folded Via may have before its first ";" is not part of the sent-by.
  const sentByEnd = text.charCodeAt(paramsStart - 1) === SP ? paramsStart - 1 : paramsStart;
  const hostStart = space + 1;
  const ipv6 = text.charCodeAt(hostStart) === LBRACKET;
  // The port's colon comes after the host, and an IPv6 reference has colons of its own.
  let hostEnd = text.indexOf(':', ipv6 ? text.indexOf(']', hostStart) : hostStart);
  let port = -1;
  if (hostEnd < 0 || hostEnd > sentByEnd) {
    hostEnd = sentByEnd;
  } else {
    port = 0;
    for (let i = hostEnd + 1; i < sentByEnd; i++) port = port * 10 + (text.charCodeAt(i) - 48);
    if (port > 65535) return undefined;
  }
  const host = text.slice(hostStart, hostEnd);
  if (ipv6 && !isIPv6Span(host, 1, host.length - 1)) return undefined;

  const params = new Params();
  if (!cutUsualParams(text, paramsStart, params, ParamRules.Via)) return undefined;

  if (port < 0) return { protocol: 'SIP', version: '2.0', transport, host, params };
  return { protocol: 'SIP', version: '2.0', transport, host, params, port };
}

/** The Via parameter checks of `paramProblem` for a token value; false also for those it leaves to the general reader. */
function isUsualViaParam(name: string, value: string | null): boolean {
  switch (name) {
    case 'branch':
      return value !== null;
    case 'received':
      return value !== null && isIPv4Address(value);
    case 'rport':
      return value === null || numberProblem(value, 65535, 'Via rport') === undefined;
    case 'maddr':
    case 'ttl':
      return false;
    default:
      return true;
  }
}

function parseViaParm(text: string, header: string | undefined): Via {
  const n = text.length;
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH = SWS "/" SWS.
  // Nearly every peer writes `SIP/2.0/`: that prefix is taken whole; anything else (LWS around
  // the slashes, another protocol or version) goes through the general reading below.
  let pos = skipWs(text, 0);
  let protocol: string;
  let version: string;
  if (spelledAt(text, pos, 'SIP/2.0/')) {
    protocol = 'SIP';
    version = '2.0';
    pos = skipWs(text, pos + 8);
  } else {
    let end = sentProtocolField(text, pos, header);
    protocol = text.slice(pos, end).toUpperCase();
    pos = sentProtocolSlash(text, end, header);
    end = sentProtocolField(text, pos, header);
    version = text.slice(pos, end);
    pos = sentProtocolSlash(text, end, header);
  }
  const transportEnd = sentProtocolField(text, pos, header);
  const transport = transportName(text, pos, transportEnd);
  // LWS sent-by
  pos = skipWs(text, transportEnd);
  if (pos === transportEnd) fail(`expected whitespace before the Via sent-by, found ${describe(text, pos)}`, header);

  const host = readHost(text, pos);
  if (host === null) fail(`invalid Via sent-by host at ${describe(text, pos)}`, header);
  pos += host.length;

  // [ COLON port ]; COLON = SWS ":" SWS
  let port: number | undefined;
  const beforeColon = skipWs(text, pos);
  if (beforeColon < n && text.charCodeAt(beforeColon) === COLON) {
    pos = skipWs(text, beforeColon + 1);
    const digitsEnd = scanDigits(text, pos);
    if (digitsEnd === pos) fail(`invalid Via port at ${describe(text, pos)}`, header);
    port = digitValue(text, pos, digitsEnd, 65535, 'Via port', header);
    pos = digitsEnd;
  }

  const params = new Params();
  readParams(text, pos, params, header, ParamRules.Via);

  if (port === undefined) return { protocol, version, transport, host, params };
  return { protocol, version, transport, host, params, port };
}

/** The end of the sent-protocol token starting at `pos`; throws if there is none. */
function sentProtocolField(text: string, pos: number, header: string | undefined): number {
  const end = scanToken(text, pos);
  if (end === pos) fail(`expected a token in Via sent-protocol, found ${describe(text, pos)}`, header);
  return end;
}

/** Past SWS "/" SWS from `pos`; throws if the slash is missing. */
function sentProtocolSlash(text: string, pos: number, header: string | undefined): number {
  pos = skipWs(text, pos);
  if (pos >= text.length || text.charCodeAt(pos) !== SLASH) fail(`expected "/" in Via sent-protocol, found ${describe(text, pos)}`, header);
  return skipWs(text, pos + 1);
}

/** The usual transports (RFC 3261 §20.42, RFC 7118 WS/WSS), as the literals `transportName` returns. */
const USUAL_TRANSPORTS: readonly string[] = ['UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'];

/** The transport token `text[start, end)`, uppercased. */
function transportName(text: string, start: number, end: number): string {
  for (let i = 0; i < USUAL_TRANSPORTS.length; i++) {
    const usual = USUAL_TRANSPORTS[i]!;
    if (usual.length === end - start && spelledAt(text, start, usual)) return usual;
  }
  return text.slice(start, end).toUpperCase();
}

/** The branch parameter (transaction id, §17.1.3 / §17.2.3), if any. */
export function viaBranch(via: Via): string | undefined {
  return via.params.get('branch') ?? undefined;
}

/**
 * The received parameter as a plain IP address, without the brackets some senders put around
 * an IPv6 address (RFC 5118 §4.5), or undefined.
 */
export function viaReceived(via: Via): string | undefined {
  const received = via.params.get('received');
  if (received === undefined || received === null) return undefined;
  return received.charCodeAt(0) === LBRACKET ? received.slice(1, -1) : received;
}

/** rport (RFC 3581): the port number, `null` if present without a value, undefined if absent. */
export function viaRport(via: Via): number | null | undefined {
  const rport = via.params.get('rport');
  if (rport === undefined) return undefined;
  if (rport === null) return null;
  return Number(rport);
}

/** Writes one via-parm: `SIP/2.0/UDP host:port;params`. */
export function formatVia(via: Via): string {
  const host = via.host.includes(':') && via.host.charCodeAt(0) !== LBRACKET ? `[${via.host}]` : via.host;
  const port = via.port !== undefined ? `:${via.port}` : '';
  return `${via.protocol}/${via.version}/${via.transport} ${host}${port}${formatParams(via.params)}`;
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

function scanDigits(text: string, pos: number): number {
  while (pos < text.length && (CHAR_CLASS[text.charCodeAt(pos)] ?? 0) & DIGIT) pos++;
  return pos;
}

/** The value of the digits in [start, end), or a ParseError if it exceeds `max`. */
function digitValue(text: string, start: number, end: number, max: number, what: string, header: string | undefined): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    value = value * 10 + (text.charCodeAt(i) - 48);
    if (value > max) fail(`${what} out of range (max ${max})`, header);
  }
  return value;
}

/** What is wrong with `text` as a number up to `max` (1*DIGIT), or undefined. */
function numberProblem(text: string, max: number, what: string): string | undefined {
  if (text.length === 0 || scanDigits(text, 0) !== text.length) return `${what} must be digits, not ${JSON.stringify(text)}`;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    value = value * 10 + (text.charCodeAt(i) - 48);
    if (value > max) return `${what} out of range (max ${max})`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// CSeq (§20.16, §8.1.1.5)
// ---------------------------------------------------------------------------------------------

export interface CSeq {
  /** 32-bit unsigned sequence number. */
  seq: number;
  /** The method, case-sensitive as written. */
  method: string;
}

const MAX_CSEQ = 0xffffffff;

/**
 * CSeq = 1*DIGIT LWS Method. The number must fit in 32 bits unsigned (§8.1.1.5; RFC 4475
 * scalar02 has one that does not), leading zeros are fine (`0009 INVITE`, wsinv).
 */
export function parseCSeq(value: string, header?: string): CSeq {
  const n = value.length;
  const start = skipWs(value, 0);
  const digitsEnd = scanDigits(value, start);
  if (digitsEnd === start) fail(`CSeq must start with a number, found ${describe(value, start)}`, header);
  const seq = digitValue(value, start, digitsEnd, MAX_CSEQ, 'CSeq number', header);
  const methodStart = skipWs(value, digitsEnd);
  if (methodStart === digitsEnd) fail(`expected whitespace after the CSeq number, found ${describe(value, digitsEnd)}`, header);
  const methodEnd = scanToken(value, methodStart);
  if (methodEnd === methodStart) fail(`invalid CSeq method at ${describe(value, methodStart)}`, header);
  if (skipWs(value, methodEnd) !== n) fail(`unexpected ${describe(value, methodEnd)} after the CSeq method`, header);
  return { seq, method: value.slice(methodStart, methodEnd) };
}

export function formatCSeq(cseq: CSeq): string {
  return `${cseq.seq} ${cseq.method}`;
}

// ---------------------------------------------------------------------------------------------
// Content-Type (§20.15; media-type per RFC 2045/2046)
// ---------------------------------------------------------------------------------------------

export interface ContentType {
  /** Lowercased top-level type: 'text', 'application', 'multipart', 'message', … */
  type: string;
  /** Lowercased subtype: 'plain', 'pkcs7-mime', 'cpim', … */
  subtype: string;
  /** charset, boundary, smime-type, …: names lowercased, values as written. */
  params: Params;
}

/**
 * media-type = m-type SLASH m-subtype *(SEMI m-parameter), where every parameter has a value
 * (m-parameter = m-attribute EQUAL m-value; m-value = token / quoted-string).
 */
export function parseContentType(value: string, header?: string): ContentType {
  const n = value.length;
  let pos = skipWs(value, 0);
  const typeEnd = scanToken(value, pos);
  if (typeEnd === pos) fail(`expected a media type, found ${describe(value, pos)}`, header);
  const type = lowercaseSlice(value, pos, typeEnd);
  pos = skipWs(value, typeEnd);
  if (pos >= n || value.charCodeAt(pos) !== SLASH) fail(`expected "/" in media type, found ${describe(value, pos)}`, header);
  pos = skipWs(value, pos + 1);
  const subtypeEnd = scanToken(value, pos);
  if (subtypeEnd === pos) fail(`expected a media subtype, found ${describe(value, pos)}`, header);
  const subtype = lowercaseSlice(value, pos, subtypeEnd);
  const params = new Params();
  readParams(value, subtypeEnd, params, header, ParamRules.Media);
  return { type, subtype, params };
}

/** `text[start, end)` in lower case; usually it already is, and then lowercasing it would only cost. */
function lowercaseSlice(text: string, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 65 && c <= 90) return text.slice(start, end).toLowerCase();
  }
  return text.slice(start, end);
}

/** 'type/subtype', lowercased: what to compare against 'text/plain' or 'message/cpim'. */
export function mediaTypeOf(contentType: ContentType): string {
  return `${contentType.type}/${contentType.subtype}`;
}

export function formatContentType(contentType: ContentType): string {
  return `${contentType.type}/${contentType.subtype}${formatParams(contentType.params)}`;
}

// ---------------------------------------------------------------------------------------------
// Content-Length (§20.14)
// ---------------------------------------------------------------------------------------------

/** The largest Content-Length we accept: anything near it is refused long before by size limits. */
export const MAX_CONTENT_LENGTH = 0x7fffffff;

/**
 * Content-Length = 1*DIGIT, octets of the body. Negative, non-numeric or absurd values
 * (RFC 4475 ncl, scalarlg) throw ParseError('bad-content-length').
 */
export function parseContentLength(value: string, header?: string): number {
  const start = skipWs(value, 0);
  const end = scanDigits(value, start);
  if (end === start || skipWs(value, end) !== value.length) {
    throw new ParseError('bad-content-length', `Content-Length must be a number, not ${JSON.stringify(value)}`, header);
  }
  let length = 0;
  for (let i = start; i < end; i++) {
    length = length * 10 + (value.charCodeAt(i) - 48);
    if (length > MAX_CONTENT_LENGTH) {
      throw new ParseError('bad-content-length', `Content-Length ${value} is too large`, header);
    }
  }
  return length;
}
