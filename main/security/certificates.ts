/**
 * End-user certificates and their keys for S/MIME in SIP (RFC 3261 §23.1, RFC 8591 §4.4).
 *
 * sipnote users are identified by their SIP address of record. A new identity is a self-signed
 * X.509 v3 certificate (RFC 5280) whose subjectAltName holds the AoR as a
 * uniformResourceIdentifier (RFC 8591 §4.4.1), with an ECDSA P-256 key (the RFC 8591 §4.1
 * mandatory signature algorithm; the same key serves ECDH key agreement, §4.2) or an RSA-2048
 * key for peers stuck at the RFC 3853 floor. Self-signed certificates are pinned per contact,
 * never chained (RFC 3261 §23.2 asks the user instead), so `fingerprintSha256` is what users
 * compare out of band.
 *
 * Certificates are built with the DER writer of cms/der.ts and read with its bounded reader,
 * so the bytes we issue are exactly the bytes every peer hashes, and hostile certificates
 * (they arrive inside messages) end in a `CmsError('malformed')`. Keys are WebCrypto keys;
 * private keys travel as PKCS#8 (RFC 5208) bytes, which is what the keychain stores.
 */
import { createHash, type webcrypto } from 'node:crypto';
import {
  CmsError,
  DER_NULL,
  OID,
  Tag,
  TagClass,
  bytesEqual,
  copyBytes,
  derAlgorithm,
  derExplicit,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derTime,
  derTlv,
  derUnsignedInteger,
  expectUniversal,
  isContext,
  isUniversal,
  pemDecodeAll,
  pemEncode,
  readChildren,
  readDer,
  readOid,
  readOctetString,
  readSequence,
  readTime,
  type DerElement,
} from './cms/der.js';

const subtle = globalThis.crypto.subtle;

// ---------------------------------------------------------------------------------------------
// Reading certificates

/**
 * The fields of a certificate that CMS processing needs, read without copying. `serialNumber`
 * is the INTEGER's content octets as encoded and `issuer` / `subject` the Name TLVs as encoded:
 * CMS IssuerAndSerialNumber (RFC 5652 §10.2.4) matches on exactly these bytes.
 */
export interface CertificateCore {
  readonly der: Uint8Array;
  readonly serialNumber: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The SubjectPublicKeyInfo TLV (what WebCrypto imports as 'spki'). */
  readonly subjectPublicKeyInfo: Uint8Array;
  /** OID of the key: id-ecPublicKey, rsaEncryption, id-Ed25519, … */
  readonly publicKeyAlgorithm: string;
  /** For EC keys, the named curve OID (RFC 5480 §2.1.1). */
  readonly namedCurve?: string;
  /** The subjectPublicKey BIT STRING value, without the unused-bits octet. */
  readonly subjectPublicKey: Uint8Array;
  /** Extensions by OID (RFC 5280 §4.2); a certificate with a repeated extension is malformed. */
  readonly extensions: ReadonlyMap<string, { readonly critical: boolean; readonly value: Uint8Array }>;
  /** The subjectKeyIdentifier extension value (RFC 5280 §4.2.1.2), when present. */
  readonly subjectKeyIdentifier?: Uint8Array;
}

