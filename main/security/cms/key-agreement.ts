/**
 * Carrying the content-encryption key of an enveloped message to each recipient, and getting it
 * back out (RFC 5652 §6.2): key agreement with ECDH for EC certificates, key transport with RSA
 * for RSA certificates.
 *
 * Sending, with exactly what RFC 8591 §4.2 asks for:
 * - EC certificate → KeyAgreeRecipientInfo with ephemeral-static ECDH,
 *   dhSinglePass-stdDH-sha256kdf-scheme: the ANSI X9.63 KDF with SHA-256 over the shared secret
 *   and an ECC-CMS-SharedInfo gives an AES-128 key-encryption key, which wraps the content key
 *   with AES-128-WRAP (RFC 5753 §3.1.1, §7.2; RFC 3565 §2.3.2). The originator is the fresh
 *   ephemeral public key; there is no UKM (OpenSSL sends none either).
 * - RSA certificate → KeyTransRecipientInfo with RSAES-OAEP, SHA-256 and MGF1-SHA-256, written
 *   byte for byte as `openssl cms -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256`
 *   writes it (RFC 3560 §3, RFC 4055 §4.1; hash parameters absent).
 * Both name the recipient by issuerAndSerialNumber, which every implementation understands.
 *
 * Receiving, additionally: the SHA-1/384/512 KDF schemes and their cofactor twins, AES-192/256
 * key wrap, a UKM, RSA-OAEP with any SHA-1/SHA-2 hash and a label, RSAES-PKCS1-v1_5 key transport
 * (OpenSSL's default, the RFC 3370 §4.2.1 algorithm), and recipients named by
 * subjectKeyIdentifier (`openssl cms -keyid`, RFC 5652 §6.2.1, §6.2.2).
 *
 * Everything runs on WebCrypto; only PKCS#1 v1.5 key transport, which WebCrypto lacks, uses
 * node:crypto (see `decryptPkcs1v15KeyTransport`).
 */
import { constants as cryptoConstants, createHash, createPrivateKey, privateDecrypt, type KeyObject, type webcrypto } from 'node:crypto';
import { knownCertificate, type CertificateCore } from '../certificates.js';
import {
  CmsError,
  OID,
  Tag,
  bytesEqual,
  derAlgorithm,
  derExplicit,
  derOctetString,
  derSequence,
  derSmallInteger,
  derTlv,
  expectUniversal,
  isContext,
  isUniversal,
  readChildren,
  readOctetString,
  readOid,
  readSequence,
  type DerElement,
} from './der.js';

type CryptoKey = webcrypto.CryptoKey;
const subtle = globalThis.crypto.subtle;

/** The certificate an enveloped message was encrypted to, and its private key: our side of it. */
export interface EnvelopeRecipient {
  /** Our certificate (DER): it names us in the RecipientInfos. */
  readonly certificateDer: Uint8Array;
  /** Our private key as PKCS#8 (RFC 5958) DER, as the keychain stores it. */
  readonly privateKeyPkcs8: Uint8Array;
}

/** What the recovered content key will decrypt: known from the EncryptedContentInfo beforehand. */
export interface ContentKeyAlgorithm {
  readonly name: 'AES-GCM' | 'AES-CBC';
  /** Key length in bits. */
  readonly length: 128 | 192 | 256;
}

/** Object identifiers used here that the shared table in der.ts does not list. */
const MORE_OID = {
  // ANSI X9.63 schemes with the SHA-1 KDF (RFC 3278 §8.2) and the SHA-2 ones of RFC 5753 §7.1.4
  dhSinglePassStdDhSha1Kdf: '1.3.133.16.840.63.0.2',
  dhSinglePassStdDhSha384Kdf: '1.3.132.1.11.2',
  dhSinglePassStdDhSha512Kdf: '1.3.132.1.11.3',
  dhSinglePassCofactorDhSha1Kdf: '1.3.133.16.840.63.0.3',
  dhSinglePassCofactorDhSha256Kdf: '1.3.132.1.14.1',
  dhSinglePassCofactorDhSha384Kdf: '1.3.132.1.14.2',
  dhSinglePassCofactorDhSha512Kdf: '1.3.132.1.14.3',
  // RFC 3565 §2.3.2
  aes192Wrap: '2.16.840.1.101.3.4.1.25',
  // RFC 4055 §4.1: the OAEP label source
  pSpecified: '1.2.840.113549.1.1.9',
} as const;

export type ShaName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';

const NODE_HASH: Readonly<Record<ShaName, string>> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

const HASH_BY_OID: ReadonlyMap<string, ShaName> = new Map([
  [OID.sha1, 'SHA-1'],
  [OID.sha256, 'SHA-256'],
  [OID.sha384, 'SHA-384'],
  [OID.sha512, 'SHA-512'],
]);

