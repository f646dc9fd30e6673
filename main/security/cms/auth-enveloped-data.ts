/**
 * AuthEnvelopedData (RFC 5083) with AES-GCM (RFC 5084): the encryption RFC 8591 §4.2 makes
 * mandatory for S/MIME in SIP, and the entry point for opening any enveloped message.
 *
 * pkijs cannot write or read this structure in a form OpenSSL accepts (its GCM goes into plain
 * EnvelopedData with a bare IV and the tag glued to the ciphertext), so it is built here on the
 * DER writer of der.ts and WebCrypto, and checked against `openssl cms` both ways
 * (test/interop/openssl-enveloped.test.ts).
 *
 *   ContentInfo { id-ct-authEnvelopedData, [0] EXPLICIT AuthEnvelopedData {
 *     version 0,
 *     recipientInfos SET OF RecipientInfo,                 -- one per recipient, see key-agreement.ts
 *     authEncryptedContentInfo { id-data, id-aes128-GCM GCMParameters { nonce (12), ICVlen 16 },
 *                                [0] IMPLICIT ciphertext without the tag },
 *     mac OCTET STRING                                     -- the 16-octet GCM tag
 *   } }
 *
 * No authAttrs are sent (RFC 5083 §2.1 requires them only for content types other than
 * id-data), so the GCM additional data is empty. One content key is wrapped for every
 * recipient: the peer, and ourselves so that we can read our sent messages.
 */
import type { webcrypto } from 'node:crypto';
import {
  CmsError,
  OID,
  Tag,
  concatBytes,
  derAlgorithm,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derSmallInteger,
  isContext,
  readChildren,
  readDer,
  readOctetString,
  readOid,
  readSequence,
  type DerElement,
} from './der.js';
import { openEnvelopedData, readEncryptedContentInfo, type OpenedEnvelope } from './enveloped-data.js';
import {
  readSmallInteger,
  recipientInfoFor,
  recoverContentKey,
  type AlgorithmIdentifier,
  type EnvelopeRecipient,
} from './key-agreement.js';

export type { EnvelopeRecipient } from './key-agreement.js';
export type { OpenedEnvelope } from './enveloped-data.js';

const subtle = globalThis.crypto.subtle;

/** RFC 5084 §3.2: 12 octets is the nonce length GCM is designed for. */
const NONCE_LENGTH = 12;
/** RFC 5084 §3.2 allows 12 to 16 octets; RFC 8591 and OpenSSL use the full 16. */
const TAG_LENGTH = 16;

/** id-aes192-GCM (RFC 5084 §3.2) is not in der.ts's table. */
const AES192_GCM = '2.16.840.1.101.3.4.1.26';
const GCM_KEY_BITS: ReadonlyMap<string, 128 | 192 | 256> = new Map([
  [OID.aes128Gcm, 128],
  [AES192_GCM, 192],
  [OID.aes256Gcm, 256],
]);

export interface EncryptAuthEnvelopedOptions {
  /** What to encrypt: for S/MIME, a whole MIME entity (RFC 8551 §3.1), usually a SignedData one. */
  readonly content: Uint8Array;
  /** Every certificate that must be able to decrypt, ourselves included. At least one. */
  readonly recipients: readonly { readonly certificateDer: Uint8Array }[];
}

/**
 * Encrypts `content` with a fresh AES-128-GCM key and wraps that key for each recipient
 * certificate (ECDH for EC keys, RSA-OAEP for RSA keys). Returns the DER ContentInfo.
 * Throws `CmsError`: `invalid-argument` (no recipients), `malformed` (a certificate that does
 * not parse), `unsupported-algorithm` (a key we cannot encrypt to, e.g. Ed25519).
 */