/** Reads a DER certificate (RFC 5280 §4.1). Throws `CmsError('malformed')` on anything else. */
export function readCertificate(der: Uint8Array): CertificateCore {
  const [tbsElement, signatureAlgorithm, signatureValue] = readSequence(readDer(der, 'certificate'), 'certificate');
  readSequence(signatureAlgorithm, 'certificate signatureAlgorithm');
  expectUniversal(signatureValue, Tag.bitString, 'certificate signatureValue');
  const tbs = readSequence(tbsElement, 'tbsCertificate');
  let index = 0;
  if (tbs[0] && isContext(tbs[0], 0)) index++; // [0] EXPLICIT Version DEFAULT v1
  const serial = expectUniversal(tbs[index++], Tag.integer, 'certificate serialNumber');
  readSequence(tbs[index++], 'certificate signature');
  const issuer = expectUniversal(tbs[index++], Tag.sequence, 'certificate issuer');
  const [notBefore, notAfter] = readSequence(tbs[index++], 'certificate validity');
  const subject = expectUniversal(tbs[index++], Tag.sequence, 'certificate subject');
  const spki = expectUniversal(tbs[index++], Tag.sequence, 'certificate subjectPublicKeyInfo');
  const [keyAlgorithm, publicKey] = readSequence(spki, 'subjectPublicKeyInfo');
  const [keyOid, keyParameters] = readSequence(keyAlgorithm, 'subjectPublicKeyInfo algorithm');
  const publicKeyAlgorithm = readOid(keyOid, 'subjectPublicKeyInfo algorithm');
  const namedCurve = publicKeyAlgorithm === OID.ecPublicKey ? readOid(keyParameters, 'EC named curve') : undefined;
  const extensions = new Map<string, { critical: boolean; value: Uint8Array }>();
  for (const element of tbs.slice(index)) {
    if (!isContext(element, 3)) continue; // issuerUniqueID [1] and subjectUniqueID [2] are not used
    for (const extension of readSequence(readChildren(element, 'extensions')[0], 'extensions')) {
      const parts = readSequence(extension, 'extension');
      const oid = readOid(parts[0], 'extension id');
      const hasCritical = parts[1] !== undefined && isUniversal(parts[1], Tag.boolean);
      const critical = hasCritical && parts[1]?.content[0] !== 0;
      const value = readOctetString(parts[hasCritical ? 2 : 1], 'extension value');
      if (extensions.has(oid)) throw new CmsError('malformed', `certificate repeats extension ${oid}`);
      extensions.set(oid, { critical, value });
    }
  }
  const skiExtension = extensions.get(OID.subjectKeyIdentifier);
  return {
    der,
    serialNumber: serial.content,
    issuer: issuer.bytes,
    subject: subject.bytes,
    notBefore: readTime(notBefore, 'certificate notBefore'),
    notAfter: readTime(notAfter, 'certificate notAfter'),
    subjectPublicKeyInfo: spki.bytes,
    publicKeyAlgorithm,
    ...(namedCurve !== undefined ? { namedCurve } : {}),
    subjectPublicKey: bitStringValue(publicKey, 'subjectPublicKey'),
    extensions,
    ...(skiExtension ? { subjectKeyIdentifier: readOctetString(readDer(skiExtension.value, 'subjectKeyIdentifier'), 'subjectKeyIdentifier') } : {}),
  };
}

function bitStringValue(element: DerElement | undefined, what: string): Uint8Array {
  const content = expectUniversal(element, Tag.bitString, what).content;
  if (content.length === 0 || (content[0] as number) > 7) throw new CmsError('malformed', `${what}: bad BIT STRING`);
  return content.subarray(1);
}

/** The SIP and SIPS URIs in the subjectAltName (RFC 8591 §4.4.1), as written. */
export function sipUrisOfCertificate(der: Uint8Array): string[] {
  return subjectAltNames(knownCertificate(der).core).uris.filter((uri) => /^sips?:/i.test(uri));
}

/**
 * SHA-256 over the whole DER certificate, as uppercase hex pairs joined by colons: the form
 * `openssl x509 -fingerprint -sha256` prints, for the out-of-band check of RFC 3261 §23.2.
 */
export function fingerprintSha256(der: Uint8Array): string {
  return colonHex(certificateSha256Hex(der));
}

/** Lowercase hex SHA-256 of `der` (any bytes; a certificate seen before costs no hashing). */
export function certificateSha256Hex(der: Uint8Array): string {
  const known = der.length <= KNOWN_CERTIFICATE_MAX_BYTES ? knownCertificates.get(bytesKey(der)) : undefined;
  return known?.sha256Hex ?? createHash('sha256').update(der).digest('hex');
}

function colonHex(hex: string): string {
  return hex.toUpperCase().match(/../g)?.join(':') ?? '';
}

export type KeyAlgorithmName = 'ECDSA-P256' | 'ECDSA-P384' | 'ECDSA-P521' | `RSA-${number}` | 'Ed25519' | 'X25519' | `unknown:${string}`;

/** What the user is shown about a certificate before trusting it (RFC 3261 §23.2). */
export interface CertificateInfo {
  /** The subject Name, attribute by attribute in encoded order, e.g. `CN=sip:alice@example.com`. */
  readonly subject: string;
  readonly issuer: string;
  /** Serial number as hex (the INTEGER's content octets). */
  readonly serialNumberHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly fingerprintSha256: string;
  readonly keyAlgorithm: KeyAlgorithmName;
  /** Issuer and subject are the same Name (a self-signed certificate, pinned rather than chained). */
  readonly selfIssued: boolean;
  /** All uniformResourceIdentifier names of the subjectAltName. */
  readonly uris: string[];
  /** The `sip:` / `sips:` ones among them (RFC 8591 §4.4.1). */
  readonly sipUris: string[];
  /** rfc822Name entries (the RFC 3261 §23.1 `user@domain` form of older certificates). */
  readonly emailAddresses: string[];
  readonly dnsNames: string[];
  /** keyUsage bit names (RFC 5280 §4.2.1.3), empty when the extension is absent. */
  readonly keyUsage: string[];
  /** extendedKeyUsage purposes: names for the common ones, OIDs otherwise. */
  readonly extendedKeyUsage: string[];
}

