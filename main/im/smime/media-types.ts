/**
 * The media types of S/MIME in a SIP MESSAGE (RFC 8591 §4–§7, RFC 8551 §3.2) and how a
 * received Content-Type is sorted before any bytes are opened.
 *
 * - What we send: `application/pkcs7-mime` with `smime-type=authEnveloped-data` (the RFC 8551
 *   §3.2.2 token; RFC 8591 §4.2 prints `auth-enveloped-data`), `signed-data` inside it, and
 *   `Content-Disposition: attachment; handling=required` (RFC 3261 §23.3).
 * - What we take: both spellings of the AuthEnvelopedData token, `enveloped-data` (legacy
 *   AES-CBC, only with a signature inside), `signed-data`, and `application/pkcs7-mime` with
 *   no smime-type at all (RFC 8551 §3.2.2 lets a receiver find the type in the CMS data), plus
 *   the old `application/x-pkcs7-mime` name. The parameter only routes the body to the CMS
 *   reader: the ContentInfo OID decides what the body is (RFC 8591 §4.2 and RFC 8551 disagree on
 *   the spelling, and RFC 8591 §10.4 labels AuthEnvelopedData as `enveloped-data`).
 * - What we do not take: `multipart/signed` (we do not validate clear-signed bodies, so we must
 *   not list `application/pkcs7-signature` either, RFC 8591 §6), `certs-only` (a key, not a
 *   message), `compressed-data`, anything else. RFC 8591 §7.3 makes 415 the answer to any
 *   unsupported top-level MESSAGE body, whatever its `handling`.
 */
import { mediaTypeOf, type ContentType } from '../../sip/header-values.js';

/** The SIP Content-Type of a body from `protectMessage`. */
export const AUTH_ENVELOPED_CONTENT_TYPE = 'application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m';

/** The SIP Content-Type of a body from `signOnly`. */
export const SIGNED_CONTENT_TYPE = 'application/pkcs7-mime; smime-type=signed-data; name=smime.p7m';

/** RFC 3261 §23.3: S/MIME bodies SHOULD say `handling=required`; RFC 8591 §10 examples use the filename. */
export const SMIME_CONTENT_DISPOSITION = 'attachment; filename=smime.p7m; handling=required';

/** The certs-only body of a 493 (RFC 3261 §23.2, RFC 8551 §3.6). */
export const CERTS_ONLY_CONTENT_TYPE = 'application/pkcs7-mime; smime-type=certs-only';

/**
 * The header of the MIME entity that carries a SignedData inside an AuthEnvelopedData
 * (RFC 8591 §4.3, §5). No Content-Transfer-Encoding line: the entity is binary and SIP is 8-bit
 * clean, and the 30-odd octets matter under the 1300-octet limit of RFC 3428 §8.
 */
export const SIGNED_ENTITY_HEADER = 'Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n';

/**
 * What a 415 lists (RFC 3261 §8.2.3, RFC 8591 §6): one parameterised `application/pkcs7-mime`
 * per smime-type we open, the RFC 8591 spelling included so that a peer that looks for it finds
 * it. Plaintext types are left out on purpose: which contacts may send plaintext is a
 * per-contact policy of the caller, and advertising it to everyone invites a downgrade.
 */
export const SMIME_ACCEPT =
  'application/pkcs7-mime;smime-type=authEnveloped-data, application/pkcs7-mime;smime-type=auth-enveloped-data, ' +
  'application/pkcs7-mime;smime-type=enveloped-data, application/pkcs7-mime;smime-type=signed-data';

/** smime-type values (RFC 8551 §3.2.2) that route a body to the CMS reader, lowercased. */
const CMS_SMIME_TYPES: ReadonlySet<string> = new Set(['authenveloped-data', 'auth-enveloped-data', 'enveloped-data', 'signed-data']);

/** Top-level types that are plaintext for the caller's per-contact legacy policy (RFC 3428 §7). */
const PLAINTEXT_TYPES: ReadonlySet<string> = new Set(['text/plain', 'message/cpim', 'multipart/mixed', 'multipart/alternative']);

export type BodyKind =
  /** An `application/pkcs7-mime` body we open: the CMS OID inside says which. */
  | 'cms'
  /** `message/cpim`: plaintext, unless its payload is itself S/MIME (RFC 8591 §9.1). */
  | 'cpim'
  /** text/plain or multipart/mixed|alternative: the caller's plaintext policy applies. */
  | 'plaintext'
  /** Anything else, certs-only and multipart/signed included: 415. */
  | 'unsupported';

/** Sorts a parsed Content-Type. */
export function classifyBody(contentType: ContentType): BodyKind {
  const media = mediaTypeOf(contentType);
  if (media === 'application/pkcs7-mime' || media === 'application/x-pkcs7-mime') {
    const smimeType = contentType.params.get('smime-type');
    // No smime-type: RFC 8551 §3.2.2 leaves the receiver to look inside, which we always do.
    if (smimeType === undefined || smimeType === null) return 'cms';
    return CMS_SMIME_TYPES.has(smimeType.toLowerCase()) ? 'cms' : 'unsupported';
  }
  if (media === 'message/cpim') return 'cpim';
  if (PLAINTEXT_TYPES.has(media)) return 'plaintext';
  return 'unsupported';
}