export async function encryptAuthEnveloped(options: EncryptAuthEnvelopedOptions): Promise<Uint8Array> {
  const { content, recipients } = options;
  if (recipients.length === 0) throw new CmsError('invalid-argument', 'an encrypted message needs at least one recipient');
  const contentKey = await subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['encrypt']);
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(NONCE_LENGTH));
  // The content and every recipient's key are independent: let WebCrypto run them side by side.
  const [sealed, ...recipientInfos] = await Promise.all([
    subtle.encrypt({ name: 'AES-GCM', iv: nonce, tagLength: TAG_LENGTH * 8 }, contentKey, content),
    ...recipients.map((recipient) => recipientInfoFor(recipient.certificateDer, contentKey)),
  ]);
  // WebCrypto returns ciphertext ‖ tag; CMS keeps them apart (RFC 5083 §2.1: encryptedContent, mac).
  const ciphertext = new Uint8Array(sealed, 0, sealed.byteLength - TAG_LENGTH);
  const mac = new Uint8Array(sealed, sealed.byteLength - TAG_LENGTH);

  // The outer layers are written as lists of parts so that the ciphertext, the only large
  // piece, is copied once: into the final buffer.
  const encryptedContentInfo = wrap(0x30, [
    derOid(OID.data),
    derAlgorithm(OID.aes128Gcm, derSequence(derOctetString(nonce), derSmallInteger(TAG_LENGTH))),
    ...wrap(0x80, [ciphertext]), // encryptedContent [0] IMPLICIT OCTET STRING
  ]);
  const authEnvelopedData = wrap(0x30, [
    derSmallInteger(0),
    derSetOf(recipientInfos),
    ...encryptedContentInfo,
    derOctetString(mac),
  ]);
  return concatBytes(wrap(0x30, [derOid(OID.authEnvelopedData), ...wrap(0xa0, authEnvelopedData)]));
}

/** `parts` preceded by the DER identifier and length octets of an element that holds them. */
function wrap(tag: number, parts: readonly Uint8Array[]): Uint8Array[] {
  let length = 0;
  for (const part of parts) length += part.length;
  const header = [tag];
  if (length < 0x80) header.push(length);
  else {
    const lengthOctets: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthOctets.unshift(rest & 0xff);
    header.push(0x80 | lengthOctets.length, ...lengthOctets);
  }
  return [Uint8Array.from(header), ...parts];
}

/**
 * Decrypts an AuthEnvelopedData or, for old peers, an EnvelopedData ContentInfo addressed to
 * `recipient`, and returns the content. Use `openEnvelope` to also learn whether the
 * encryption protected integrity. Throws `CmsError` only:
 * - `malformed`: not decodable as the structure it claims to be;
 * - `unexpected-content-type`: a ContentInfo of another type (a SignedData, say);
 * - `no-recipient`: no RecipientInfo names our certificate (a UAS answers 493, RFC 8591 §7.3);
 * - `unsupported-algorithm`: a cipher, key wrap or key agreement scheme we do not implement;
 * - `decryption-failed`: the GCM tag or the key unwrap check fails (tampering or a wrong key);
 * - `key-mismatch` / `invalid-argument`: our own private key or certificate is unusable.
 */
export async function decryptEnveloped(der: Uint8Array, recipient: EnvelopeRecipient): Promise<Uint8Array> {
  return (await openEnvelope(der, recipient)).content;
}

/** Like `decryptEnveloped`, with what kind of envelope it was (see `OpenedEnvelope`). */
export async function openEnvelope(der: Uint8Array, recipient: EnvelopeRecipient): Promise<OpenedEnvelope> {
  // ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY } (RFC 5652 §3)
  const [contentTypeElement, explicitContent, extra] = readSequence(readDer(der, 'ContentInfo'), 'ContentInfo');
  const contentType = readOid(contentTypeElement, 'ContentInfo contentType');
  if (!explicitContent || !isContext(explicitContent, 0) || extra) throw new CmsError('malformed', 'ContentInfo: no content [0]');
  const [content, more] = readChildren(explicitContent, 'ContentInfo content');
  if (!content || more) throw new CmsError('malformed', 'ContentInfo: content [0] must hold one element');
  // The CMS type decides, never the smime-type MIME parameter (RFC 8591 §4.2 and RFC 8551 §3.2.2 spell it differently).
  if (contentType === OID.authEnvelopedData) return openAuthEnvelopedData(content, recipient);
  if (contentType === OID.envelopedData) return openEnvelopedData(content, recipient);
  throw new CmsError('unexpected-content-type', `ContentInfo type ${contentType} is not an encrypted message`);
}

/**
 * AuthEnvelopedData ::= SEQUENCE { version, originatorInfo [0] IMPLICIT OPTIONAL, recipientInfos,
 *   authEncryptedContentInfo, authAttrs [1] IMPLICIT OPTIONAL, mac, unauthAttrs [2] IMPLICIT OPTIONAL }
 * (RFC 5083 §2.1).
 */