const HASH_LENGTH: Readonly<Record<ShaName, number>> = { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

/**
 * Key agreement schemes we accept and the hash of their X9.63 KDF. The cofactor variants give
 * the same secret as the standard ones on P-256, P-384 and P-521, whose cofactor is 1
 * (SEC 1 §3.3.2), so they cost nothing extra. SHA-224 is missing: WebCrypto has no SHA-224.
 */
const KDF_HASH_BY_SCHEME: ReadonlyMap<string, ShaName> = new Map([
  [MORE_OID.dhSinglePassStdDhSha1Kdf, 'SHA-1'],
  [OID.dhSinglePassStdDhSha256Kdf, 'SHA-256'],
  [MORE_OID.dhSinglePassStdDhSha384Kdf, 'SHA-384'],
  [MORE_OID.dhSinglePassStdDhSha512Kdf, 'SHA-512'],
  [MORE_OID.dhSinglePassCofactorDhSha1Kdf, 'SHA-1'],
  [MORE_OID.dhSinglePassCofactorDhSha256Kdf, 'SHA-256'],
  [MORE_OID.dhSinglePassCofactorDhSha384Kdf, 'SHA-384'],
  [MORE_OID.dhSinglePassCofactorDhSha512Kdf, 'SHA-512'],
]);

/** AES key wrap algorithms (RFC 3565 §2.3.2) and their key-encryption key length in octets. */
const WRAP_KEY_LENGTH_BY_OID: ReadonlyMap<string, number> = new Map([
  [OID.aes128Wrap, 16],
  [MORE_OID.aes192Wrap, 24],
  [OID.aes256Wrap, 32],
]);

type NamedCurve = 'P-256' | 'P-384' | 'P-521';

const CURVE_BY_OID: ReadonlyMap<string, NamedCurve> = new Map([
  [OID.secp256r1, 'P-256'],
  [OID.secp384r1, 'P-384'],
  [OID.secp521r1, 'P-521'],
]);

/** Length in bits of the ECDH shared secret Z, the x coordinate in whole octets (SEC 1 §3.3.1). */
const SHARED_SECRET_BITS: Readonly<Record<NamedCurve, number>> = { 'P-256': 256, 'P-384': 384, 'P-521': 528 };

// ---------------------------------------------------------------------------------------------
// Shared ASN.1 readers (also used by the envelope modules)

/** A parsed AlgorithmIdentifier (RFC 5280 §4.1.1.2); `bytes` is its encoding as received. */
export interface AlgorithmIdentifier {
  readonly oid: string;
  readonly parameters: DerElement | undefined;
  readonly bytes: Uint8Array;
}

export function readAlgorithmIdentifier(element: DerElement | undefined, what: string): AlgorithmIdentifier {
  const [oid, parameters, extra] = readSequence(element, what);
  if (extra) throw new CmsError('malformed', `${what}: more than an algorithm and its parameters`);
  return { oid: readOid(oid, what), parameters, bytes: (element as DerElement).bytes };
}

/** A small non-negative INTEGER: a version number, a tag length. */
export function readSmallInteger(element: DerElement | undefined, what: string): number {
  const content = expectUniversal(element, Tag.integer, what).content;
  if (content.length === 0 || content.length > 4 || ((content[0] as number) & 0x80) !== 0) {
    throw new CmsError('malformed', `${what}: not a small non-negative INTEGER`);
  }
  let value = 0;
  for (const byte of content) value = value * 256 + byte;
  return value;
}

/** True when algorithm parameters are absent or NULL, the two spellings of "none" (RFC 4055 §2.1). */
function hasNoParameters(parameters: DerElement | undefined): boolean {
  return parameters === undefined || (isUniversal(parameters, Tag.null) && parameters.content.length === 0);
}

function hashOf(algorithm: AlgorithmIdentifier, what: string): ShaName {
  const hash = HASH_BY_OID.get(algorithm.oid);
  if (!hash) throw new CmsError('unsupported-algorithm', `${what}: unsupported hash ${algorithm.oid}`);
  if (!hasNoParameters(algorithm.parameters)) throw new CmsError('malformed', `${what}: hash with parameters`);
  return hash;
}

// ---------------------------------------------------------------------------------------------
// ANSI X9.63 KDF and ECC-CMS-SharedInfo (RFC 5753 §7.2)

/**
 * The ANSI X9.63 key derivation function (SEC 1 §3.6.1): the concatenation of
 * Hash(Z ‖ counter ‖ SharedInfo) for a 32-bit big-endian counter from 1, cut to `keyLength` octets.
 * For a 128-bit key and SHA-256 it is a single digest.
 */
export async function x963Kdf(hash: ShaName, sharedSecret: Uint8Array, sharedInfo: Uint8Array, keyLength: number): Promise<Uint8Array> {
  const hashLength = HASH_LENGTH[hash];
  const blocks = Math.ceil(keyLength / hashLength);
  const input = new Uint8Array(sharedSecret.length + 4 + sharedInfo.length);
  input.set(sharedSecret, 0);
  input.set(sharedInfo, sharedSecret.length + 4);
  const counter = new DataView(input.buffer, sharedSecret.length, 4);
  const output = new Uint8Array(blocks * hashLength);
  for (let block = 1; block <= blocks; block++) {
    counter.setUint32(0, block);
    // A synchronous hash: for these few dozen bytes WebCrypto's thread-pool round trip costs
    // more than the hash itself (bench/smime).
    output.set(createHash(NODE_HASH[hash]).update(input).digest(), (block - 1) * hashLength);
  }
  return output.subarray(0, keyLength);
}

/**
 * ECC-CMS-SharedInfo (RFC 5753 §7.2), the KDF's SharedInfo:
 * keyInfo = the key wrap AlgorithmIdentifier exactly as the message carries it,
 * entityUInfo [0] = the UKM, only when there is one (PKI.js#335: an empty one breaks OpenSSL interop),
 * suppPubInfo [2] = the key-encryption key length in bits, as a 32-bit big-endian number.
 */
export function eccCmsSharedInfo(keyInfo: Uint8Array, ukm: Uint8Array | undefined, keyLength: number): Uint8Array {
  const suppPubInfo = new Uint8Array(4);
  new DataView(suppPubInfo.buffer).setUint32(0, keyLength * 8);
  return derSequence(
    keyInfo,
    ...(ukm ? [derExplicit(0, derOctetString(ukm))] : []),
    derExplicit(2, derOctetString(suppPubInfo)),
  );
}

async function keyEncryptionKey(
  hash: ShaName,
  sharedSecret: ArrayBuffer,
  wrapAlgorithm: Uint8Array,
  keyLength: number,
  ukm: Uint8Array | undefined,
  usage: 'wrapKey' | 'unwrapKey',
): Promise<CryptoKey> {
  const sharedInfo = eccCmsSharedInfo(wrapAlgorithm, ukm, keyLength);
  const key = await x963Kdf(hash, new Uint8Array(sharedSecret), sharedInfo, keyLength);
  return subtle.importKey('raw', key, 'AES-KW', false, [usage]);
}

// ---------------------------------------------------------------------------------------------
// Sending: one RecipientInfo per recipient certificate

/** keyEncryptionAlgorithm of what we send: SHA-256 KDF scheme with AES-128 key wrap (RFC 8591 §4.2). */
const SEND_WRAP_ALGORITHM = derAlgorithm(OID.aes128Wrap);
const SEND_KEY_AGREEMENT_ALGORITHM = derAlgorithm(OID.dhSinglePassStdDhSha256Kdf, SEND_WRAP_ALGORITHM);
const SEND_WRAP_KEY_LENGTH = 16;

/** RSAES-OAEP with SHA-256 and MGF1-SHA-256, default (empty) label (RFC 4055 §4.1, §2.1). */
const SEND_KEY_TRANSPORT_ALGORITHM = derAlgorithm(
  OID.rsaesOaep,
  derSequence(derExplicit(0, derAlgorithm(OID.sha256)), derExplicit(1, derAlgorithm(OID.mgf1, derAlgorithm(OID.sha256)))),
);

/**
 * The RecipientInfo (RFC 5652 §6.2) that carries `contentKey` to the holder of `certificateDer`:
 * a KeyAgreeRecipientInfo for an EC key, a KeyTransRecipientInfo for an RSA key. `contentKey`
 * must be extractable, because WebCrypto's wrapKey exports it to wrap it.
 */
export async function recipientInfoFor(certificateDer: Uint8Array, contentKey: CryptoKey): Promise<Uint8Array> {
  const certificate = knownCertificate(certificateDer).core;
  if (certificate.publicKeyAlgorithm === OID.ecPublicKey) return keyAgreeRecipientInfo(certificate, curveOf(certificate));
  if (certificate.publicKeyAlgorithm === OID.rsaEncryption) return keyTransRecipientInfo(certificate);
  throw new CmsError('unsupported-algorithm', `cannot encrypt to a ${certificate.publicKeyAlgorithm} key`);

  async function keyAgreeRecipientInfo(recipient: CertificateCore, namedCurve: NamedCurve): Promise<Uint8Array> {
    const ecdh = { name: 'ECDH', namedCurve };
    const [recipientKey, ephemeral] = await Promise.all([
      importRecipientKey(recipient, ecdh, []),
      subtle.generateKey(ecdh, false, ['deriveBits']), // the public half stays exportable
    ]);
    const [ephemeralPoint, sharedSecret] = await Promise.all([
      subtle.exportKey('raw', ephemeral.publicKey),
      subtle.deriveBits({ name: 'ECDH', public: recipientKey }, ephemeral.privateKey, SHARED_SECRET_BITS[namedCurve]),
    ]);
    const kek = await keyEncryptionKey('SHA-256', sharedSecret, SEND_WRAP_ALGORITHM, SEND_WRAP_KEY_LENGTH, undefined, 'wrapKey');
    const encryptedKey = new Uint8Array(await subtle.wrapKey('raw', contentKey, kek, 'AES-KW'));
    // KeyAgreeRecipientInfo (RFC 5652 §6.2.2) is [1] IMPLICIT: the SEQUENCE tag becomes 0xA1.
    return derExplicit(
      1,
      derSmallInteger(3),
      // originator [0] EXPLICIT OriginatorIdentifierOrKey, the originatorKey [1] IMPLICIT choice,
      // algorithm id-ecPublicKey with absent parameters (RFC 5753 §3.1.1, OpenSSL does the same).
      derExplicit(0, derExplicit(1, derAlgorithm(OID.ecPublicKey), derTlv(0x03, Uint8Array.of(0), new Uint8Array(ephemeralPoint)))),
      SEND_KEY_AGREEMENT_ALGORITHM,
      derSequence(derSequence(issuerAndSerialNumber(recipient), derOctetString(encryptedKey))),
    );
  }

  async function keyTransRecipientInfo(recipient: CertificateCore): Promise<Uint8Array> {
    const publicKey = await importRecipientKey(recipient, { name: 'RSA-OAEP', hash: 'SHA-256' }, ['wrapKey']);
    const encryptedKey = new Uint8Array(await subtle.wrapKey('raw', contentKey, publicKey, { name: 'RSA-OAEP' }));
    // Version 0: the recipient is named by issuerAndSerialNumber (RFC 5652 §6.2.1).
    return derSequence(derSmallInteger(0), issuerAndSerialNumber(recipient), SEND_KEY_TRANSPORT_ALGORITHM, derOctetString(encryptedKey));
  }
}

function curveOf(certificate: CertificateCore): NamedCurve {
  const curve = CURVE_BY_OID.get(certificate.namedCurve ?? '');
  if (!curve) throw new CmsError('unsupported-algorithm', `EC curve ${certificate.namedCurve ?? '(none)'} is not supported`);
  return curve;
}

/**
 * The certificate's public key for WebCrypto. An EC key is imported from its bare point, which
 * costs about a third of parsing the SubjectPublicKeyInfo again (the curve is known already).
 */
async function importRecipientKey(
  certificate: CertificateCore,
  algorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams,
  usages: webcrypto.KeyUsage[],
): Promise<CryptoKey> {
  // A peer's key is imported once per certificate, not once per message: in Node 20 an EC
  // import runs on the main thread and cost ~50 µs per recipient per message (bench/smime).
  // Kept with the certificate's shared CertificateCore (`knownCertificate`), for as long as
  // that is among the recently seen certificates.
  const use = `${algorithm.name}|${usages.join(',')}`;
  let imported = recipientKeyCache.get(certificate);
  if (imported === undefined) {
    imported = new Map();
    recipientKeyCache.set(certificate, imported);
  }
  const cached = imported.get(use);
  if (cached !== undefined) return cached;
  try {
    const key =
      'namedCurve' in algorithm
        ? await subtle.importKey('raw', certificate.subjectPublicKey, algorithm, false, usages)
        : await subtle.importKey('spki', certificate.subjectPublicKeyInfo, algorithm, false, usages);
    imported.set(use, key);
    return key;
  } catch (cause) {
    throw new CmsError('malformed', `the certificate's public key cannot be used for ${algorithm.name}`, { cause });
  }
}

/** Imported recipient public keys (they are public: caching them exposes nothing), per certificate and use. */
const recipientKeyCache = new WeakMap<CertificateCore, Map<string, CryptoKey>>();

/** IssuerAndSerialNumber (RFC 5652 §10.2.4) with the certificate's own encodings. */
function issuerAndSerialNumber(certificate: CertificateCore): Uint8Array {
  return derSequence(certificate.issuer, derTlv(0x02, certificate.serialNumber));
}

// ---------------------------------------------------------------------------------------------
// Receiving: find our RecipientInfo, then recover the content key from it

/** The RecipientInfo addressed to us, reduced to what recovering the key needs. */
export type AddressedRecipientInfo =
  | {
      readonly kind: 'key-transport';
      readonly keyEncryptionAlgorithm: AlgorithmIdentifier;
      readonly encryptedKey: Uint8Array;
    }
  | {
      readonly kind: 'key-agreement';
      /** The originator [0] field: we accept only the originatorKey choice (ephemeral-static ECDH). */
      readonly originator: DerElement;
      readonly ukm: Uint8Array | undefined;
      readonly keyEncryptionAlgorithm: AlgorithmIdentifier;
      readonly encryptedKey: Uint8Array;
    };

/**
 * Picks the RecipientInfo (RFC 5652 §6.2) addressed to `certificate`, by issuerAndSerialNumber
 * or subjectKeyIdentifier, from the children of a RecipientInfos SET. Kinds we cannot use
 * (KEK, password, other) are skipped. None addressed to us: `CmsError('no-recipient')`, which a
 * UAS answers with 493 (RFC 3261 §23.2, RFC 8591 §7.3).
 */
export function selectRecipientInfo(recipientInfos: readonly DerElement[], certificate: CertificateCore): AddressedRecipientInfo {
  for (const recipientInfo of recipientInfos) {
    if (isUniversal(recipientInfo, Tag.sequence)) {
      // KeyTransRecipientInfo ::= SEQUENCE { version, rid, keyEncryptionAlgorithm, encryptedKey }
      const [version, rid, algorithm, encryptedKey, extra] = readSequence(recipientInfo, 'KeyTransRecipientInfo');
      readSmallInteger(version, 'KeyTransRecipientInfo version');
      if (extra) throw new CmsError('malformed', 'KeyTransRecipientInfo: unexpected fields');
      const keyEncryptionAlgorithm = readAlgorithmIdentifier(algorithm, 'KeyTransRecipientInfo keyEncryptionAlgorithm');
      const key = readOctetString(encryptedKey, 'KeyTransRecipientInfo encryptedKey');
      if (recipientIdentifierMatches(rid, certificate, 'KeyTransRecipientInfo rid')) {
        return { kind: 'key-transport', keyEncryptionAlgorithm, encryptedKey: key };
      }
    } else if (isContext(recipientInfo, 1)) {
      // KeyAgreeRecipientInfo ::= [1] IMPLICIT SEQUENCE { version, originator [0], ukm [1] OPTIONAL,
      //   keyEncryptionAlgorithm, recipientEncryptedKeys }
      const fields = readChildren(recipientInfo, 'KeyAgreeRecipientInfo');
      let index = 0;
      readSmallInteger(fields[index++], 'KeyAgreeRecipientInfo version');
      const originator = fields[index++];
      if (!originator || !isContext(originator, 0)) throw new CmsError('malformed', 'KeyAgreeRecipientInfo: no originator');
      let ukm: Uint8Array | undefined;
      const ukmField = fields[index];
      if (ukmField && isContext(ukmField, 1)) {
        ukm = readOctetString(onlyChild(ukmField, 'KeyAgreeRecipientInfo ukm'), 'KeyAgreeRecipientInfo ukm');
        index++;
      }
      const keyEncryptionAlgorithm = readAlgorithmIdentifier(fields[index++], 'KeyAgreeRecipientInfo keyEncryptionAlgorithm');
      const recipientEncryptedKeys = readSequence(fields[index++], 'RecipientEncryptedKeys');
      if (index !== fields.length) throw new CmsError('malformed', 'KeyAgreeRecipientInfo: unexpected fields');
      for (const recipientEncryptedKey of recipientEncryptedKeys) {
        const [rid, encryptedKey, extra] = readSequence(recipientEncryptedKey, 'RecipientEncryptedKey');
        if (extra) throw new CmsError('malformed', 'RecipientEncryptedKey: unexpected fields');
        const key = readOctetString(encryptedKey, 'RecipientEncryptedKey encryptedKey');
        if (keyAgreeRecipientIdentifierMatches(rid, certificate)) {
          return { kind: 'key-agreement', originator, ukm, keyEncryptionAlgorithm, encryptedKey: key };
        }
      }
    } else if (!(isContext(recipientInfo, 2) || isContext(recipientInfo, 3) || isContext(recipientInfo, 4))) {
      // [2] KEKRecipientInfo, [3] PasswordRecipientInfo, [4] OtherRecipientInfo: not ours to open.
      throw new CmsError('malformed', 'RecipientInfos: an element that is no RecipientInfo');
    }
  }
  throw new CmsError('no-recipient', 'the message is not encrypted to our certificate');
}

function onlyChild(element: DerElement, what: string): DerElement {
  const [child, extra] = readChildren(element, what);
  if (!child || extra) throw new CmsError('malformed', `${what}: expected exactly one element`);
  return child;
}

/** RecipientIdentifier ::= CHOICE { issuerAndSerialNumber, subjectKeyIdentifier [0] IMPLICIT } (RFC 5652 §6.2.1). */
function recipientIdentifierMatches(rid: DerElement | undefined, certificate: CertificateCore, what: string): boolean {
  if (rid && isContext(rid, 0)) return subjectKeyIdentifierMatches(implicitOctets(rid, what), certificate);
  return issuerAndSerialNumberMatches(rid, certificate, what);
}

/**
 * KeyAgreeRecipientIdentifier ::= CHOICE { issuerAndSerialNumber,
 *   rKeyId [0] IMPLICIT RecipientKeyIdentifier { subjectKeyIdentifier, date OPTIONAL, other OPTIONAL } }
 * (RFC 5652 §6.2.2).
 */
function keyAgreeRecipientIdentifierMatches(rid: DerElement | undefined, certificate: CertificateCore): boolean {
  if (rid && isContext(rid, 0)) {
    const [subjectKeyIdentifier] = readChildren(rid, 'RecipientKeyIdentifier');
    return subjectKeyIdentifierMatches(readOctetString(subjectKeyIdentifier, 'RecipientKeyIdentifier subjectKeyIdentifier'), certificate);
  }
  return issuerAndSerialNumberMatches(rid, certificate, 'RecipientEncryptedKey rid');
}

function issuerAndSerialNumberMatches(element: DerElement | undefined, certificate: CertificateCore, what: string): boolean {
  const [issuer, serialNumber, extra] = readSequence(element, `${what} issuerAndSerialNumber`);
  if (!issuer || extra) throw new CmsError('malformed', `${what}: bad issuerAndSerialNumber`);
  const serial = expectUniversal(serialNumber, Tag.integer, `${what} serialNumber`);
  return bytesEqual(serial.content, certificate.serialNumber) && bytesEqual(issuer.bytes, certificate.issuer);
}

/** A recipient named by key identifier is the one whose subjectKeyIdentifier extension holds it (RFC 5652 §6.2.1). */
function subjectKeyIdentifierMatches(keyIdentifier: Uint8Array, certificate: CertificateCore): boolean {
  return certificate.subjectKeyIdentifier !== undefined && bytesEqual(keyIdentifier, certificate.subjectKeyIdentifier);
}

/**
 * The octets of an `[n] IMPLICIT OCTET STRING`: the content of the primitive form, or the joined
 * OCTET STRING segments of the constructed form that BER allows (X.690 §8.7).
 */
export function implicitOctets(element: DerElement, what: string): Uint8Array {
  if (!element.constructed) return element.content;
  const segments = readChildren(element, what).map((segment) => readOctetString(segment, what));
  if (segments.length === 1) return segments[0] as Uint8Array;
  let length = 0;
  for (const segment of segments) length += segment.length;
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const segment of segments) {
    joined.set(segment, offset);
    offset += segment.length;
  }
  return joined;
}

