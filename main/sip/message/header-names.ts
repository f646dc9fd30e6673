/**
 * Header field names: case-insensitive matching and compact forms (RFC 3261 §7.3.1, §7.3.3, §20).
 *
 * Every header is looked up by its *key*: the lower-case long form. `v`, `V`, `via` and `VIA`
 * all have the key `via`. Compact forms must be accepted on input (§7.3.3); we never send them,
 * since the bytes they save are not worth the interop risk with older peers.
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

/** The lookup key of a header name as written on the wire or by a caller. */
export function headerKey(name: string): string {
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