/** What the user is shown about a certificate (a fresh object: the caller may keep or change it). */
export function certificateInfo(der: Uint8Array): CertificateInfo {
  const info = knownCertificate(der).info;
  return {
    ...info,
    notBefore: new Date(info.notBefore.getTime()),
    notAfter: new Date(info.notAfter.getTime()),
    uris: [...info.uris],
    sipUris: [...info.sipUris],
    emailAddresses: [...info.emailAddresses],
    dnsNames: [...info.dnsNames],
    keyUsage: [...info.keyUsage],
    extendedKeyUsage: [...info.extendedKeyUsage],
  };
}

function readCertificateInfo(core: CertificateCore, fingerprint: string): CertificateInfo {
  const names = subjectAltNames(core);
  return {
    subject: nameToString(core.subject),
    issuer: nameToString(core.issuer),
    serialNumberHex: Buffer.from(core.serialNumber).toString('hex').toUpperCase(),
    notBefore: core.notBefore,
    notAfter: core.notAfter,
    fingerprintSha256: fingerprint,
    keyAlgorithm: keyAlgorithmName(core),
    selfIssued: bytesEqual(core.issuer, core.subject),
    uris: names.uris,
    sipUris: names.uris.filter((uri) => /^sips?:/i.test(uri)),
    emailAddresses: names.emails,
    dnsNames: names.dnsNames,
    keyUsage: keyUsageNames(core),
    extendedKeyUsage: extendedKeyUsageNames(core),
  };
}

function subjectAltNames(core: CertificateCore): { uris: string[]; emails: string[]; dnsNames: string[] } {
  const names = { uris: [] as string[], emails: [] as string[], dnsNames: [] as string[] };
  const extension = core.extensions.get(OID.subjectAltName);
  if (!extension) return names;
  // GeneralName (RFC 5280 §4.2.1.6) uses IMPLICIT tags: [1] rfc822Name, [2] dNSName, [6] URI.
  for (const name of readSequence(readDer(extension.value, 'subjectAltName'), 'subjectAltName')) {
    if (name.tagClass !== TagClass.context || name.constructed) continue;
    const text = Buffer.from(name.content).toString('latin1');
    if (name.tagNumber === 6) names.uris.push(text);
    else if (name.tagNumber === 1) names.emails.push(text);
    else if (name.tagNumber === 2) names.dnsNames.push(text);
  }
  return names;
}

const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
];