/**
 * The whole receiving side: finds our RecipientInfo among the children of RecipientInfos and
 * recovers the content key from it. Our own certificate failing to parse is the caller's
 * problem (`invalid-argument`), not the message's.
 */
export async function recoverContentKey(
  recipientInfos: readonly DerElement[],
  recipient: EnvelopeRecipient,
  algorithm: ContentKeyAlgorithm,
): Promise<CryptoKey> {
  let certificate: CertificateCore;
  try {
    certificate = knownCertificate(recipient.certificateDer).core;
  } catch (cause) {
    throw new CmsError('invalid-argument', 'our certificate cannot be read', { cause });
  }
  const addressed = selectRecipientInfo(recipientInfos, certificate);
  return unwrapContentKey(addressed, certificate, recipient.privateKeyPkcs8, algorithm);
}

/**
 * Recovers the content-encryption key from the RecipientInfo addressed to us, as a WebCrypto
 * key for `algorithm`. Failures: `unsupported-algorithm` (a scheme we do not implement),
 * `key-mismatch` (our private key does not fit the certificate or the scheme),
 * `decryption-failed` (the key does not unwrap: wrong key or tampering), `malformed`.
 */
export async function unwrapContentKey(
  addressed: AddressedRecipientInfo,
  certificate: CertificateCore,
  privateKeyPkcs8: Uint8Array,
  algorithm: ContentKeyAlgorithm,
): Promise<CryptoKey> {
  return addressed.kind === 'key-agreement'
    ? unwrapAgreedKey(addressed, certificate, privateKeyPkcs8, algorithm)
    : decryptTransportedKey(addressed, privateKeyPkcs8, algorithm);
}

