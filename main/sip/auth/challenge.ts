/**
 * Reading authentication challenges: the values of `WWW-Authenticate` (RFC 3261 §20.44) and
 * `Proxy-Authenticate` (§20.27), the Digest parameters inside them (RFC 7616 §3.3, which
 * RFC 8760 §2 makes the reference for SIP in place of RFC 2617 §3.2.1), and the
 * `Authentication-Info` a server may return on success (RFC 2617 §3.2.3, RFC 7616 §3.5).
 *
 * SIP's grammar (§25.1) has one challenge per header row; HTTP's (RFC 7235 §4.1) allows a
 * comma-separated list of them (`Basic realm="a", Digest realm="b", ...`). We read the HTTP
 * form, a superset, because the two only differ in whether a comma may start a new scheme,
 * and a tolerant reader costs nothing here. Anything that is not Digest is returned with its
 * scheme name only looked at enough to skip it (Basic in particular is never answered:
 * RFC 8760 §2.6, RFC 3261 §22.4).
 *
 * Tolerance, with the reason for each:
 *  - any parameter value may be a token or a quoted-string (servers write `algorithm="MD5"`
 *    and `qop=auth` although the grammar says the opposite);
 *  - an unquoted value may hold `/`, `=`, `+`, `:` and the like (base64 nonces sent bare);
 *  - LWS (SP, HTAB, a CRLF followed by SP/HTAB) around `=`, `,` and between elements; empty
 *    list elements (`a=1,,b=2`) are skipped as RFC 7230 §7 says a recipient must.
 * Strictness, with the reason: a parameter named twice in one challenge (RFC 7235 §2.1: MUST
 * only occur once), an unterminated quoted string, control characters, a Digest challenge
 * without `realm` or `nonce` (RFC 7616 §3.3: both required) — all `ParseError('bad-header-value')`,
 * the only error this module throws.
 */
import { ParseError } from '../message/parse-error.js';

/** One challenge as written: the scheme and its parameters (names lowercased), or a token68. */
export interface AuthChallenge {
  /** The auth-scheme as written (`Digest`, `Basic`, ...); compare case-insensitively. */
  readonly scheme: string;
  /** Parameter values with quoted-strings undone; names lowercased (they are case-insensitive). */
  readonly params: ReadonlyMap<string, string>;
  /** The token68 form (RFC 7235 §2.1) some non-Digest schemes use instead of parameters. */
  readonly token68?: string;
}

/** A Digest challenge's parameters, interpreted (RFC 7616 §3.3; RFC 2617 §3.2.1). */
export interface DigestChallenge {
  readonly realm: string;
  readonly nonce: string;
  readonly opaque: string | undefined;
  /**
   * The previous request was refused only because its nonce was old: retry with the new one
   * without asking the user again. Anything but a case-insensitive `true` is false (RFC 7616 §3.3).
   */
  readonly stale: boolean;
  /** As the server wrote it (echoed back verbatim); undefined when absent, which means MD5. */
  readonly algorithm: string | undefined;
  /**
   * The qop options, lowercased, or undefined when the challenge had no `qop` at all (RFC 2069
   * compatibility; see digest-client.ts for what we send then).
   */
  readonly qop: readonly string[] | undefined;
  /** The protection space's URIs (space-separated in the challenge); empty when absent. */
  readonly domain: readonly string[];
  /** `UTF-8` when the server said so (RFC 7616 §4; the only value it defines). */
  readonly charset: string | undefined;
  /** The server wants the username hashed (RFC 7616 §3.4.4). */
  readonly userhash: boolean;
}

/** What a server may say on success in `Authentication-Info` (RFC 2617 §3.2.3, RFC 7616 §3.5). */
export interface AuthenticationInfo {
  readonly nextnonce: string | undefined;
  readonly qop: string | undefined;
  readonly rspauth: string | undefined;
  readonly cnonce: string | undefined;
  readonly nc: string | undefined;
}

// ---------------------------------------------------------------------------------------------
// Characters
// ---------------------------------------------------------------------------------------------

const HTAB = 9;
const LF = 10;
const CR = 13;
const SP = 32;
const DQUOTE = 34;
const COMMA = 44;
const EQUALS = 61;
const BACKSLASH = 92;
const DEL = 127;

/**
 * tchar (RFC 7230 §3.2.6) — a superset of SIP's token characters (§25.1), so that every
 * SIP token reads as one here too.
 */
function isTokenChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || // DIGIT
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))
  );
}

/** token68 characters (RFC 7235 §2.1), not counting the trailing "=" padding. */
function isToken68Char(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || '-._~+/'.includes(String.fromCharCode(c));
}

/** Characters of a value written without quotes: anything visible except `"` and `,`. */
function isBareValueChar(c: number): boolean {
  return c > SP && c !== DEL && c !== DQUOTE && c !== COMMA;
}

// ---------------------------------------------------------------------------------------------
// Scanner
// ---------------------------------------------------------------------------------------------

class Scanner {
  pos = 0;

  constructor(
    readonly text: string,
    readonly header: string | undefined,
  ) {}

