/**
 * Addresses of record as keys of the security stores: one canonical spelling per person
 * (RFC 3261 §10.2, §19.1.4), a file name for it, and the check that a certificate names it
 * (RFC 8591 §4.4.1; RFC 3261 §23.1 for the older rfc822Name form).
 */
import { createHash } from 'node:crypto';
import { ParseError } from '../sip/message/parse-error.js';
import { aorOf, formatUri, parseUri } from '../sip/uri.js';
import type { CertificateInfo } from './certificates.js';

/**
 * The canonical text of a sip: or sips: address of record: scheme, user, host and port, with
 * parameters and headers dropped and escapes and host case normalised (`aorOf` in uri.ts). So
 * `sip:Bob@Example.COM;transport=tcp` and `sip:Bob@example.com` name the same identity, and
 * `sip:bob@…` another one (the user part is case-sensitive). Throws `ParseError('bad-uri')`.
 */
export function canonicalAor(text: string): string {
  const uri = parseUri(text.trim());
  if (uri.scheme !== 'sip' && uri.scheme !== 'sips') {
    throw new ParseError('bad-uri', `an address of record is a sip: or sips: URI, not ${JSON.stringify(text)}`);
  }
  return formatUri(aorOf(uri));
}

/** `canonicalAor`, or undefined when `text` is not a sip:/sips: URI (hostile input on a message path). */
export function canonicalAorOrUndefined(text: string): string | undefined {
  try {
    return canonicalAor(text);
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

/** Longest file name we make; most file systems allow 255 octets. */
const MAX_FILE_NAME = 160;

/**
 * A file name for a canonical AoR that is valid and distinct on every file system we run on:
 * everything but lowercase letters, digits and `.` `_` `@` `+` `-` is %-escaped (so `:` and `/`
 * never reach the file system, and `Bob` and `bob` differ also on the case-insensitive file
 * systems of macOS and Windows). Very long addresses are cut and made unique with a hash.
 */
export function aorFileName(aor: string): string {
  const escaped = Array.from(new TextEncoder().encode(aor), (octet) => {
    const char = String.fromCharCode(octet);
    return /[a-z0-9._@+-]/.test(char) ? char : `%${octet.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
  if (escaped.length <= MAX_FILE_NAME) return escaped;
  const hash = createHash('sha256').update(aor).digest('hex').slice(0, 32);
  return `${escaped.slice(0, MAX_FILE_NAME - 34)}~${hash}`;
}

/**
 * Whether a certificate belongs to `aor`: one of its subjectAltName SIP URIs is the same AoR
 * (RFC 8591 §4.4.1), or, for certificates of the RFC 3261 §23.1 kind, an rfc822Name equals
 * the AoR's `user@host`.
 */
export function certificateNamesAor(info: Pick<CertificateInfo, 'sipUris' | 'emailAddresses'>, aor: string): boolean {
  const wanted = canonicalAor(aor);
  for (const uri of info.sipUris) {
    try {
      if (canonicalAor(uri) === wanted) return true;
    } catch (error) {
      if (!(error instanceof ParseError)) throw error; // a name we cannot parse names nobody
    }
  }
  const userAtHost = wanted.replace(/^sips?:/, '').replace(/:\d+$/, '');
  if (!userAtHost.includes('@')) return false;
  const at = userAtHost.lastIndexOf('@');
  return info.emailAddresses.some((email) => {
    const emailAt = email.lastIndexOf('@');
    return emailAt > 0 && email.slice(0, emailAt) === userAtHost.slice(0, at) && email.slice(emailAt + 1).toLowerCase() === userAtHost.slice(at + 1);
  });
}