/** Ephemeral-static ECDH, X9.63 KDF, AES key unwrap (RFC 5753 §3.1.2). */
async function unwrapAgreedKey(
  addressed: Extract<AddressedRecipientInfo, { kind: 'key-agreement' }>,
  certificate: CertificateCore,
  privateKeyPkcs8: Uint8Array,
  algorithm: ContentKeyAlgorithm,
): Promise<CryptoKey> {
  const scheme = addressed.keyEncryptionAlgorithm;
  const kdfHash = KDF_HASH_BY_SCHEME.get(scheme.oid);
  if (!kdfHash) throw new CmsError('unsupported-algorithm', `key agreement scheme ${scheme.oid} is not supported`);
  // The scheme's parameter is the KeyWrapAlgorithm (RFC 5753 §7.1.5); it is also the KDF's keyInfo.
  const wrapAlgorithm = readAlgorithmIdentifier(scheme.parameters, 'KeyWrapAlgorithm');
  const wrapKeyLength = WRAP_KEY_LENGTH_BY_OID.get(wrapAlgorithm.oid);
  if (!wrapKeyLength) throw new CmsError('unsupported-algorithm', `key wrap ${wrapAlgorithm.oid} is not supported`);
  if (certificate.publicKeyAlgorithm !== OID.ecPublicKey) {
    throw new CmsError('key-mismatch', 'key agreement addressed to a certificate without an EC key');
  }
  const namedCurve = curveOf(certificate);
  const originatorPoint = readOriginatorPublicKey(addressed.originator, certificate);
  const ecdh = { name: 'ECDH', namedCurve };
  const [originatorKey, privateKey] = await Promise.all([
    subtle.importKey('raw', originatorPoint, ecdh, false, []).catch((cause: unknown) => {
      throw new CmsError('malformed', 'the originator public key is not a point on our curve', { cause });
    }),
    importPrivateKey(privateKeyPkcs8, ecdh, ['deriveBits']),
  ]);
  const sharedSecret = await subtle.deriveBits({ name: 'ECDH', public: originatorKey }, privateKey, SHARED_SECRET_BITS[namedCurve]);
  const kek = await keyEncryptionKey(kdfHash, sharedSecret, wrapAlgorithm.bytes, wrapKeyLength, addressed.ukm, 'unwrapKey');
  let contentKey: CryptoKey;
  try {
    contentKey = await subtle.unwrapKey('raw', addressed.encryptedKey, kek, 'AES-KW', { name: algorithm.name }, false, ['decrypt']);
  } catch (cause) {
    // RFC 3394 §2.2.3: the integrity check value does not match (wrong key, or the bits were changed).
    throw new CmsError('decryption-failed', 'the content key does not unwrap with our key', { cause });
  }
  if ((contentKey.algorithm as webcrypto.AesKeyAlgorithm).length !== algorithm.length) {
    throw new CmsError('decryption-failed', `the unwrapped content key is not ${algorithm.length} bits long`);
  }
  return contentKey;
}

