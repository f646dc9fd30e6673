/**
 * Legacy EnvelopedData (RFC 5652 §6) with AES-CBC content (RFC 3565), receive only.
 *
 * sipnote sends AuthEnvelopedData (RFC 8591 §4.2, see auth-enveloped-data.ts), but RFC 3853 §3
 * made AES-CBC EnvelopedData the SIP floor and older clients still send it, so we read it. CBC
 * has no integrity of its own: anyone can alter such a ciphertext undetected (RFC 8591 §12, the
 * Efail attacks), so an opened EnvelopedData is marked `authenticated: false` and its content
 * must be trusted only through a signature inside it.
 *
 * The EncryptedContentInfo reader here is shared with AuthEnvelopedData, which reuses the type
 * (RFC 5083 §2.1).
 */
import { CmsError, OID, Tag, isContext, readOctetString, readOid, readSequence, type DerElement } from './der.js';
import {
  implicitOctets,
  readAlgorithmIdentifier,
  readSmallInteger,
  recoverContentKey,
  type AlgorithmIdentifier,
  type EnvelopeRecipient,
} from './key-agreement.js';

const subtle = globalThis.crypto.subtle;

/** The result of opening an enveloped message. */
export interface OpenedEnvelope {
  /** The decrypted content: for S/MIME, a whole MIME entity (RFC 8551 §3.1). */
  readonly content: Uint8Array;
  /** The inner content type OID; id-data (1.2.840.113549.1.7.1) for a MIME entity. */
  readonly contentType: string;
  /**
   * True when the encryption itself protects integrity (AuthEnvelopedData, AES-GCM); false for
   * EnvelopedData with AES-CBC, whose content is to be believed only if a signature inside it
   * verifies (RFC 8591 §12).
   */
  readonly authenticated: boolean;
  /** OID of the content-encryption algorithm, e.g. id-aes128-GCM (2.16.840.1.101.3.4.1.6). */
  readonly contentEncryptionAlgorithm: string;
}

/** EncryptedContentInfo (RFC 5652 §6.1), with the encrypted content as one byte array. */
export interface EncryptedContentInfo {
  readonly contentType: string;
  readonly contentEncryptionAlgorithm: AlgorithmIdentifier;
  readonly encryptedContent: Uint8Array;
}

/**
 * EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
 *   encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }.
 * The content may arrive in BER segments (OpenSSL's `-stream` output does that); they are
 * joined. Detached content (the field absent) is not something a SIP body can use.
 */
export function readEncryptedContentInfo(element: DerElement | undefined, what: string): EncryptedContentInfo {
  const [contentType, algorithm, encryptedContent, extra] = readSequence(element, what);
  if (!encryptedContent || !isContext(encryptedContent, 0) || extra) {
    throw new CmsError('malformed', `${what}: no encryptedContent [0]`);
  }
  return {
    contentType: readOid(contentType, `${what} contentType`),
    contentEncryptionAlgorithm: readAlgorithmIdentifier(algorithm, `${what} contentEncryptionAlgorithm`),
    encryptedContent: implicitOctets(encryptedContent, `${what} encryptedContent`),
  };
}

/** AES-CBC content encryption OIDs (RFC 3565 §4.1) and their key length in bits. */
const CBC_KEY_BITS: ReadonlyMap<string, 128 | 192 | 256> = new Map([
  [OID.aes128Cbc, 128],
  ['2.16.840.1.101.3.4.1.22', 192], // id-aes192-CBC
  [OID.aes256Cbc, 256],
]);

/**
 * Opens the EnvelopedData inside a ContentInfo (the element after the [0] EXPLICIT tag):
 * EnvelopedData ::= SEQUENCE { version, originatorInfo [0] IMPLICIT OPTIONAL, recipientInfos,
 *   encryptedContentInfo, unprotectedAttrs [1] IMPLICIT OPTIONAL } (RFC 5652 §6.1).
 */
export async function openEnvelopedData(envelopedData: DerElement, recipient: EnvelopeRecipient): Promise<OpenedEnvelope> {
  const fields = readSequence(envelopedData, 'EnvelopedData');
  let index = 0;
  readSmallInteger(fields[index++], 'EnvelopedData version');
  if (fields[index] && isContext(fields[index] as DerElement, 0)) index++; // originatorInfo: certificates we do not need
  const recipientInfos = readSequence(fields[index++], 'RecipientInfos', Tag.set);
  const encrypted = readEncryptedContentInfo(fields[index++], 'EncryptedContentInfo');
  if (fields[index] && isContext(fields[index] as DerElement, 1)) index++; // unprotectedAttrs: nothing we act on
  if (index !== fields.length) throw new CmsError('malformed', 'EnvelopedData: unexpected fields');

  const algorithm = encrypted.contentEncryptionAlgorithm;
  const keyBits = CBC_KEY_BITS.get(algorithm.oid);
  if (!keyBits) throw new CmsError('unsupported-algorithm', `EnvelopedData content encryption ${algorithm.oid} is not supported`);
  // AES-IV ::= OCTET STRING (SIZE(16)) (RFC 3565 §4.1)
  const iv = readOctetString(algorithm.parameters, 'AES-CBC parameters');
  if (iv.length !== 16) throw new CmsError('malformed', 'AES-CBC parameters: the IV must be 16 octets');

  const contentKey = await recoverContentKey(recipientInfos, recipient, { name: 'AES-CBC', length: keyBits });
  let content: ArrayBuffer;
  try {
    content = await subtle.decrypt({ name: 'AES-CBC', iv }, contentKey, encrypted.encryptedContent);
  } catch (cause) {
    // Bad padding or a length that is no multiple of the block: the wrong key, or tampering.
    throw new CmsError('decryption-failed', 'the AES-CBC content does not decrypt', { cause });
  }
  return { content: new Uint8Array(content), contentType: encrypted.contentType, authenticated: false, contentEncryptionAlgorithm: algorithm.oid };
}
