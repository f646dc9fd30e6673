/**
 * The Digest computation itself (RFC 7616 §3.4, RFC 2617 §3.2.2, RFC 3261 §22.4 as updated
 * by RFC 8760 §2): the algorithms we support, H / KD, A1 and A2, the `response` and
 * `rspauth` values, username hashing, and how an Authorization / Proxy-Authorization value is
 * written. Pure functions over strings and bytes: no state, no randomness (the cnonce comes
 * in), no I/O. The state — nonces, nonce counts, credentials — lives in digest-client.ts.
 *
 * All text is hashed as UTF-8: SIP is UTF-8 throughout (RFC 3261 §7.3.1, §25.1), and that is
 * also what RFC 7616 §4 `charset=UTF-8` asks for, so the `charset` parameter changes nothing.
 */
import { createHash, getHashes } from 'node:crypto';
import { quoteString } from '../header-values.js';

/** The hash functions of RFC 7616 §3.2 / RFC 8760 §2.1, by their IANA names. */
export type DigestHashName = 'MD5' | 'SHA-256' | 'SHA-512-256';

export interface DigestAlgorithm {
  /** The IANA token, e.g. `SHA-256-sess`. */
  readonly name: string;
  readonly hash: DigestHashName;
  /** `-sess`: A1 also covers the nonce and cnonce (RFC 7616 §3.4.2). */
  readonly session: boolean;
  /** Higher is stronger; how we choose among several challenges for one realm. */
  readonly strength: number;
}

/**
 * node:crypto names. SHA-512/256 is its own function (FIPS 180-4 §5.3.6: other initial hash
 * values), not SHA-512 cut short; OpenSSL 3 (Node 20) has it as `sha512-256`. Beware: the
 * worked example in RFC 7616 §3.9.2 was computed with SHA-512 truncated to 256 bits (a
 * reported erratum; Kamailio implements the real SHA-512/256, as we do), so its
 * printed values are not a test vector for this algorithm.
 */
const NODE_HASH: Readonly<Record<DigestHashName, string>> = { MD5: 'md5', 'SHA-256': 'sha256', 'SHA-512-256': 'sha512-256' };
const STRENGTH: Readonly<Record<DigestHashName, number>> = { MD5: 1, 'SHA-256': 2, 'SHA-512-256': 3 };

const available = new Set(getHashes());

/**
 * The algorithm a challenge names, or undefined when we do not support it (unknown token,
 * or a hash this Node lacks). Absent means MD5 (RFC 7616 §3.3). Tokens compare
 * case-insensitively, as every implementation we know does.
 */
export function digestAlgorithm(token: string | undefined): DigestAlgorithm | undefined {
  const upper = (token ?? 'MD5').toUpperCase();
  const session = upper.endsWith('-SESS');
  const base = session ? upper.slice(0, -'-SESS'.length) : upper;
  if (base !== 'MD5' && base !== 'SHA-256' && base !== 'SHA-512-256') return undefined;
  if (!available.has(NODE_HASH[base])) return undefined;
  return { name: session ? `${base}-sess` : base, hash: base, session, strength: STRENGTH[base] };
}

/** H(data): lowercase hex of the hash (RFC 7616 §3.4 "the familiar hexadecimal notation"). */
export function hashHex(hash: DigestHashName, data: string | Buffer): string {
  return createHash(NODE_HASH[hash]).update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).digest('hex');
}

/** H(username ":" realm ":" password) — the A1 hash without `-sess` (RFC 7616 §3.4.2). */
export function userHa1(hash: DigestHashName, username: string, realm: string, password: string): string {
  return hashHex(hash, `${username}:${realm}:${password}`);
}

/**
 * H(A1) for the algorithm: for `-sess`, A1 = H(user:realm:password) ":" nonce ":" cnonce
 * (RFC 7616 §3.4.2; RFC 2617 §3.2.2.2).
 */
export function ha1For(algorithm: DigestAlgorithm, plainHa1: string, nonce: string, cnonce: string | undefined): string {
  return algorithm.session ? hashHex(algorithm.hash, `${plainHa1}:${nonce}:${cnonce ?? ''}`) : plainHa1;
}

/** The username as sent when the server asked for `userhash=true`: H(username ":" realm) (RFC 7616 §3.4.4). */
export function hashedUsername(hash: DigestHashName, username: string, realm: string): string {
  return hashHex(hash, `${username}:${realm}`);
}