/**
 * OriginatorIdentifierOrKey (RFC 5652 §6.2.2), of which ephemeral-static ECDH uses only
 * originatorKey [1] { algorithm id-ecPublicKey, publicKey BIT STRING } (RFC 5753 §3.1.1). The
 * curve parameters may be absent (OpenSSL), NULL, or name our curve.
 */
function readOriginatorPublicKey(originator: DerElement, certificate: CertificateCore): Uint8Array {
  const choice = onlyChild(originator, 'KeyAgreeRecipientInfo originator');
  if (!isContext(choice, 1)) {
    throw new CmsError('unsupported-algorithm', 'originator named by certificate: static-static ECDH is not supported');
  }
  const [algorithmElement, publicKey, extra] = readChildren(choice, 'OriginatorPublicKey');
  if (extra) throw new CmsError('malformed', 'OriginatorPublicKey: unexpected fields');
  const algorithm = readAlgorithmIdentifier(algorithmElement, 'OriginatorPublicKey algorithm');
  if (algorithm.oid !== OID.ecPublicKey) throw new CmsError('unsupported-algorithm', `originator key ${algorithm.oid} is not an EC key`);
  if (!hasNoParameters(algorithm.parameters) && readOid(algorithm.parameters, 'originator curve') !== certificate.namedCurve) {
    throw new CmsError('malformed', 'the originator key is on another curve than our certificate');
  }
  const bits = expectUniversal(publicKey, Tag.bitString, 'OriginatorPublicKey publicKey').content;
  if (bits.length < 2 || bits[0] !== 0) throw new CmsError('malformed', 'OriginatorPublicKey publicKey: bad BIT STRING');
  return bits.subarray(1);
}

