/**
 * Opening a PKCS#12 / PFX file (RFC 7292): the `.p12` / `.pfx` that Linphone, Jitsi, browsers
 * and corporate CAs hand out, holding a private key, its certificate and often the CA chain.
 *
 *   PFX ::= SEQUENCE { version 3, authSafe ContentInfo, macData MacData OPTIONAL }   §4
 *   authSafe: id-data whose OCTET STRING is an AuthenticatedSafe,
 *             SEQUENCE OF ContentInfo, each one id-data (plain) or id-encryptedData
 *             (password-encrypted, RFC 5652 §8), holding a SafeContents
 *   SafeContents ::= SEQUENCE OF SafeBag { bagId, [0] bagValue, bagAttributes }     §4.2
 *
 * What is read:
 * - password integrity mode (§5.1): the HMAC of the AuthenticatedSafe under a key from the
 *   PKCS#12 KDF (appendix B), with SHA-1 (OpenSSL 1.x, `-legacy`), SHA-256 (OpenSSL 3's
 *   default) or SHA-224/384/512; or no MAC at all (`-nomac`);
 * - password privacy mode: PBES2 with PBKDF2 and AES-CBC (RFC 8018; OpenSSL 3's default), and
 *   the PKCS#12 PBEs of appendix C with 3-key or 2-key triple DES (`-legacy` keys) and 40- or
 *   128-bit RC2 (`-legacy` certificates; rc2.ts);
 * - keyBag and pkcs8ShroudedKeyBag (§4.2.1, §4.2.2), certBag with an X.509 certificate
 *   (§4.2.3), nested safeContentsBag (§4.2.6); CRL and secret bags are skipped.
 *
 * What is refused, with a `Pkcs12Error('unsupported')` that says how to re-export the file:
 * public-key integrity and privacy modes (a signed or enveloped authSafe, rare), the RC4 and
 * PKCS#5 v1 (DES, RC2 with MD5) PBEs, PBMAC1 (RFC 9579), and PBES2 with scrypt or a cipher
 * other than AES-CBC or DES-EDE3-CBC.
 *
 * The result is the one private key whose public key matches a certificate in the file, that
 * certificate, and the other certificates as they came (the CA chain): sipnote pins certificates
 * instead of chaining them (RFC 3261 §23.2), so callers keep only the end-entity one.
 *
 * Why not pkijs' PFX class: it reads neither the appendix C PBEs (every `-legacy` file) nor
 * RC2, runs its PKCS#12 KDF in pure JavaScript with no bound on the iteration count (a crafted
 * file can keep it busy for hours), and fails with untyped errors. Here every field is read with
 * the bounded reader of cms/der.ts, hashing and ciphers are node:crypto, and anything wrong ends
 * in a `Pkcs12Error` with a stable `code`.
 */
import { createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, pbkdf2, timingSafeEqual, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { readCertificate } from './certificates.js';
import {
  CmsError,
  OID,
  Tag,
  bytesEqual,
  concatBytes,
  copyBytes,
  expectUniversal,
  isContext,
  isUniversal,
  readChildren,
  readDer,
  readOctetString,
  readOid,
  readSequence,
  type DerElement,
} from './cms/der.js';
import { rc2CbcDecrypt } from './rc2.js';

const pbkdf2Async = promisify(pbkdf2);

export type Pkcs12ErrorCode =
  /** The passphrase does not verify the MAC or does not decrypt the contents. */
  | 'bad-passphrase'
  /** Not a PKCS#12 file, or a damaged or truncated one. */
  | 'malformed'
  /** A protection mode or algorithm this reader does not implement (the message names it). */
  | 'unsupported'
  /** The file holds no private key. */
  | 'no-key'
  /** The file holds a key, but no certificate whose public key is that key's. */
  | 'no-certificate'
  /** More than one key with a certificate: which identity is meant is not clear. */
  | 'several-keys';

/** The one error type `openPkcs12` throws. */
export class Pkcs12Error extends Error {
  override readonly name = 'Pkcs12Error';
  constructor(
    readonly code: Pkcs12ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What `openPkcs12` found. */
export interface Pkcs12Contents {
  /** The private key as PKCS#8 PrivateKeyInfo DER (RFC 5208), decrypted. */
  readonly privateKeyPkcs8: Uint8Array;
  /** The certificate (DER) whose public key is the private key's. */
  readonly certificateDer: Uint8Array;
  /** The other certificates of the file in file order, usually the CA chain (DER, unchecked beyond parsing). */
  readonly otherCertificates: readonly Uint8Array[];
  /** The friendlyName attribute of the key's bag (RFC 7292 §4.2; PKCS#9), when there is one. */
  readonly friendlyName?: string;
  /** How the file was protected, for display: e.g. `MAC SHA-256`, `PBES2 aes-256-cbc`. */
  readonly protection: { readonly integrity: string; readonly encryption: readonly string[] };
}

/** Limits on what a file may ask of us; the defaults suit every real exporter. */
export interface Pkcs12Limits {
  /**
   * Iterations of one PKCS#12 KDF (hashing in a loop, about 2 µs each) or PBKDF2 run; the
   * whole file may ask for four times this much in all (several encrypted parts, two keys each).
   */
  readonly maxIterations?: number;
}

/** Files larger than this are refused before parsing: a key, a certificate and a chain take a few KB. */
export const MAX_PKCS12_BYTES = 1 << 20;
/** OpenSSL writes 2048, Windows 2000, Java 10000 to 100000; a million is still a second or two. */
const DEFAULT_MAX_ITERATIONS = 1_000_000;
/** Bags per file, and nesting of safeContentsBags: far above any real file. */
const MAX_BAGS = 1000;
const MAX_NESTING = 4;

const P12_OID = {
  // RFC 7292 appendix D
  keyBag: '1.2.840.113549.1.12.10.1.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  safeContentsBag: '1.2.840.113549.1.12.10.1.6',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  // RFC 5652
  encryptedData: '1.2.840.113549.1.7.6',
  // RFC 8018, RFC 9579
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbmac1: '1.2.840.113549.1.5.14',
  scrypt: '1.3.6.1.4.1.11591.4.11',
} as const;

/** MAC digests (RFC 7292 §5.1 allows any; RFC 9579 §6 lists these) with the KDF block size v of appendix B.2. */
const MAC_DIGESTS: Readonly<Record<string, { name: string; hash: string; blockSize: number }>> = {
  [OID.sha1]: { name: 'SHA-1', hash: 'sha1', blockSize: 64 },
  '2.16.840.1.101.3.4.2.4': { name: 'SHA-224', hash: 'sha224', blockSize: 64 },
  [OID.sha256]: { name: 'SHA-256', hash: 'sha256', blockSize: 64 },
  [OID.sha384]: { name: 'SHA-384', hash: 'sha384', blockSize: 128 },
  [OID.sha512]: { name: 'SHA-512', hash: 'sha512', blockSize: 128 },
};

/** The PBEs of RFC 7292 appendix C (all with SHA-1 in the PKCS#12 KDF). */
const PKCS12_PBES: Readonly<Record<string, { name: string; cipher?: string; rc2Bits?: number; keyLength: number }>> = {
  '1.2.840.113549.1.12.1.1': { name: 'pbeWithSHAAnd128BitRC4', keyLength: 16 },
  '1.2.840.113549.1.12.1.2': { name: 'pbeWithSHAAnd40BitRC4', keyLength: 5 },
  '1.2.840.113549.1.12.1.3': { name: 'pbeWithSHAAnd3-KeyTripleDES-CBC', cipher: 'des-ede3-cbc', keyLength: 24 },
  '1.2.840.113549.1.12.1.4': { name: 'pbeWithSHAAnd2-KeyTripleDES-CBC', cipher: 'des-ede-cbc', keyLength: 16 },
  '1.2.840.113549.1.12.1.5': { name: 'pbeWithSHAAnd128BitRC2-CBC', rc2Bits: 128, keyLength: 16 },
  '1.2.840.113549.1.12.1.6': { name: 'pbeWithSHAAnd40BitRC2-CBC', rc2Bits: 40, keyLength: 5 },
};

/** PBKDF2 PRFs (RFC 8018 appendix B.1; hmacWithSHA1 is the DEFAULT). */
const PBKDF2_PRFS: Readonly<Record<string, string>> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.8': 'sha224',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};

/** PBES2 ciphers we read (RFC 8018 appendix B.2; RFC 3565 §4.1). */
const PBES2_CIPHERS: Readonly<Record<string, { name: string; keyLength: number; ivLength: number }>> = {
  [OID.aes128Cbc]: { name: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24, ivLength: 16 },
  [OID.aes256Cbc]: { name: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
};

/** Re-exporting with OpenSSL 3 gives a file we read: the advice every 'unsupported' error ends with. */
const REEXPORT_ADVICE =
  're-export it with OpenSSL 3 defaults: openssl pkcs12 -in OLD.p12 -legacy -nodes | openssl pkcs12 -export -out NEW.p12 (then import NEW.p12)';

/**
 * Whether `bytes` start like a PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID pkcs7-data or
 * pkcs7-signedData … } }. Only the first few dozen octets are looked at, so a truncated file
 * is still recognised (and then reported as truncated by `openPkcs12`).
 */
export function looksLikePkcs12(bytes: Uint8Array): boolean {
  let offset = 0;
  const header = (tag: number): boolean => {
    if (bytes[offset++] !== tag) return false;
    const first = bytes[offset++];
    if (first === undefined) return false;
    if (first === 0x80) return true; // BER indefinite length (some Windows exports)
    if (first > 0x80) offset += first & 0x7f;
    return offset <= bytes.length;
  };
  if (!header(0x30)) return false;
  if (bytes[offset] !== 0x02 || bytes[offset + 1] !== 0x01 || bytes[offset + 2] !== 0x03) return false;
  offset += 3;
  if (!header(0x30)) return false;
  // OBJECT IDENTIFIER 1.2.840.113549.1.7.1 (data) or .2 (signedData)
  const oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07];
  for (const octet of oid) if (bytes[offset++] !== octet) return false;
  return bytes[offset] === 0x01 || bytes[offset] === 0x02;
}

/**
 * Opens a PFX (DER or BER) with `passphrase` and returns its identity: see the module comment.
 * An empty passphrase also tries the "no password" form OpenSSL accepts. Throws only
 * `Pkcs12Error`.
 */
export async function openPkcs12(pfx: Uint8Array, passphrase: string, limits: Pkcs12Limits = {}): Promise<Pkcs12Contents> {
  const reader = new PfxReader(passphrase, limits.maxIterations ?? DEFAULT_MAX_ITERATIONS);
  try {
    return await reader.open(pfx);
  } catch (error) {
    if (error instanceof Pkcs12Error) throw error;
    if (error instanceof CmsError) throw new Pkcs12Error('malformed', `not a readable PKCS#12 file: ${error.message}`, { cause: error });
    // Anything else is a bug here, but callers were promised one error type.
    throw new Pkcs12Error('malformed', `not a readable PKCS#12 file: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------

interface KeyBag {
  readonly pkcs8: Uint8Array;
  readonly localKeyId?: Uint8Array;
  readonly friendlyName?: string;
}

interface CertificateBag {
  readonly der: Uint8Array;
  readonly localKeyId?: Uint8Array;
}

/** Reading one file: the passphrase forms that worked, and what was found so far. */
class PfxReader {
  /**
   * The passphrase as the PKCS#12 KDF takes it (appendix B.1): a BMPString, UTF-16BE with two
   * zero octets at the end. Candidates, in order: that; for an empty passphrase also no octets
   * at all (OpenSSL's NULL password); for a non-ASCII one also each UTF-8 octet as one
   * character (what OpenSSL before 1.1.0 wrote). The MAC check picks the one that fits.
   */
  private bmpCandidates: Uint8Array[];
  /** The passphrase as PBKDF2 takes it in PBES2 (OpenSSL: the UTF-8 octets as typed). */
  private readonly utf8: Uint8Array;
  /** Set once a MAC verified: later decryption failures then mean a second passphrase. */
  private macVerified = false;
  private bagCount = 0;
  /** Key-derivation iterations the file may still ask for (see Pkcs12Limits). */
  private workLeft: number;
  private readonly keys: KeyBag[] = [];
  private readonly certificates: CertificateBag[] = [];
  /** pkcs8ShroudedKeyBags seen while reading, decrypted in `identity()` (decryption is async). */
  private readonly pendingShrouded: Array<{ value: DerElement; tags: { localKeyId?: Uint8Array; friendlyName?: string } }> = [];
  private integrity = 'none';
  private readonly encryption = new Set<string>();

  constructor(
    passphrase: string,
    private readonly maxIterations: number,
  ) {
    this.workLeft = 4 * maxIterations;
    this.utf8 = new Uint8Array(Buffer.from(passphrase, 'utf8'));
    const bmp = (units: Uint8Array): Uint8Array => concatBytes([units, Uint8Array.of(0, 0)]);
    this.bmpCandidates = [bmp(new Uint8Array(Buffer.from(passphrase, 'utf16le').swap16()))];
    if (passphrase.length === 0) this.bmpCandidates.push(new Uint8Array(0));
    if (/[^\x00-\x7f]/.test(passphrase)) this.bmpCandidates.push(bmp(new Uint8Array(Buffer.from(Buffer.from(passphrase, 'utf8').toString('latin1'), 'utf16le').swap16())));
  }

  async open(pfx: Uint8Array): Promise<Pkcs12Contents> {
    if (pfx.length > MAX_PKCS12_BYTES) throw new Pkcs12Error('malformed', `${pfx.length} octets is too large for a PKCS#12 file (at most ${MAX_PKCS12_BYTES})`);
    if (!looksLikePkcs12(pfx)) throw new Pkcs12Error('malformed', 'not a PKCS#12 (.p12/.pfx) file');
    const [version, authSafe, macData, ...rest] = readSequence(readDer(pfx, 'PFX'), 'PFX');
    const versionValue = expectUniversal(version, Tag.integer, 'PFX version').content;
    if (versionValue.length !== 1 || versionValue[0] !== 3) throw new Pkcs12Error('unsupported', 'PKCS#12 version other than 3');
    if (rest.length > 0) throw new Pkcs12Error('malformed', 'PFX: unexpected fields after macData');
    const [contentType, content] = readSequence(authSafe, 'PFX authSafe');
    const type = readOid(contentType, 'authSafe contentType');
    if (type !== OID.data) {
      throw new Pkcs12Error('unsupported', `the file uses public-key integrity mode (authSafe ${type === OID.signedData ? 'signedData' : type}), not a passphrase; ${REEXPORT_ADVICE}`);
    }
    const authenticatedSafe = readOctetString(explicitContent(content, 'authSafe content'), 'authSafe content');
    if (macData) this.checkMac(macData, authenticatedSafe);
    const contentInfos = readSequence(readDer(authenticatedSafe, 'AuthenticatedSafe'), 'AuthenticatedSafe');
    for (const contentInfo of contentInfos) await this.readContentInfo(contentInfo);
    return this.identity();
  }

  /** Password integrity mode, RFC 7292 §5.1 and appendix B.4: HMAC with a key from the KDF (ID 3). */
  private checkMac(macData: DerElement, authenticatedSafe: Uint8Array): void {
    const [digestInfo, saltElement, iterationsElement, ...rest] = readSequence(macData, 'MacData');
    if (rest.length > 0) throw new Pkcs12Error('malformed', 'MacData: unexpected fields');
    const [algorithm, digestElement] = readSequence(digestInfo, 'MacData mac');
    const [oidElement] = readSequence(algorithm, 'MacData digestAlgorithm');
    const oid = readOid(oidElement, 'MacData digestAlgorithm');
    if (oid === P12_OID.pbmac1) throw new Pkcs12Error('unsupported', `the file's MAC is PBMAC1 (RFC 9579, OpenSSL 3.4 -pbmac1_pbkdf2), which sipnote does not read yet; ${REEXPORT_ADVICE}`);
    const digest = MAC_DIGESTS[oid];
    if (!digest) throw new Pkcs12Error('unsupported', `the file's MAC uses digest ${oid}; ${REEXPORT_ADVICE}`);
    const expected = readOctetString(digestElement, 'MacData digest');
    const salt = readOctetString(saltElement, 'MacData macSalt');
    const iterations = iterationsElement === undefined ? 1 : this.iterations(iterationsElement, 'MacData iterations'); // DEFAULT 1
    this.integrity = `MAC ${digest.name}`;
    for (const candidate of this.bmpCandidates) {
      this.charge(iterations);
      const key = pkcs12Kdf(digest.hash, digest.blockSize, candidate, salt, 3, iterations, createHash(digest.hash).digest().length);
      const mac = createHmac(digest.hash, key).update(authenticatedSafe).digest();
      if (mac.length === expected.length && timingSafeEqual(mac, expected)) {
        this.bmpCandidates = [candidate];
        this.macVerified = true;
        return;
      }
    }
    throw new Pkcs12Error('bad-passphrase', 'wrong passphrase for the PKCS#12 file (its integrity check fails; or the file was altered)');
  }

  /** One ContentInfo of the AuthenticatedSafe (RFC 7292 §4.1): plain or password-encrypted SafeContents. */
  private async readContentInfo(contentInfo: DerElement): Promise<void> {
    const [contentType, content] = readSequence(contentInfo, 'AuthenticatedSafe ContentInfo');
    const type = readOid(contentType, 'ContentInfo contentType');
    if (type === OID.data) {
      this.readSafeContents(readOctetString(explicitContent(content, 'ContentInfo content'), 'ContentInfo data'), 0, false);
      return;
    }
    if (type === P12_OID.encryptedData) {
      // EncryptedData (RFC 5652 §8): version, EncryptedContentInfo { contentType, algorithm, [0] IMPLICIT OCTET STRING }
      const [, encryptedContentInfo] = readSequence(explicitContent(content, 'ContentInfo content'), 'EncryptedData');
      const [innerType, algorithm, encrypted] = readSequence(encryptedContentInfo, 'EncryptedContentInfo');
      if (readOid(innerType, 'EncryptedContentInfo contentType') !== OID.data) throw new Pkcs12Error('malformed', 'EncryptedData does not hold data');
      if (!encrypted || !isContext(encrypted, 0)) throw new Pkcs12Error('malformed', 'EncryptedData without encryptedContent');
      const ciphertext = encrypted.constructed ? concatBytes(readChildren(encrypted, 'encryptedContent').map((part) => readOctetString(part, 'encryptedContent'))) : encrypted.content;
      const plain = await this.decrypt(algorithm, ciphertext, 'certificates');
      this.readSafeContents(plain, 0, true);
      return;
    }
    if (type === OID.envelopedData) throw new Pkcs12Error('unsupported', `part of the file is encrypted to a public key (public-key privacy mode), not with a passphrase; ${REEXPORT_ADVICE}`);
    throw new Pkcs12Error('unsupported', `the file holds content of type ${type}`);
  }

  /** SafeContents (§4.2): the bags, with nested safeContentsBags followed to MAX_NESTING. */
  private readSafeContents(der: Uint8Array, depth: number, decrypted: boolean): void {
    let bags: DerElement[];
    try {
      bags = readSequence(readDer(der, 'SafeContents'), 'SafeContents');
    } catch (error) {
      // Decrypted garbage that happened to end in valid padding (about 1 in 256 wrong passphrases).
      if (decrypted && error instanceof CmsError) throw this.undecryptable('certificates', error);
      throw error;
    }
    for (const bag of bags) {
      if (++this.bagCount > MAX_BAGS) throw new Pkcs12Error('malformed', `more than ${MAX_BAGS} bags in the file`);
      const [idElement, valueElement, attributes] = readSequence(bag, 'SafeBag');
      const bagId = readOid(idElement, 'SafeBag bagId');
      const value = explicitContent(valueElement, 'SafeBag bagValue');
      const { localKeyId, friendlyName } = attributes ? readAttributes(attributes) : {};
      const tags = { ...(localKeyId ? { localKeyId } : {}), ...(friendlyName !== undefined ? { friendlyName } : {}) };
      switch (bagId) {
        case P12_OID.keyBag:
          this.keys.push({ pkcs8: checkedPrivateKeyInfo(copyBytes(value.bytes)), ...tags });
          break;
        case P12_OID.pkcs8ShroudedKeyBag:
          this.pendingShrouded.push({ value, tags });
          break;
        case P12_OID.certBag: {
          const [certType, certValue] = readSequence(value, 'CertBag');
          if (readOid(certType, 'CertBag certId') !== P12_OID.x509Certificate) break; // SDSI certificates: not for us
          const der = copyBytes(readOctetString(explicitContent(certValue, 'CertBag certValue'), 'CertBag certValue'));
          readCertificate(der); // CmsError('malformed') when it is no certificate
          this.certificates.push({ der, ...(localKeyId ? { localKeyId } : {}) });
          break;
        }
        case P12_OID.safeContentsBag:
          if (depth >= MAX_NESTING) throw new Pkcs12Error('malformed', 'safeContentsBags nested too deeply');
          this.readSafeContents(value.bytes, depth + 1, false);
          break;
        default:
          break; // crlBag, secretBag, unknown bags (§4.2.4, §4.2.5): nothing we need
      }
    }
  }

  /** Decrypts the shrouded keys, then pairs keys and certificates by public key. */
  private async identity(): Promise<Pkcs12Contents> {
    for (const { value, tags } of this.pendingShrouded) {
      // EncryptedPrivateKeyInfo (RFC 5208 §6): encryptionAlgorithm, encryptedData OCTET STRING
      const [algorithm, data] = readSequence(value, 'EncryptedPrivateKeyInfo');
      const plain = await this.decrypt(algorithm, readOctetString(data, 'EncryptedPrivateKeyInfo encryptedData'), 'private key');
      let pkcs8: Uint8Array;
      try {
        pkcs8 = checkedPrivateKeyInfo(copyBytes(plain));
      } catch (error) {
        if (error instanceof CmsError) throw this.undecryptable('private key', error);
        throw error;
      }
      this.keys.push({ pkcs8, ...tags });
    }
    if (this.keys.length === 0) throw new Pkcs12Error('no-key', `the PKCS#12 file holds no private key (${this.certificates.length} certificate(s) only)`);
    const publicKeys = this.certificates.map((certificate) => certificatePublicKey(certificate.der));
    const pairs: Array<{ key: KeyBag; certificate: CertificateBag }> = [];
    for (const key of this.keys) {
      const publicKey = publicKeyOfPrivateKey(key.pkcs8);
      const matching = this.certificates.filter((_, index) => publicKeys[index] !== undefined && bytesEqual(publicKeys[index] as Uint8Array, publicKey));
      // Several certificates for one key (a renewal): the one the file ties to it by localKeyId.
      const certificate = matching.find((candidate) => key.localKeyId && candidate.localKeyId && bytesEqual(key.localKeyId, candidate.localKeyId)) ?? matching[0];
      if (certificate) pairs.push({ key, certificate });
    }
    const [pair, ...more] = pairs;
    if (!pair) throw new Pkcs12Error('no-certificate', `the PKCS#12 file holds a private key but no certificate for it (${this.certificates.length} other certificate(s))`);
    if (more.length > 0) throw new Pkcs12Error('several-keys', `the PKCS#12 file holds ${pairs.length} keys with certificates; export the one identity you want into a file of its own`);
    return {
      privateKeyPkcs8: pair.key.pkcs8,
      certificateDer: pair.certificate.der,
      otherCertificates: this.certificates.filter((certificate) => certificate !== pair.certificate).map((certificate) => certificate.der),
      ...(pair.key.friendlyName !== undefined ? { friendlyName: pair.key.friendlyName } : {}),
      protection: { integrity: this.integrity, encryption: [...this.encryption] },
    };
  }

  /** Decrypts with a password-based scheme: PBES2 (RFC 8018 §6.2) or a PKCS#12 PBE (appendix C). */
  private async decrypt(algorithm: DerElement | undefined, ciphertext: Uint8Array, what: EncryptedPart): Promise<Uint8Array> {
    const [oidElement, parameters] = readSequence(algorithm, 'encryption algorithm');
    const oid = readOid(oidElement, 'encryption algorithm');
    if (oid === P12_OID.pbes2) return this.decryptPbes2(parameters, ciphertext, what);
    const pbe = PKCS12_PBES[oid];
    if (!pbe) throw new Pkcs12Error('unsupported', `${encryptedWith(what)} ${oid.startsWith('1.2.840.113549.1.5.') ? `the PKCS#5 v1 scheme ${oid}` : oid}; ${REEXPORT_ADVICE}`);
    if (!pbe.cipher && !pbe.rc2Bits) throw new Pkcs12Error('unsupported', `${encryptedWith(what)} ${pbe.name}, which sipnote does not read; ${REEXPORT_ADVICE}`);
    this.encryption.add(pbe.name);
    // pkcs-12PbeParams (appendix C): salt, iterations
    const [saltElement, iterationsElement] = readSequence(parameters, `${pbe.name} parameters`);
    const salt = readOctetString(saltElement, `${pbe.name} salt`);
    const iterations = this.iterations(iterationsElement, `${pbe.name} iterations`);
    for (const password of this.bmpCandidates) {
      this.charge(iterations * (Math.ceil(pbe.keyLength / 20) + 1)); // the key in 20-octet SHA-1 blocks, and the IV
      const key = pkcs12Kdf('sha1', 64, password, salt, 1, iterations, pbe.keyLength);
      const iv = pkcs12Kdf('sha1', 64, password, salt, 2, iterations, 8);
      const plain = pbe.rc2Bits ? rc2CbcDecrypt(key, pbe.rc2Bits, iv, ciphertext) : cbcDecrypt(pbe.cipher as string, key, iv, ciphertext);
      // Without a MAC an empty passphrase has two forms and nothing said which: the one whose
      // plaintext is DER (padding alone passes for one wrong key in 256) is it.
      if (plain && isOneSequence(plain)) return plain;
    }
    throw this.undecryptable(what);
  }

  private async decryptPbes2(parameters: DerElement | undefined, ciphertext: Uint8Array, what: EncryptedPart): Promise<Uint8Array> {
    const [kdf, scheme] = readSequence(parameters, 'PBES2-params');
    const [kdfOid, kdfParameters] = readSequence(kdf, 'PBES2 keyDerivationFunc');
    const kdfName = readOid(kdfOid, 'PBES2 keyDerivationFunc');
    if (kdfName !== P12_OID.pbkdf2) throw new Pkcs12Error('unsupported', `${encryptedWith(what)} PBES2 with the key derivation ${kdfName === P12_OID.scrypt ? 'scrypt' : kdfName}, not PBKDF2; ${REEXPORT_ADVICE}`);
    // PBKDF2-params (RFC 8018 appendix A.2): salt, iterationCount, keyLength OPTIONAL, prf DEFAULT hmacWithSHA1
    const fields = readSequence(kdfParameters, 'PBKDF2-params');
    const salt = readOctetString(fields[0], 'PBKDF2 salt');
    const iterations = this.iterations(fields[1], 'PBKDF2 iterationCount');
    let next = 2;
    let keyLength: number | undefined;
    if (fields[next] && isUniversal(fields[next] as DerElement, Tag.integer)) keyLength = smallInteger(fields[next++], 'PBKDF2 keyLength');
    let prf = 'sha1';
    if (fields[next]) {
      const prfOid = readOid(readSequence(fields[next], 'PBKDF2 prf')[0], 'PBKDF2 prf');
      const known = PBKDF2_PRFS[prfOid];
      if (!known) throw new Pkcs12Error('unsupported', `${encryptedWith(what)} PBES2 with the PBKDF2 PRF ${prfOid}; ${REEXPORT_ADVICE}`);
      prf = known;
    }
    const [cipherOid, ivElement] = readSequence(scheme, 'PBES2 encryptionScheme');
    const cipherName = readOid(cipherOid, 'PBES2 encryptionScheme');
    const cipher = PBES2_CIPHERS[cipherName];
    if (!cipher) throw new Pkcs12Error('unsupported', `${encryptedWith(what)} PBES2 with the cipher ${cipherName} (AES-CBC and DES-EDE3-CBC are read); ${REEXPORT_ADVICE}`);
    const iv = readOctetString(ivElement, 'PBES2 IV');
    if (iv.length !== cipher.ivLength) throw new Pkcs12Error('malformed', `${cipher.name} IV is not ${cipher.ivLength} octets`);
    if (keyLength !== undefined && keyLength !== cipher.keyLength) throw new Pkcs12Error('malformed', 'PBKDF2 keyLength does not fit the cipher');
    this.encryption.add(`PBES2 ${cipher.name}`);
    this.charge(iterations * Math.ceil(cipher.keyLength / createHash(prf).digest().length)); // one PBKDF2 run per PRF output block
    const key = await pbkdf2Async(this.utf8, salt, iterations, cipher.keyLength, prf);
    const plain = cbcDecrypt(cipher.name, key, iv, ciphertext);
    if (!plain) throw this.undecryptable(what);
    return plain;
  }

  /** The error for contents that do not decrypt (or decrypt to nonsense) under the passphrase. */
  private undecryptable(what: EncryptedPart, cause?: unknown): Pkcs12Error {
    const message = this.macVerified
      ? `the passphrase verifies the PKCS#12 file but does not decrypt its ${what}: the file uses a second passphrase (openssl pkcs12 -twopass), or is damaged`
      : `wrong passphrase for the PKCS#12 file (its ${what} cannot be decrypted with it, or the file was altered)`;
    return new Pkcs12Error('bad-passphrase', message, cause === undefined ? undefined : { cause });
  }

  /** Counts key-derivation work against the budget, so that many encrypted parts cannot add up to minutes. */
  private charge(iterations: number): void {
    this.workLeft -= iterations;
    if (this.workLeft < 0) throw new Pkcs12Error('unsupported', `the file asks for more than ${4 * this.maxIterations} key-derivation iterations in all`);
  }

  private iterations(element: DerElement | undefined, what: string): number {
    const value = smallInteger(element, what);
    if (value < 1) throw new Pkcs12Error('malformed', `${what}: ${value}`);
    if (value > this.maxIterations) throw new Pkcs12Error('unsupported', `${what}: ${value} is more than the ${this.maxIterations} sipnote accepts`);
    return value;
  }
}

/** The part of a file that is being decrypted, for messages. */
type EncryptedPart = 'private key' | 'certificates';

function encryptedWith(what: EncryptedPart): string {
  return what === 'private key' ? "the file's private key is encrypted with" : "the file's certificates are encrypted with";
}

/**
 * The PKCS#12 key derivation function, RFC 7292 appendix B.2: `n` octets of key material of
 * purpose `id` (1 key, 2 IV, 3 MAC key) from a BMPString password, a salt and an iteration
 * count, with a hash of output size u and block size `v`.
 */
export function pkcs12Kdf(hash: string, v: number, password: Uint8Array, salt: Uint8Array, id: 1 | 2 | 3, iterations: number, n: number): Uint8Array {
  const diversifier = new Uint8Array(v).fill(id); // D
  const repeatToBlocks = (input: Uint8Array): Uint8Array => {
    const out = new Uint8Array(v * Math.ceil(input.length / v));
    for (let i = 0; i < out.length; i++) out[i] = input[i % input.length] as number;
    return out;
  };
  const input = concatBytes([repeatToBlocks(salt), repeatToBlocks(password)]); // I = S || P
  const out = new Uint8Array(n);
  for (let produced = 0; ; ) {
    let a: Uint8Array = createHash(hash).update(diversifier).update(input).digest();
    for (let i = 1; i < iterations; i++) a = createHash(hash).update(a).digest();
    out.set(a.subarray(0, Math.min(a.length, n - produced)), produced);
    produced += a.length;
    if (produced >= n) return out;
    // I_j = (I_j + B + 1) mod 2^(8v) for each v-octet block of I, B being A repeated to v octets.
    const b = new Uint8Array(v);
    for (let i = 0; i < v; i++) b[i] = a[i % a.length] as number;
    for (let block = 0; block < input.length; block += v) {
      let carry = 1;
      for (let i = v - 1; i >= 0; i--) {
        const sum = (input[block + i] as number) + (b[i] as number) + carry;
        input[block + i] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
}

/** Whether decrypted bytes are one DER SEQUENCE, as SafeContents and PrivateKeyInfo are. */
function isOneSequence(bytes: Uint8Array): boolean {
  try {
    return isUniversal(readDer(bytes, 'decrypted content'), Tag.sequence);
  } catch {
    return false;
  }
}

/** CBC decryption with node:crypto; undefined when the padding is wrong. */
function cbcDecrypt(cipher: string, key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
  try {
    const decipher = createDecipheriv(cipher, key, iv);
    return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
  } catch {
    return undefined;
  }
}

/** The content of a `[0] EXPLICIT` element (ContentInfo content, SafeBag bagValue, CertBag certValue). */
function explicitContent(element: DerElement | undefined, what: string): DerElement {
  if (!element || !isContext(element, 0) || !element.constructed) throw new CmsError('malformed', `${what}: missing or of the wrong type`);
  const [inner, ...rest] = readChildren(element, what);
  if (!inner || rest.length > 0) throw new CmsError('malformed', `${what}: not exactly one element`);
  return inner;
}

/** localKeyId and friendlyName from bagAttributes (RFC 7292 §4.2; PKCS#9 RFC 2985 §5.5.1). */
function readAttributes(attributes: DerElement): { localKeyId?: Uint8Array; friendlyName?: string } {
  const found: { localKeyId?: Uint8Array; friendlyName?: string } = {};
  for (const attribute of readSequence(attributes, 'bagAttributes', Tag.set)) {
    const [typeElement, values] = readSequence(attribute, 'PKCS12Attribute');
    const type = readOid(typeElement, 'attribute type');
    const [first] = readSequence(values, 'attribute values', Tag.set);
    if (!first) continue;
    if (type === P12_OID.localKeyId && isUniversal(first, Tag.octetString) && !first.constructed) found.localKeyId = first.content;
    else if (type === P12_OID.friendlyName && isUniversal(first, 30) && first.content.length % 2 === 0) found.friendlyName = Buffer.from(first.content).swap16().toString('utf16le');
  }
  return found;
}

/** `der` if it is shaped like a PrivateKeyInfo (RFC 5208 §5): version, algorithm, OCTET STRING key. */
function checkedPrivateKeyInfo(der: Uint8Array): Uint8Array {
  const [version, algorithm, privateKey] = readSequence(readDer(der, 'PrivateKeyInfo'), 'PrivateKeyInfo');
  expectUniversal(version, Tag.integer, 'PrivateKeyInfo version');
  readOid(readSequence(algorithm, 'PrivateKeyInfo algorithm')[0], 'PrivateKeyInfo algorithm');
  expectUniversal(privateKey, Tag.octetString, 'PrivateKeyInfo privateKey');
  return der;
}

/** The SubjectPublicKeyInfo of a private key, as OpenSSL encodes it (so encodings compare equal). */
function publicKeyOfPrivateKey(pkcs8: Uint8Array): Uint8Array {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (error) {
    const algorithm = readOid(readSequence(readSequence(readDer(pkcs8, 'PrivateKeyInfo'), 'PrivateKeyInfo')[1], 'PrivateKeyInfo algorithm')[0], 'PrivateKeyInfo algorithm');
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_OSSL_UNSUPPORTED') throw new Pkcs12Error('unsupported', `the private key in the file is of type ${algorithm}, which this system cannot read`, { cause: error });
    throw new Pkcs12Error('malformed', `the private key in the file (${algorithm}) is damaged: ${(error as Error).message}`, { cause: error });
  }
  return new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
}

/** A certificate's public key re-encoded by OpenSSL; undefined when OpenSSL cannot read it. */
function certificatePublicKey(der: Uint8Array): Uint8Array | undefined {
  try {
    const spki = readCertificate(der).subjectPublicKeyInfo;
    return new Uint8Array(createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }));
  } catch {
    return undefined; // a CA certificate with a key type we do not know cannot be ours anyway
  }
}

function smallInteger(element: DerElement | undefined, what: string): number {
  const content = expectUniversal(element, Tag.integer, what).content;
  if (content.length === 0 || content.length > 6 || ((content[0] as number) & 0x80) !== 0) {
    throw new Pkcs12Error('malformed', `${what}: not a small positive integer`);
  }
  let value = 0;
  for (const octet of content) value = value * 256 + octet;
  return value;
}