  get atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): number {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  fail(what: string): never {
    const where = this.atEnd ? 'end of value' : `${JSON.stringify(this.text[this.pos])} at offset ${this.pos}`;
    throw new ParseError('bad-header-value', `${what} (${where})`, this.header);
  }

  /** LWS = [*WSP CRLF] 1*WSP (§25.1); a bare LF before WSP is taken as a fold too. */
  skipLws(): void {
    const text = this.text;
    for (;;) {
      const c = this.peek();
      if (c === SP || c === HTAB) {
        this.pos++;
      } else if (c === CR && text.charCodeAt(this.pos + 1) === LF && isWsp(text.charCodeAt(this.pos + 2))) {
        this.pos += 3;
      } else if (c === LF && isWsp(text.charCodeAt(this.pos + 1))) {
        this.pos += 2;
      } else {
        return;
      }
    }
  }

  readToken(): string {
    const start = this.pos;
    while (!this.atEnd && isTokenChar(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /**
   * quoted-string (§25.1): qdtext is LWS / %x21 / %x23-5B / %x5D-7E / non-ASCII; quoted-pair
   * is "\" and any ASCII but CR and LF. Returns the content with quoted-pairs undone.
   */
  readQuotedString(): string {
    this.pos++; // the opening DQUOTE
    let value = '';
    for (;;) {
      if (this.atEnd) this.fail('unterminated quoted string');
      const c = this.peek();
      if (c === DQUOTE) {
        this.pos++;
        return value;
      }
      if (c === BACKSLASH) {
        const next = this.text.charCodeAt(this.pos + 1);
        if (Number.isNaN(next) || next === CR || next === LF || next > DEL) this.fail('invalid quoted-pair');
        value += this.text[this.pos + 1];
        this.pos += 2;
        continue;
      }
      if (c === CR || c === LF) {
        const before = this.pos;
        this.skipLws();
        if (this.pos === before) this.fail('line break in quoted string');
        value += ' ';
        continue;
      }
      if ((c < SP && c !== HTAB) || c === DEL) this.fail('control character in quoted string');
      value += this.text[this.pos];
      this.pos++;
    }
  }

  /** auth-param value: quoted-string, or a bare run of visible characters. */
  readValue(): string {
    if (this.peek() === DQUOTE) return this.readQuotedString();
    const start = this.pos;
    while (!this.atEnd && isBareValueChar(this.peek())) this.pos++;
    if (this.pos === start) this.fail('parameter value expected');
    return this.text.slice(start, this.pos);
  }

  /** After a list element: end of value, or a comma (any number of them: empty elements). Returns false at the end. */
  nextElement(): boolean {
    this.skipLws();
    if (this.atEnd) return false;
    if (this.peek() !== COMMA) this.fail('"," expected');
    while (this.peek() === COMMA) {
      this.pos++;
      this.skipLws();
    }
    return !this.atEnd; // a trailing comma is an empty element
  }
}

function isWsp(c: number): boolean {
  return c === SP || c === HTAB;
}

function addParam(scanner: Scanner, params: Map<string, string>, name: string, value: string): void {
  const key = name.toLowerCase();
  // RFC 7235 §2.1: each parameter name MUST only occur once per challenge.
  if (params.has(key)) throw new ParseError('bad-header-value', `parameter "${key}" given twice`, scanner.header);
  params.set(key, value);
}

/** `name BWS "=" BWS value`, with the scanner after the name's `=`-side whitespace. */
function readParamValue(scanner: Scanner): string {
  if (scanner.peek() !== EQUALS) scanner.fail('"=" expected');
  scanner.pos++;
  scanner.skipLws();
  return scanner.readValue();
}

/**
 * Looks ahead from the scanner position: is this a token68 (`abc+/==`) standing alone, rather
 * than the start of `name=value`? RFC 7235 §2.1 resolves the overlap (`x=` could be either) in
 * favour of token68 when nothing but the end or a comma follows.
 */
function token68Length(scanner: Scanner): number {
  const text = scanner.text;
  let i = scanner.pos;
  while (i < text.length && isToken68Char(text.charCodeAt(i))) i++;
  if (i === scanner.pos) return 0;
  while (i < text.length && text.charCodeAt(i) === EQUALS) i++;
  let j = i;
  while (j < text.length && isWsp(text.charCodeAt(j))) j++;
  return j >= text.length || text.charCodeAt(j) === COMMA ? i - scanner.pos : 0;
}

// ---------------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------------

/**
 * Reads one `WWW-Authenticate` / `Proxy-Authenticate` value into its challenges (usually one).
 * `header` names the header in the ParseError.
 */
export function parseChallenges(value: string, header?: string): AuthChallenge[] {
  const scanner = new Scanner(value, header);
  const challenges: AuthChallenge[] = [];
  scanner.skipLws();
  if (scanner.atEnd) scanner.fail('challenge expected');

  // A challenge starts with its scheme; after each comma comes either `name=value` (another
  // parameter of the current challenge) or a token not followed by "=" (the next scheme).
  let scheme = scanner.readToken();
  for (;;) {
    if (scheme === '') scanner.fail('auth-scheme expected');
    const params = new Map<string, string>();
    let token68: string | undefined;
    let nextScheme: string | undefined;

    const afterScheme = scanner.pos;
    scanner.skipLws();
    if (!scanner.atEnd && scanner.peek() !== COMMA) {
      // §25.1 / RFC 7235 §2.1: the scheme and what follows are separated by whitespace.
      if (scanner.pos === afterScheme) scanner.fail('whitespace expected after the auth-scheme');
      const length = token68Length(scanner);
      if (length > 0) {
        token68 = value.slice(scanner.pos, scanner.pos + length);
        scanner.pos += length;
      } else {
        const name = scanner.readToken();
        if (name === '') scanner.fail('parameter name expected');
        scanner.skipLws();
        addParam(scanner, params, name, readParamValue(scanner));
      }
    }

    while (nextScheme === undefined && scanner.nextElement()) {
      const name = scanner.readToken();
      if (name === '') scanner.fail('parameter name or auth-scheme expected');
      const afterName = scanner.pos;
      scanner.skipLws();
      if (scanner.peek() === EQUALS && token68 === undefined) {
        addParam(scanner, params, name, readParamValue(scanner));
      } else if (scanner.peek() === EQUALS) {
        scanner.fail('parameters after a token68');
      } else {
        nextScheme = name;
        scanner.pos = afterName;
      }
    }

    challenges.push(token68 === undefined ? { scheme, params } : { scheme, params, token68 });
    if (nextScheme === undefined) return challenges;
    scheme = nextScheme;
  }
}

/** True for the Digest scheme, whatever its case (auth-scheme is case-insensitive, RFC 7235 §2.1). */
export function isDigest(challenge: AuthChallenge): boolean {
  return challenge.scheme.toLowerCase() === 'digest';
}

/**
 * Interprets a Digest challenge's parameters (RFC 7616 §3.3). Unknown parameters are ignored
 * (RFC 7616 §3.3: "any unrecognized directive MUST be ignored"); a missing realm or nonce,
 * or the token68 form, is a ParseError.
 */
export function digestChallengeOf(challenge: AuthChallenge, header?: string): DigestChallenge {
  if (!isDigest(challenge)) throw new ParseError('bad-header-value', `not a Digest challenge: ${challenge.scheme}`, header);
  if (challenge.token68 !== undefined) throw new ParseError('bad-header-value', 'a Digest challenge has parameters, not a token68', header);
  const p = challenge.params;
  const realm = p.get('realm');
  const nonce = p.get('nonce');
  if (realm === undefined) throw new ParseError('bad-header-value', 'Digest challenge without realm', header);
  if (nonce === undefined) throw new ParseError('bad-header-value', 'Digest challenge without nonce', header);
  const qop = p.get('qop');
  const domain = p.get('domain');
  const charset = p.get('charset');
  return {
    realm,
    nonce,
    opaque: p.get('opaque'),
    stale: p.get('stale')?.toLowerCase() === 'true',
    algorithm: p.get('algorithm'),
    // qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT (§25.1); some servers
    // separate with spaces as well, so both count.
    qop: qop === undefined ? undefined : splitWords(qop, /[\s,]+/).map((option) => option.toLowerCase()),
    domain: domain === undefined ? [] : splitWords(domain, /\s+/),
    // RFC 7616 §3.3: "The only allowed value is 'UTF-8'"; another value is ignored.
    charset: charset?.toLowerCase() === 'utf-8' ? 'UTF-8' : undefined,
    userhash: p.get('userhash')?.toLowerCase() === 'true',
  };
}

function splitWords(text: string, separator: RegExp): string[] {
  return text.split(separator).filter((word) => word !== '');
}

/**
 * Every Digest challenge in a header value, interpreted; other schemes are dropped
 * (RFC 8760 §2.4: a UAC ignores challenges it does not understand).
 */
export function parseDigestChallenges(value: string, header?: string): DigestChallenge[] {
  return parseChallenges(value, header)
    .filter(isDigest)
    .map((challenge) => digestChallengeOf(challenge, header));
}

// ---------------------------------------------------------------------------------------------
// Authentication-Info
// ---------------------------------------------------------------------------------------------

/**
 * Reads an `Authentication-Info` value: a bare list of auth-params, no scheme
 * (RFC 3261 §20.6, §25.1 `ainfo`; RFC 2617 §3.2.3).
 */
export function parseAuthenticationInfo(value: string, header = 'Authentication-Info'): AuthenticationInfo {
  const scanner = new Scanner(value, header);
  const params = new Map<string, string>();
  scanner.skipLws();
  while (scanner.peek() === COMMA) {
    scanner.pos++;
    scanner.skipLws();
  }
  if (scanner.atEnd) scanner.fail('parameter expected');
  do {
    const name = scanner.readToken();
    if (name === '') scanner.fail('parameter name expected');
    scanner.skipLws();
    addParam(scanner, params, name, readParamValue(scanner));
  } while (scanner.nextElement());
  return {
    nextnonce: params.get('nextnonce'),
    qop: params.get('qop')?.toLowerCase(),
    rspauth: params.get('rspauth'),
    cnonce: params.get('cnonce'),
    nc: params.get('nc'),
  };
}