/** RSAES-OAEP (RFC 3560 §3) or RSAES-PKCS1-v1_5 (RFC 3370 §4.2.1) key transport. */
async function decryptTransportedKey(
  addressed: Extract<AddressedRecipientInfo, { kind: 'key-transport' }>,
  privateKeyPkcs8: Uint8Array,
  algorithm: ContentKeyAlgorithm,
): Promise<CryptoKey> {
  const scheme = addressed.keyEncryptionAlgorithm;
  const keyLength = algorithm.length / 8;
  let contentKey: Uint8Array;
  if (scheme.oid === OID.rsaesOaep) {
    const { hash, label } = readOaepParameters(scheme.parameters);
    const privateKey = await importPrivateKey(privateKeyPkcs8, { name: 'RSA-OAEP', hash }, ['decrypt']);
    try {
      contentKey = new Uint8Array(await subtle.decrypt({ name: 'RSA-OAEP', ...(label ? { label } : {}) }, privateKey, addressed.encryptedKey));
    } catch (cause) {
      throw new CmsError('decryption-failed', 'the content key does not decrypt with our RSA key', { cause });
    }
    if (contentKey.length !== keyLength) throw new CmsError('decryption-failed', `the content key is not ${algorithm.length} bits long`);
  } else if (scheme.oid === OID.rsaEncryption) {
    if (!hasNoParameters(scheme.parameters)) throw new CmsError('malformed', 'rsaEncryption with parameters');
    contentKey = await decryptPkcs1v15KeyTransport(privateKeyPkcs8, addressed.encryptedKey, keyLength);
  } else {
    throw new CmsError('unsupported-algorithm', `key transport ${scheme.oid} is not supported`);
  }
  return subtle.importKey('raw', contentKey, { name: algorithm.name }, false, ['decrypt']);
}