function keyUsageNames(core: CertificateCore): string[] {
  const extension = core.extensions.get(OID.keyUsage);
  if (!extension) return [];
  const bits = bitStringValue(readDer(extension.value, 'keyUsage'), 'keyUsage');
  return KEY_USAGE_BITS.filter((_, bit) => (((bits[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) === 1);
}

const PURPOSE_NAMES: Readonly<Record<string, string>> = {
  [OID.emailProtection]: 'emailProtection',
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

function extendedKeyUsageNames(core: CertificateCore): string[] {
  const extension = core.extensions.get(OID.extKeyUsage);
  if (!extension) return [];
  return readSequence(readDer(extension.value, 'extKeyUsage'), 'extKeyUsage').map((element) => {
    const oid = readOid(element, 'extKeyUsage purpose');
    return PURPOSE_NAMES[oid] ?? oid;
  });
}

const CURVE_NAMES: Readonly<Record<string, 'P-256' | 'P-384' | 'P-521'>> = {
  [OID.secp256r1]: 'P-256',
  [OID.secp384r1]: 'P-384',
  [OID.secp521r1]: 'P-521',
};

function keyAlgorithmName(core: CertificateCore): KeyAlgorithmName {
  switch (core.publicKeyAlgorithm) {
    case OID.ecPublicKey: {
      const curve = core.namedCurve !== undefined ? CURVE_NAMES[core.namedCurve] : undefined;
      return curve ? `ECDSA-${curve.replace('-', '')}` as KeyAlgorithmName : `unknown:${OID.ecPublicKey}/${core.namedCurve ?? ''}`;
    }
    case OID.rsaEncryption:
      return `RSA-${rsaModulusBits(core.subjectPublicKey)}`;
    case OID.ed25519:
      return 'Ed25519';
    case OID.x25519:
      return 'X25519';
    default:
      return `unknown:${core.publicKeyAlgorithm}`;
  }
}

/** Bit length of the modulus of an RSAPublicKey (RFC 8017 §A.1.1). */
export function rsaModulusBits(rsaPublicKey: Uint8Array): number {
  const [modulus] = readSequence(readDer(rsaPublicKey, 'RSAPublicKey'), 'RSAPublicKey');
  const bytes = expectUniversal(modulus, Tag.integer, 'RSA modulus').content;
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  if (start === bytes.length) return 0;
  return (bytes.length - start) * 8 - Math.clz32(bytes[start] as number) + 24;
}

const NAME_ATTRIBUTES: Readonly<Record<string, string>> = {
  [OID.commonName]: 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.5': 'serialNumber',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
};

/** A Name for display: `type=value` pairs in encoded order, joined by ", " (OpenSSL's oneline order). */
function nameToString(name: Uint8Array): string {
  const parts: string[] = [];
  for (const rdn of readSequence(readDer(name, 'Name'), 'Name')) {
    for (const attribute of readSequence(rdn, 'RelativeDistinguishedName', Tag.set)) {
      const [type, value] = readSequence(attribute, 'AttributeTypeAndValue');
      const oid = readOid(type, 'attribute type');
      parts.push(`${NAME_ATTRIBUTES[oid] ?? oid}=${value ? directoryString(value) : ''}`);
    }
  }
  return parts.join(', ');
}

/** DirectoryString and friends (RFC 5280 §4.1.2.4) as text; unknown types show as hex. */
function directoryString(value: DerElement): string {
  if (value.tagClass === TagClass.universal) {
    switch (value.tagNumber) {
      case Tag.utf8String:
        return new TextDecoder().decode(value.content);
      case Tag.printableString:
      case Tag.ia5String:
      case 20: // TeletexString, in practice Latin-1
      case 26: // VisibleString
        return Buffer.from(value.content).toString('latin1');
      case 30: // BMPString, UTF-16BE
        return Buffer.from(value.content).swap16().toString('utf16le');
    }
  }
  return `#${Buffer.from(value.bytes).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Certificates seen before

/**
 * The frozen, shared form of `CertificateInfo` that `KnownCertificate.info` hands out.
 */
export type SharedCertificateInfo = {
  readonly [K in keyof CertificateInfo]: CertificateInfo[K] extends string[] ? readonly string[] : CertificateInfo[K];
};

/**
 * A certificate read once and kept: its parsed fields, its SHA-256 (fingerprint and replay-cache
 * key, RFC 3261 §23.2, RFC 3428 §11.4) and, on first use, what `certificateInfo` shows. A
 * receiver sees the same few certificates in message after message (the pinned ones, its own),
 * and reading one costs more than the rest of a message's parsing together.
 *
 * Everything here is shared between callers: `der` and the byte views of `core` point into a
 * private copy, and must not be modified.
 */
export class KnownCertificate {
  readonly core: CertificateCore;
  /** Lowercase hex SHA-256 of the DER. */
  readonly sha256Hex: string;
  #fingerprint: string | undefined;
  #info: SharedCertificateInfo | undefined;

  /** `der` must be a private copy that nobody else holds. Throws CmsError('malformed'). */
  constructor(readonly der: Uint8Array) {
    this.core = readCertificate(der);
    this.sha256Hex = createHash('sha256').update(der).digest('hex');
  }

  /** `fingerprintSha256(der)`. */
  get fingerprintSha256(): string {
    return (this.#fingerprint ??= colonHex(this.sha256Hex));
  }

  /** `certificateInfo(der)`, frozen. Throws CmsError('malformed') for an extension it cannot read. */
  get info(): SharedCertificateInfo {
    if (this.#info === undefined) {
      const info = readCertificateInfo(this.core, this.fingerprintSha256);
      for (const list of [info.uris, info.sipUris, info.emailAddresses, info.dnsNames, info.keyUsage, info.extendedKeyUsage]) Object.freeze(list);
      this.#info = Object.freeze(info);
    }
    return this.#info;
  }
}

/**
 * The certificates read most recently, keyed by their whole DER (as a Latin-1 string: one
 * character per octet, so two keys are equal exactly when the bytes are). The key is the
 * content itself, never a digest or an identity, so a different certificate cannot find
 * another's entry. Oldest use dropped first; certificates larger than any real end-user
 * certificate are read every time, so that hostile messages cannot make the cache large.
 */
const knownCertificates = new Map<string, KnownCertificate>();
const KNOWN_CERTIFICATE_CACHE_SIZE = 256;
const KNOWN_CERTIFICATE_MAX_BYTES = 16 * 1024;

function bytesKey(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
}

/**
 * The last answer for each array a caller passed: callers hand in the same arrays again and
 * again (our own certificate, the peer's). Used only while the array still holds exactly the
 * bytes of the answer, so an array refilled with another certificate finds nothing here.
 */
const knownByArray = new WeakMap<Uint8Array, KnownCertificate>();

/**
 * The certificate in `der`, read once per distinct certificate (see `KnownCertificate`).
 * Throws `CmsError('malformed')` like `readCertificate`; failures are not remembered.
 */
export function knownCertificate(der: Uint8Array): KnownCertificate {
  const same = knownByArray.get(der);
  if (same !== undefined && bytesEqual(same.der, der)) return same;
  const certificate = lookUpCertificate(der);
  knownByArray.set(der, certificate);
  return certificate;
}

function lookUpCertificate(der: Uint8Array): KnownCertificate {
  if (der.length > KNOWN_CERTIFICATE_MAX_BYTES) return new KnownCertificate(copyBytes(der));
  const key = bytesKey(der);
  const known = knownCertificates.get(key);
  if (known !== undefined) {
    knownCertificates.delete(key); // most recently used last
    knownCertificates.set(key, known);
    return known;
  }
  const certificate = new KnownCertificate(copyBytes(der));
  knownCertificates.set(key, certificate);
  if (knownCertificates.size > KNOWN_CERTIFICATE_CACHE_SIZE) {
    const oldest = knownCertificates.keys().next().value;
    if (oldest !== undefined) knownCertificates.delete(oldest);
  }
  return certificate;
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures

export type SigningAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'ECDSA-P521' | 'RSA' | 'Ed25519';

/**
 * A private key imported once for repeated signing. Importing PKCS#8 costs several times more
 * than an ECDSA signature (about 0.4 ms vs 0.06 ms on Node 20), so hot paths keep one of these.
 */
export interface SigningKey {
  readonly algorithm: SigningAlgorithm;
  readonly cryptoKey: webcrypto.CryptoKey;
  /**
   * The digest used with this key: SHA-256 for P-256 and RSA (RFC 8591 §4.1), SHA-512 for
   * Ed25519 (RFC 8419 §3), otherwise per RFC 5753 §7.1.
   */
  readonly digest: 'SHA-256' | 'SHA-384' | 'SHA-512';
  /** DER AlgorithmIdentifier of the signature, for X.509 and CMS SignerInfo.signatureAlgorithm. */
  readonly signatureAlgorithm: Uint8Array;
  /** The PKCS#8 bytes it came from (a private copy). */
  readonly pkcs8: Uint8Array;
}

const EC_DIGEST = { 'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512' } as const;
const ECDSA_SIGNATURE_OID = { 'SHA-256': OID.ecdsaWithSha256, 'SHA-384': OID.ecdsaWithSha384, 'SHA-512': OID.ecdsaWithSha512 } as const;

/** Imports a PKCS#8 private key (RFC 5208 / RFC 5958) for signing. */
export async function importSigningKey(pkcs8: Uint8Array): Promise<SigningKey> {
  const copy = copyBytes(pkcs8);
  const [, algorithm] = readSequence(readDer(copy, 'PKCS#8 private key'), 'PKCS#8 private key');
  const [oidElement, parameters] = readSequence(algorithm, 'PKCS#8 algorithm');
  const oid = readOid(oidElement, 'PKCS#8 algorithm');
  try {
    if (oid === OID.ecPublicKey) {
      const curve = CURVE_NAMES[readOid(parameters, 'PKCS#8 EC curve')];
      if (!curve) throw new CmsError('unsupported-algorithm', 'EC private key on an unsupported curve');
      const digest = EC_DIGEST[curve];
      const cryptoKey = await subtle.importKey('pkcs8', copy, { name: 'ECDSA', namedCurve: curve }, false, ['sign']);
      return {
        algorithm: `ECDSA-${curve.replace('-', '')}` as SigningAlgorithm,
        cryptoKey,
        digest,
        // RFC 5758 §3.2: ecdsa-with-SHA* AlgorithmIdentifiers have absent parameters.
        signatureAlgorithm: derAlgorithm(ECDSA_SIGNATURE_OID[digest]),
        pkcs8: copy,
      };
    }
    if (oid === OID.rsaEncryption) {
      const cryptoKey = await subtle.importKey('pkcs8', copy, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
      const bits = (cryptoKey.algorithm as webcrypto.RsaHashedKeyAlgorithm).modulusLength;
      if (bits < 2048) throw new CmsError('unsupported-algorithm', `RSA key of ${bits} bits is too weak (2048 at least)`);
      // RFC 4055 §5 / RFC 5754 §3.2: sha256WithRSAEncryption with NULL parameters.
      return { algorithm: 'RSA', cryptoKey, digest: 'SHA-256', signatureAlgorithm: derAlgorithm(OID.sha256WithRsaEncryption, DER_NULL), pkcs8: copy };
    }
    if (oid === OID.ed25519) {
      // RFC 8419 §2.3 / RFC 8410 §3: id-Ed25519, parameters absent; PureEdDSA hashes internally.
      const cryptoKey = await subtle.importKey('pkcs8', copy, { name: 'Ed25519' }, false, ['sign']);
      return { algorithm: 'Ed25519', cryptoKey, digest: 'SHA-512', signatureAlgorithm: derAlgorithm(OID.ed25519), pkcs8: copy };
    }
  } catch (error) {
    if (error instanceof CmsError) throw error;
    throw new CmsError('malformed', `PKCS#8 private key rejected by WebCrypto: ${(error as Error).message}`, { cause: error });
  }
  throw new CmsError('unsupported-algorithm', `private key algorithm ${oid} is not supported for signing`);
}

/**
 * Signs `data` and returns the signature as X.509 and CMS carry it: for ECDSA the DER
 * `ECDSA-Sig-Value` SEQUENCE of r and s (RFC 5753 §7.2, RFC 5480 §2.2), which WebCrypto's raw
 * r‖s is converted to; for RSA the PKCS#1 v1.5 signature octets; for Ed25519 the 64 octets
 * of RFC 8032 (RFC 8419 §2.3).
 */
export async function signWithKey(key: SigningKey, data: Uint8Array): Promise<Uint8Array> {
  if (key.algorithm === 'RSA') {
    return new Uint8Array(await subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, key.cryptoKey, data));
  }
  if (key.algorithm === 'Ed25519') return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, key.cryptoKey, data));
  return ecdsaRawToDer(new Uint8Array(await subtle.sign({ name: 'ECDSA', hash: key.digest }, key.cryptoKey, data)));
}