async function openAuthEnvelopedData(element: DerElement, recipient: EnvelopeRecipient): Promise<OpenedEnvelope> {
  const fields = readSequence(element, 'AuthEnvelopedData');
  let index = 0;
  readSmallInteger(fields[index++], 'AuthEnvelopedData version'); // 0; not enforced, nothing depends on it
  if (fields[index] && isContext(fields[index] as DerElement, 0)) index++; // originatorInfo: certificates we do not need
  const recipientInfos = readSequence(fields[index++], 'RecipientInfos', Tag.set);
  const encrypted = readEncryptedContentInfo(fields[index++], 'authEncryptedContentInfo');
  let additionalData: Uint8Array | undefined;
  const authAttrs = fields[index];
  if (authAttrs && isContext(authAttrs, 1)) {
    // RFC 5083 §2.2: the additional data is the DER of authAttrs with an EXPLICIT SET OF tag,
    // i.e. the received bytes with the [1] IMPLICIT tag octet replaced by 0x31.
    additionalData = Uint8Array.from(authAttrs.bytes);
    additionalData[0] = 0x31;
    index++;
  }
  const mac = readOctetString(fields[index++], 'AuthEnvelopedData mac');
  if (fields[index] && isContext(fields[index] as DerElement, 2)) index++; // unauthAttrs: nothing we act on
  if (index !== fields.length) throw new CmsError('malformed', 'AuthEnvelopedData: unexpected fields');

  const algorithm = encrypted.contentEncryptionAlgorithm;
  const gcm = readGcmParameters(algorithm);
  if (mac.length !== gcm.tagLength) throw new CmsError('malformed', `AuthEnvelopedData mac: ${mac.length} octets, ICVlen says ${gcm.tagLength}`);

  const contentKey = await recoverContentKey(recipientInfos, recipient, { name: 'AES-GCM', length: gcm.keyBits });
  const parameters: webcrypto.AesGcmParams = { name: 'AES-GCM', iv: gcm.nonce, tagLength: gcm.tagLength * 8 };
  if (additionalData) parameters.additionalData = additionalData;
  let content: ArrayBuffer;
  try {
    // WebCrypto wants the tag after the ciphertext; this is the one copy of the ciphertext we make.
    content = await subtle.decrypt(parameters, contentKey, concatBytes([encrypted.encryptedContent, mac]));
  } catch (cause) {
    throw new CmsError('decryption-failed', 'the AES-GCM tag does not match: the message was altered or the key is wrong', { cause });
  }
  return { content: new Uint8Array(content), contentType: encrypted.contentType, authenticated: true, contentEncryptionAlgorithm: algorithm.oid };
}

/**
 * GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen AES-GCM-ICVlen DEFAULT 12 },
 * AES-GCM-ICVlen ::= INTEGER (12 | 13 | 14 | 15 | 16) (RFC 5084 §3.2). WebCrypto takes exactly
 * these tag lengths (96 to 128 bits in steps of 8).
 */
function readGcmParameters(algorithm: AlgorithmIdentifier): { keyBits: 128 | 192 | 256; nonce: Uint8Array; tagLength: number } {
  const keyBits = GCM_KEY_BITS.get(algorithm.oid);
  if (!keyBits) throw new CmsError('unsupported-algorithm', `AuthEnvelopedData content encryption ${algorithm.oid} is not supported`);
  const [nonceElement, tagLengthElement, extra] = readSequence(algorithm.parameters, 'GCMParameters');
  if (extra) throw new CmsError('malformed', 'GCMParameters: unexpected fields');
  const nonce = readOctetString(nonceElement, 'GCMParameters aes-nonce');
  if (nonce.length === 0) throw new CmsError('malformed', 'GCMParameters: empty nonce');
  const tagLength = tagLengthElement ? readSmallInteger(tagLengthElement, 'GCMParameters aes-ICVlen') : 12;
  if (tagLength < 12 || tagLength > 16) throw new CmsError('malformed', `GCMParameters: ICVlen ${tagLength} is not 12 to 16`);
  return { keyBits, nonce, tagLength };
}