/**
 * RSAES-OAEP-params (RFC 4055 §4.1): hashFunc [0], maskGenFunc [1], pSourceFunc [2], each
 * defaulting to SHA-1 / MGF1-SHA-1 / empty label. WebCrypto's RSA-OAEP always runs MGF1 with the
 * OAEP hash, so other combinations are unsupported (OpenSSL writes them equal unless told not to).
 */
function readOaepParameters(parameters: DerElement | undefined): { hash: ShaName; label: Uint8Array | undefined } {
  let hash: ShaName = 'SHA-1';
  let maskHash: ShaName = 'SHA-1';
  let label: Uint8Array | undefined;
  if (!hasNoParameters(parameters)) {
    for (const field of readSequence(parameters, 'RSAES-OAEP-params')) {
      const inner = readAlgorithmIdentifier(onlyChild(field, 'RSAES-OAEP-params field'), 'RSAES-OAEP-params field');
      if (isContext(field, 0)) {
        hash = hashOf(inner, 'OAEP hashFunc');
      } else if (isContext(field, 1)) {
        if (inner.oid !== OID.mgf1) throw new CmsError('unsupported-algorithm', `OAEP mask generation ${inner.oid} is not MGF1`);
        maskHash = hashOf(readAlgorithmIdentifier(inner.parameters, 'MGF1 hash'), 'MGF1 hash');
      } else if (isContext(field, 2)) {
        if (inner.oid !== MORE_OID.pSpecified) throw new CmsError('unsupported-algorithm', `OAEP label source ${inner.oid} is not supported`);
        label = readOctetString(inner.parameters, 'OAEP label');
      } else {
        throw new CmsError('malformed', 'RSAES-OAEP-params: unknown field');
      }
    }
  }
  if (maskHash !== hash) throw new CmsError('unsupported-algorithm', `RSA-OAEP with ${hash} but MGF1-${maskHash}`);
  return { hash, label: label && label.length > 0 ? label : undefined };
}

