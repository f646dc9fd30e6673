/**
 * Header field names: case-insensitive matching and compact forms (RFC 3261 §7.3.1, §7.3.3, §20).
 *
 * Every header is looked up by its *key*: the lower-case long form. `v`, `V`, `via` and `VIA`
 * all have the key `via`. Compact forms must be accepted on input (§7.3.3); we never send them,
 * since the bytes they save are not worth the interop risk with older peers.
 *
 * The parser meets the same few dozen names in nearly every message, written the usual way
 * (`Via`, `Call-ID`, `CSeq`). `knownHeaderAt` recognises those in the message text itself, so
 * that the common case makes no new string for the name or its key and the keys it hands out
 * are the interned literals below (comparing two of them is a pointer comparison).
 */

/** Compact form -> lower-case long form (RFC 3261 §20 plus the registered extension forms). */
const COMPACT_FORMS: Readonly<Record<string, string>> = {
  a: 'accept-contact', // RFC 3841
  b: 'referred-by', // RFC 3892
  c: 'content-type',
  d: 'request-disposition', // RFC 3841
  e: 'content-encoding',
  f: 'from',
  i: 'call-id',
  j: 'reject-contact', // RFC 3841
  k: 'supported',
  l: 'content-length',
  m: 'contact',
  n: 'identity-info', // RFC 4474
  o: 'event', // RFC 6665
  r: 'refer-to', // RFC 3515
  s: 'subject',
  t: 'to',
  u: 'allow-events', // RFC 6665
  v: 'via',
  x: 'session-expires', // RFC 4028
  y: 'identity', // RFC 8224
};

/** Spellings that are not simple Title-Case of the key. */
const CANONICAL_SPELLINGS: Readonly<Record<string, string>> = {
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  'www-authenticate': 'WWW-Authenticate',
  'mime-version': 'MIME-Version',
  'imdn-record-route': 'IMDN-Record-Route',
  'imdn-route': 'IMDN-Route',
  'p-asserted-identity': 'P-Asserted-Identity',
  'p-preferred-identity': 'P-Preferred-Identity',
  'sip-etag': 'SIP-ETag',
  'sip-if-match': 'SIP-If-Match',
};

/**
 * The keys of the headers a messenger usually meets (RFC 3261 §20 and extensions), written as
 * literals so that the keys handed out are interned strings. Only a speed-up: a name not listed
 * here is handled exactly the same, a little slower.
 */
const USUAL_KEYS: readonly string[] = [
  // In every request and response, roughly in the order they are usually written.
  'via',
  'max-forwards',
  'from',
  'to',
  'call-id',
  'cseq',
  'contact',
  'content-type',
  'content-length',
  // Common.
  'record-route',
  'route',
  'date',
  'user-agent',
  'server',
  'expires',
  'allow',
  'supported',
  'require',
  'accept',
  'accept-encoding',
  'accept-language',
  'accept-contact',
  'proxy-authorization',
  'proxy-authenticate',
  'authorization',
  'www-authenticate',
  'authentication-info',
  'subject',
  'event',
  'allow-events',
  'subscription-state',
  'content-disposition',
  'content-encoding',
  'content-language',
  'mime-version',
  'min-expires',
  'organization',
  'priority',
  'reason',
  'refer-to',
  'referred-by',
  'reply-to',
  'in-reply-to',
  'retry-after',
  'timestamp',
  'unsupported',
  'proxy-require',
  'warning',
  'alert-info',
  'call-info',
  'error-info',
  'path',
  'service-route',
  'session-expires',
  'p-asserted-identity',
  'p-preferred-identity',
  'sip-etag',
  'sip-if-match',
];

/** A header name recognised in message text: the spelling as written there, and its key. */
export interface KnownHeaderName {
  readonly spelling: string;
  readonly key: string;
}

/**
 * Known names by the code of their first character, long forms first (in the order above, so
 * the usual ones are tried first), then the compact forms.
 */
const KNOWN_BY_FIRST: KnownHeaderName[][] = [];
/** Every spelling above, every key, and every compact form (both cases) -> key. */
const KEY_BY_NAME = new Map<string, string>();

function addKnown(spelling: string, key: string): void {
  (KNOWN_BY_FIRST[spelling.charCodeAt(0)] ??= []).push({ spelling, key });
  KEY_BY_NAME.set(spelling, key);
}
for (const key of USUAL_KEYS) {
  addKnown(canonicalHeaderName(key), key);
  KEY_BY_NAME.set(key, key);
}
for (const [letter, key] of Object.entries(COMPACT_FORMS)) {
  addKnown(letter, key);
  addKnown(letter.toUpperCase(), key);
  KEY_BY_NAME.set(key, key);
}

/**
 * The known header whose name is written at `start` in `text` exactly as we spell it (case
 * included) and is followed by SP, HT or ":", or undefined. `VIA` or `call-id` are not found
 * here; they are still headers, which `headerKey` knows.
 */
export function knownHeaderAt(text: string, start: number): KnownHeaderName | undefined {
  const candidates = KNOWN_BY_FIRST[text.charCodeAt(start)];
  if (candidates === undefined) return undefined;
  for (let i = 0; i < candidates.length; i++) {
    const candidate = candidates[i]!;
    const spelling = candidate.spelling;
    // The character after the name first: it rules out most candidates at once.
    const next = text.charCodeAt(start + spelling.length);
    if ((next === 0x3a || next === 0x20 || next === 0x09) && spelledAt(text, start, spelling)) return candidate;
  }
  return undefined;
}

/** Whether `literal` is written at `pos` in `text` (a loop: V8 does not inline `startsWith`). */
function spelledAt(text: string, pos: number, literal: string): boolean {
  for (let i = 0; i < literal.length; i++) if (text.charCodeAt(pos + i) !== literal.charCodeAt(i)) return false;
  return true;
}

/**
 * Every name written exactly as the parser knows it without computing anything: the usual
 * spellings, the keys themselves and the compact forms in both cases, each with its key. The
 * head scanner (head-scanner.ts) recognises these; the name of a row written so is the
 * spelling (the same characters), its key the interned literal.
 */
export function knownHeaderSpellings(): KnownHeaderName[] {
  return [...KEY_BY_NAME].map(([spelling, key]) => ({ spelling, key }));
}

/** The lookup key of a header name as written on the wire or by a caller. */
export function headerKey(name: string): string {
  const known = KEY_BY_NAME.get(name);
  if (known !== undefined) return known;
  if (name.length === 1) {
    const lower = name.toLowerCase();
    return COMPACT_FORMS[lower] ?? lower;
  }
  return name.toLowerCase();
}

/** The spelling we use when we write a header: `content-type` -> `Content-Type`. */
export function canonicalHeaderName(name: string): string {
  const key = headerKey(name);
  const special = CANONICAL_SPELLINGS[key];
  if (special !== undefined) return special;
  return key.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
}

/**
 * Headers whose value is a comma-separated list, so that several rows and one comma-joined
 * row mean the same (§7.3.1). The authentication headers are deliberately absent: their
 * values contain commas and must never be combined or split (§7.3.1, last paragraph).
 */
export const LIST_HEADERS: ReadonlySet<string> = new Set([
  'via',
  'route',
  'record-route',
  'contact',
  'allow',
  'accept',
  'accept-encoding',
  'accept-language',
  'supported',
  'require',
  'proxy-require',
  'unsupported',
  'allow-events',
  'path',
  'service-route',
  'in-reply-to',
  'warning',
  'error-info',
  'call-info',
  'alert-info',
  'content-encoding',
  'content-language',
]);