/** WebCrypto's fixed-size r‖s to DER `SEQUENCE { r INTEGER, s INTEGER }`. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return derSequence(derUnsignedInteger(raw.subarray(0, half)), derUnsignedInteger(raw.subarray(half)));
}

/**
 * DER `ECDSA-Sig-Value` to WebCrypto's r‖s with each half `size` octets. Strict: two positive
 * INTEGERs that fit, nothing else; returns undefined otherwise (a bad signature, not a crash).
 */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array | undefined {
  try {
    const parts = readSequence(readDer(der, 'ECDSA signature'), 'ECDSA signature');
    if (parts.length !== 2) return undefined;
    const raw = new Uint8Array(size * 2);
    for (const [i, part] of parts.entries()) {
      let value = expectUniversal(part, Tag.integer, 'ECDSA signature').content;
      if (value.length === 0 || ((value[0] as number) & 0x80) !== 0) return undefined; // empty or negative
      while (value.length > 1 && value[0] === 0) value = value.subarray(1);
      if (value.length > size) return undefined;
      raw.set(value, size * (i + 1) - value.length);
    }
    return raw;
  } catch {
    return undefined;
  }
}

/** Confirms that `key` belongs to `certificate` by signing a random challenge and verifying it. */
async function assertKeyMatchesCertificate(key: SigningKey, certificate: CertificateCore): Promise<void> {
  const challenge = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const signature = await signWithKey(key, challenge);
  let ok = false;
  try {
    if (key.algorithm === 'RSA') {
      const publicKey = await subtle.importKey('spki', certificate.subjectPublicKeyInfo, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
      ok = await subtle.verify({ name: 'RSASSA-PKCS1-v1_5' }, publicKey, signature, challenge);
    } else if (key.algorithm === 'Ed25519') {
      const publicKey = await subtle.importKey('spki', certificate.subjectPublicKeyInfo, { name: 'Ed25519' }, false, ['verify']);
      ok = await subtle.verify({ name: 'Ed25519' }, publicKey, signature, challenge);
    } else {
      const curve = (key.cryptoKey.algorithm as webcrypto.EcKeyAlgorithm).namedCurve;
      const publicKey = await subtle.importKey('spki', certificate.subjectPublicKeyInfo, { name: 'ECDSA', namedCurve: curve }, false, ['verify']);
      const raw = ecdsaDerToRaw(signature, curve === 'P-521' ? 66 : curve === 'P-384' ? 48 : 32);
      ok = raw !== undefined && (await subtle.verify({ name: 'ECDSA', hash: key.digest }, publicKey, raw, challenge));
    }
  } catch {
    ok = false; // the certificate's key is of another type or curve than the private key
  }
  if (!ok) throw new CmsError('key-mismatch', 'the private key does not belong to the certificate');
}

// ---------------------------------------------------------------------------------------------
// Creating, importing and exporting identities

export type IdentityAlgorithm = 'ECDSA-P256' | 'RSA-2048';

/** A certificate with its private key: what one account signs and decrypts with. */
export interface Identity {
  readonly certificateDer: Uint8Array;
  /** PKCS#8 PrivateKeyInfo, DER. Goes to the OS keychain, never to disk or logs. */
  readonly privateKeyPkcs8: Uint8Array;
  readonly info: CertificateInfo;
}

export interface CreateIdentityOptions {
  /** The SIP address of record, e.g. `sip:alice@example.com`. */
  readonly aor: string;
  readonly algorithm?: IdentityAlgorithm;
  /** Validity from `now` (default 730 days). */
  readonly validDays?: number;
  /** The clock (tests inject it). */
  readonly now?: Date;
}

/** Start of validity this long before `now`, so that peers with a slow clock accept it at once. */
const BACKDATE_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Creates a key pair and a self-signed certificate for `aor`:
 * - subject and issuer `CN=<aor>`;
 * - subjectAltName uniformResourceIdentifier `<aor>` (RFC 8591 §4.4.1);
 * - keyUsage (critical) digitalSignature plus keyAgreement (EC, for ECDH, RFC 5753 §7.1.1) or
 *   keyEncipherment (RSA key transport), RFC 8550 §4.4.2;
 * - extendedKeyUsage emailProtection (what OpenSSL's default `-purpose smimesign` looks for);
 * - basicConstraints cA:FALSE (critical) and a subjectKeyIdentifier (RFC 5280 §4.2.1.2 method 1),
 *   which lets senders name us by key id (RFC 5652 §10.2.4);
 * - a random positive 127-bit serial number (RFC 5280 §4.1.2.2: at most 20 octets).
 */
export async function createIdentity(options: CreateIdentityOptions): Promise<Identity> {
  const { aor, algorithm = 'ECDSA-P256', validDays = 730 } = options;
  // A URI in an IA5String: ASCII without spaces or controls (RFC 3986 §2).
  if (!/^sips?:[\x21-\x7e]+$/i.test(aor) || aor.length > 512) {
    throw new CmsError('invalid-argument', `not a SIP address of record: ${JSON.stringify(aor)}`);
  }
  if (!(validDays > 0 && validDays <= 36500)) throw new CmsError('invalid-argument', `validDays out of range: ${validDays}`);
  const now = options.now ?? new Date();
  const keyPair = (await subtle.generateKey(
    algorithm === 'RSA-2048'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['sign', 'verify'],
  )) as webcrypto.CryptoKeyPair;
  const privateKeyPkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', keyPair.privateKey));
  const spki = new Uint8Array(await subtle.exportKey('spki', keyPair.publicKey));
  const signingKey = await importSigningKey(privateKeyPkcs8);

  const serial = globalThis.crypto.getRandomValues(new Uint8Array(16));
  serial[0] = ((serial[0] as number) & 0x7f) | 0x40; // positive, and no leading zero octet to trim
  const name = derSequence(derSetOf([derSequence(derOid(OID.commonName), derTlv(0x0c, new TextEncoder().encode(aor)))]));
  const subjectPublicKey = bitStringValue(readSequence(readDer(spki, 'spki'), 'spki')[1], 'spki');
  const keyUsageBits = algorithm === 'RSA-2048' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature', 'keyAgreement'];
  const extensions = [
    extension(OID.basicConstraints, true, derSequence()),
    extension(OID.keyUsage, true, namedBitString(keyUsageBits.map((bit) => KEY_USAGE_BITS.indexOf(bit)))),
    extension(OID.extKeyUsage, false, derSequence(derOid(OID.emailProtection))),
    extension(OID.subjectAltName, false, derSequence(derTlv(0x86, new TextEncoder().encode(aor)))),
    extension(OID.subjectKeyIdentifier, false, derOctetString(new Uint8Array(createHash('sha1').update(subjectPublicKey).digest()))),
  ];
  const tbs = derSequence(
    derExplicit(0, derUnsignedInteger(Uint8Array.of(2))), // v3
    derUnsignedInteger(serial),
    signingKey.signatureAlgorithm,
    name,
    derSequence(derTime(new Date(now.getTime() - BACKDATE_MS)), derTime(new Date(now.getTime() + validDays * DAY_MS))),
    name,
    spki,
    derExplicit(3, derSequence(...extensions)),
  );
  const signature = await signWithKey(signingKey, tbs);
  const certificateDer = derSequence(tbs, signingKey.signatureAlgorithm, derTlv(0x03, Uint8Array.of(0), signature));
  return { certificateDer, privateKeyPkcs8, info: certificateInfo(certificateDer) };
}

function extension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? derSequence(derOid(oid), Uint8Array.of(0x01, 0x01, 0xff), derOctetString(value)) : derSequence(derOid(oid), derOctetString(value));
}

/** A named-bit BIT STRING in DER: trailing zero bits dropped (X.690 §11.2.2). */
function namedBitString(bits: readonly number[]): Uint8Array {
  const highest = Math.max(...bits);
  const octets = new Uint8Array((highest >> 3) + 1);
  for (const bit of bits) octets[bit >> 3] = (octets[bit >> 3] as number) | (0x80 >> (bit & 7));
  const unused = 7 - (highest & 7);
  return derTlv(0x03, Uint8Array.of(unused), octets);
}

/** A certificate from PEM text (the first CERTIFICATE block) or DER bytes, checked to parse. */
export function importCertificate(input: string | Uint8Array): Uint8Array {
  let der: Uint8Array;
  if (typeof input === 'string') {
    const block = pemDecodeAll(input).find((candidate) => candidate.label === 'CERTIFICATE');
    if (!block) throw new CmsError('malformed', 'no CERTIFICATE block in the PEM text');
    der = block.der;
  } else {
    der = copyBytes(input);
  }
  readCertificate(der);
  return der;
}

/**
 * A private key from PEM (`PRIVATE KEY`, or the OpenSSL legacy `EC PRIVATE KEY` / `RSA PRIVATE
 * KEY`) or PKCS#8 DER, returned as PKCS#8 DER. Encrypted keys are refused: decrypt them with
 * `openssl pkcs8` first.
 */
export function importPrivateKey(input: string | Uint8Array): Uint8Array {
  if (typeof input !== 'string') return copyBytes(input);
  const block = pemDecodeAll(input).find((candidate) => candidate.label.endsWith('PRIVATE KEY'));
  if (!block) throw new CmsError('malformed', 'no PRIVATE KEY block in the PEM text');
  switch (block.label) {
    case 'PRIVATE KEY':
      return block.der;
    case 'RSA PRIVATE KEY': // PKCS#1 RSAPrivateKey (RFC 8017 §A.1.2) inside PrivateKeyInfo
      return derSequence(derUnsignedInteger(Uint8Array.of(0)), derAlgorithm(OID.rsaEncryption, DER_NULL), derOctetString(block.der));
    case 'EC PRIVATE KEY': {
      // SEC 1 ECPrivateKey (RFC 5915 §3) names its curve in [0] parameters; PKCS#8 wants it
      // in the AlgorithmIdentifier (RFC 5915 §2).
      const fields = readSequence(readDer(block.der, 'EC PRIVATE KEY'), 'EC PRIVATE KEY');
      const parameters = fields.find((field) => isContext(field, 0));
      if (!parameters) throw new CmsError('malformed', 'EC PRIVATE KEY does not name its curve');
      const curve = readChildren(parameters, 'EC PRIVATE KEY parameters')[0];
      if (!curve) throw new CmsError('malformed', 'EC PRIVATE KEY does not name its curve');
      return derSequence(derUnsignedInteger(Uint8Array.of(0)), derAlgorithm(OID.ecPublicKey, curve.bytes), derOctetString(block.der));
    }
    default:
      throw new CmsError('unsupported-algorithm', `${block.label} is not supported (decrypt it to an unencrypted PKCS#8 key first)`);
  }
}

/**
 * An identity from a certificate and its private key (PEM or DER each). Checks that the key
 * parses, is of a kind we sign with, and belongs to the certificate. PKCS#12 is not read here.
 */
export async function importIdentity(certificate: string | Uint8Array, privateKey: string | Uint8Array): Promise<Identity> {
  const certificateDer = importCertificate(certificate);
  const privateKeyPkcs8 = importPrivateKey(privateKey);
  await assertKeyMatchesCertificate(await importSigningKey(privateKeyPkcs8), readCertificate(certificateDer));
  return { certificateDer, privateKeyPkcs8, info: certificateInfo(certificateDer) };
}

export function exportCertificatePem(certificateDer: Uint8Array): string {
  return pemEncode('CERTIFICATE', certificateDer);
}

export function exportPrivateKeyPem(privateKeyPkcs8: Uint8Array): string {
  return pemEncode('PRIVATE KEY', privateKeyPkcs8);
}