/**
 * RSAES-PKCS1-v1_5 key transport, which OpenSSL and most S/MIME clients send by default and
 * which WebCrypto does not offer. Node's privateDecrypt refuses RSA_PKCS1_PADDING too
 * (CVE-2023-46809: allowed only where OpenSSL does implicit rejection, which 3.0 does not), so
 * this runs the raw RSA operation (RSA_NO_PADDING) and checks the EME-PKCS1-v1_5 encoding
 * (RFC 8017 §7.2.2) itself. Against Bleichenbacher-style attacks it follows RFC 3218 §2.3.2:
 * any failure (bad padding, wrong key length, bad ciphertext) goes on with a random key, so
 * every failure surfaces the same way, as the content failing to decrypt, and the padding check
 * has no data-dependent early exit (best effort: JavaScript gives no constant-time guarantee).
 */
async function decryptPkcs1v15KeyTransport(privateKeyPkcs8: Uint8Array, encryptedKey: Uint8Array, keyLength: number): Promise<Uint8Array> {
  const privateKey = await importOnce(privateKeyPkcs8, 'node:crypto', async () => {
    try {
      const der = Buffer.from(privateKeyPkcs8.buffer, privateKeyPkcs8.byteOffset, privateKeyPkcs8.byteLength);
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch (cause) {
      throw new CmsError('key-mismatch', 'our private key is not a PKCS#8 key', { cause });
    }
  });
  if (privateKey.asymmetricKeyType !== 'rsa') throw new CmsError('key-mismatch', 'key transport to us, but our private key is not RSA');
  const randomKey = globalThis.crypto.getRandomValues(new Uint8Array(keyLength));
  let encoded: Uint8Array;
  try {
    encoded = privateDecrypt({ key: privateKey, padding: cryptoConstants.RSA_NO_PADDING }, encryptedKey);
  } catch {
    return randomKey; // wrong length or not below the modulus: public facts, no oracle
  }
  return pkcs1v15KeyOrFallback(encoded, randomKey);
}

/**
 * The message of an EME-PKCS1-v1_5 encoding `0x00 ‖ 0x02 ‖ PS ‖ 0x00 ‖ M` (RFC 8017 §7.2.2),
 * PS being at least 8 non-zero octets, when M is exactly as long as `fallback`; otherwise
 * `fallback`. Every octet is looked at whatever the outcome, and the choice is made by masking.
 */
export function pkcs1v15KeyOrFallback(encoded: Uint8Array, fallback: Uint8Array): Uint8Array {
  const keyLength = fallback.length;
  let valid = (encoded[0] === 0 ? 1 : 0) & (encoded[1] === 2 ? 1 : 0);
  let separator = 0; // index of the first zero octet after the block type
  for (let index = 2; index < encoded.length; index++) {
    const firstZero = (encoded[index] === 0 ? 1 : 0) & (separator === 0 ? 1 : 0);
    separator += firstZero * index;
  }
  valid &= separator >= 10 ? 1 : 0;
  valid &= encoded.length - separator - 1 === keyLength ? 1 : 0;
  const mask = -valid & 0xff;
  const message = encoded.subarray(encoded.length - keyLength);
  const key = new Uint8Array(keyLength);
  for (let index = 0; index < keyLength; index++) {
    key[index] = ((message[index] as number) & mask) | ((fallback[index] as number) & ~mask);
  }
  return key;
}

/**
 * Our private keys as imported, per PKCS#8 byte array and use. Importing PKCS#8 is the dearest
 * step of opening a message (0.5–1 ms through OpenSSL 3's decoders on Node 20, more than ECDH,
 * KDF, unwrap and AES-GCM together), and a UA hands in the same key bytes for every message.
 * The map is weak, so an entry lives only as long as the caller keeps the bytes, which are
 * taken to be immutable. A failed import is not remembered.
 */
const importedPrivateKeys = new WeakMap<Uint8Array, Map<string, Promise<CryptoKey | KeyObject>>>();

function importOnce<T extends CryptoKey | KeyObject>(pkcs8: Uint8Array, use: string, load: () => Promise<T>): Promise<T> {
  const uses = importedPrivateKeys.get(pkcs8) ?? new Map<string, Promise<CryptoKey | KeyObject>>();
  importedPrivateKeys.set(pkcs8, uses);
  const known = uses.get(use) as Promise<T> | undefined;
  if (known) return known;
  const loading = load();
  uses.set(use, loading);
  loading.catch(() => uses.delete(use));
  return loading;
}

function importPrivateKey(
  pkcs8: Uint8Array,
  algorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams,
  usages: webcrypto.KeyUsage[],
): Promise<CryptoKey> {
  const use = `${algorithm.name}:${'namedCurve' in algorithm ? algorithm.namedCurve : String(algorithm.hash)}:${usages.join(',')}`;
  return importOnce(pkcs8, use, async () => {
    try {
      return await subtle.importKey('pkcs8', pkcs8, algorithm, false, usages);
    } catch (cause) {
      throw new CmsError('key-mismatch', `our private key cannot be used for ${algorithm.name}`, { cause });
    }
  });
}