export type DigestQop = 'auth' | 'auth-int';

export interface ResponseDigestInput {
  readonly hash: DigestHashName;
  /** H(A1), already including the `-sess` step. */
  readonly ha1: string;
  readonly nonce: string;
  /** The request method; empty for `rspauth` (RFC 2617 §3.2.3: A2 = ":" digest-uri). */
  readonly method: string;
  readonly uri: string;
  /** Undefined for the RFC 2069 form (a challenge without qop). */
  readonly qop: DigestQop | undefined;
  /** 8 hex digits; required with qop. */
  readonly nc?: string;
  /** Required with qop. */
  readonly cnonce?: string;
  /** The message body, for `auth-int` (an absent body hashes as empty: RFC 3261 §22.4 item 7). */
  readonly body?: Buffer;
}

/**
 * request-digest (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1):
 *   with qop:    KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))
 *   without qop: KD(H(A1), nonce ":" H(A2))                  (RFC 2069 compatibility)
 * where KD(secret, data) = H(secret ":" data), A2 = method ":" digest-uri, and for auth-int
 * A2 = method ":" digest-uri ":" H(entity-body) (RFC 7616 §3.4.3).
 */
export function responseDigest(input: ResponseDigestInput): string {
  const { hash, ha1, nonce, method, uri, qop } = input;
  const a2 = qop === 'auth-int' ? `${method}:${uri}:${hashHex(hash, input.body ?? Buffer.alloc(0))}` : `${method}:${uri}`;
  const ha2 = hashHex(hash, a2);
  if (qop === undefined) return hashHex(hash, `${ha1}:${nonce}:${ha2}`);
  return hashHex(hash, `${ha1}:${nonce}:${input.nc ?? ''}:${input.cnonce ?? ''}:${qop}:${ha2}`);
}

/** nc-value: the count as exactly 8 lowercase hex digits (RFC 7616 §3.4; RFC 3261 §25.1 `nc-value = 8LHEX`). */
export function formatNonceCount(count: number): string {
  return count.toString(16).padStart(8, '0');
}

/** The fields of a Digest credentials value (RFC 3261 §25.1 `digest-response`, RFC 7616 §3.4). */
export interface DigestCredentialsFields {
  /** Already hashed when `userhash` is true. */
  readonly username: string;
  readonly realm: string;
  readonly nonce: string;
  readonly uri: string;
  readonly response: string;
  /** Echoed verbatim from the challenge; omitted when the challenge had none (MD5). */
  readonly algorithm: string | undefined;
  readonly cnonce: string | undefined;
  readonly opaque: string | undefined;
  readonly qop: DigestQop | undefined;
  readonly nc: string | undefined;
  readonly userhash: boolean;
}

/**
 * Writes an Authorization / Proxy-Authorization value. Quoted: username, realm, nonce, uri
 * (RFC 3261 §22.4 item 2: the uri MUST be quoted), response, cnonce, opaque. Bare tokens:
 * algorithm, qop and nc (§25.1 `message-qop`, `nonce-count`), userhash. The nonce comes
 * before the cnonce because some verifiers find `nonce=` by searching the text.
 * Throws RangeError if a value holds CR or LF (quoteString), which the caller rules out.
 */
export function formatDigestCredentials(fields: DigestCredentialsFields): string {
  const parts = [
    `username=${quoteString(fields.username)}`,
    `realm=${quoteString(fields.realm)}`,
    `nonce=${quoteString(fields.nonce)}`,
    `uri=${quoteString(fields.uri)}`,
    `response=${quoteString(fields.response)}`,
  ];
  if (fields.algorithm !== undefined) parts.push(`algorithm=${fields.algorithm}`);
  if (fields.cnonce !== undefined) parts.push(`cnonce=${quoteString(fields.cnonce)}`);
  if (fields.opaque !== undefined) parts.push(`opaque=${quoteString(fields.opaque)}`);
  if (fields.qop !== undefined) parts.push(`qop=${fields.qop}`);
  if (fields.nc !== undefined) parts.push(`nc=${fields.nc}`);
  if (fields.userhash) parts.push('userhash=true');
  return `Digest ${parts.join(', ')}`;
}
