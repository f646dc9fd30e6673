/**
 * A private key in a passphrase-protected file: the explicit opt-in for machines without an OS
 * keychain (design.md, security model: "No keychain means a clear error (or an explicit,
 * passphrase-protected opt-in), never a silent plaintext file"). sipnote never chooses this by
 * itself; the user asks for it (`sipnote keys init --passphrase-key`).
 *
 * The format is the standard one, so other tools open it: a PKCS#8 EncryptedPrivateKeyInfo
 * (RFC 5958 §3) encrypted with PBES2 (RFC 8018 §6.2): PBKDF2 (§5.2) with HMAC-SHA-256 as PRF
 * (appendix B.1.2) and a random 16-octet salt, then AES-256-CBC with PKCS#7 padding
 * (appendix B.2.5 names the AES modes; OIDs from RFC 3565 §4.1), in PEM with the label
 * `ENCRYPTED PRIVATE KEY` (RFC 7468 §11). `openssl pkcs8 -in FILE -passin pass:…` decrypts it.
 *
 * PBKDF2 is what PKCS#8 tools understand; it is slow only by iteration count, so the count is
 * high: 600 000 for HMAC-SHA-256, the OWASP Password Storage recommendation (2023). Reading
 * also accepts what OpenSSL writes (`openssl pkcs8 -topk8 -v2 …`, `openssl req -keyout`):
 * HMAC-SHA-1/256/384/512, AES-128/192/256-CBC and DES-EDE3-CBC, with a bounded iteration
 * count. PBES1 and scrypt are refused as unsupported.
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { rm } from 'node:fs/promises';
import {
  CmsError,
  Tag,
  derAlgorithm,
  derOctetString,
  derOid,
  derSequence,
  derUnsignedInteger,
  DER_NULL,
  expectUniversal,
  isUniversal,
  pemDecodeAll,
  pemEncode,
  readDer,
  readOctetString,
  readOid,
  readSequence,
  type DerElement,
} from './cms/der.js';
import { readFileIfExists, writePrivateFile } from './data-files.js';

const pbkdf2Async = promisify(pbkdf2);

/** PBKDF2-HMAC-SHA-256 iterations for files we write (OWASP 2023). */
export const DEFAULT_PBKDF2_ITERATIONS = 600_000;
/** Reading refuses more than this, so a crafted file cannot keep us busy for minutes. */
const MAX_PBKDF2_ITERATIONS = 10_000_000;
/** A passphrase shorter than this is refused when writing: it would protect next to nothing. */
export const MIN_PASSPHRASE_LENGTH = 8;

const PBES_OID = {
  pbes2: '1.2.840.113549.1.5.13', // RFC 8018 appendix A.4
  pbkdf2: '1.2.840.113549.1.5.12', // RFC 8018 appendix A.2
  aes192Cbc: '2.16.840.1.101.3.4.1.22', // RFC 3565 §4.1
} as const;

/** PRFs of RFC 8018 appendix B.1 (hmacWithSHA1 is the DEFAULT when the field is absent). */
const PRF_BY_OID: Readonly<Record<string, 'sha1' | 'sha256' | 'sha384' | 'sha512'>> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};
const HMAC_WITH_SHA256 = '1.2.840.113549.2.9';

/**
 * Ciphers we read, by OID: the AES-CBC modes of RFC 8018 appendix B.2.5 / RFC 3565 §4.1, and
 * DES-EDE3-CBC (appendix B.2.2), which `openssl req -keyout` in OpenSSL 3.0 still writes.
 */
const CIPHER_BY_OID: Readonly<Record<string, { name: string; keyLength: number; ivLength: number }>> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
  [PBES_OID.aes192Cbc]: { name: 'aes-192-cbc', keyLength: 24, ivLength: 16 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
};
const AES_256_CBC = '2.16.840.1.101.3.4.1.42';

export type PassphraseKeyErrorCode =
  /** The passphrase does not open the file (or the file was altered). */
  | 'bad-passphrase'
  /** Refused when writing: shorter than MIN_PASSPHRASE_LENGTH. */
  | 'weak-passphrase'
  /** Not an EncryptedPrivateKeyInfo we can read. */
  | 'malformed'
  /** A PBES scheme, PRF or cipher we do not implement (PBES1, DES, scrypt …). */
  | 'unsupported';

export class PassphraseKeyError extends Error {
  override readonly name = 'PassphraseKeyError';
  constructor(
    readonly code: PassphraseKeyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EncryptOptions {
  /** PBKDF2 iterations (default DEFAULT_PBKDF2_ITERATIONS; tests use fewer). */
  readonly iterations?: number;
}

/** The passphrase as PBKDF2's password octets: its UTF-8 bytes as typed (what OpenSSL uses too). */
function passwordOctets(passphrase: string): Buffer {
  return Buffer.from(passphrase, 'utf8');
}

/** Encrypts a PKCS#8 PrivateKeyInfo into a DER EncryptedPrivateKeyInfo (PBES2, see the module comment). */
export async function encryptPrivateKeyInfo(pkcs8: Uint8Array, passphrase: string, options: EncryptOptions = {}): Promise<Uint8Array> {
  if ([...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new PassphraseKeyError('weak-passphrase', `the passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  const iterations = options.iterations ?? DEFAULT_PBKDF2_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new RangeError(`PBKDF2 iterations out of range: ${iterations}`);
  }
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const key = await pbkdf2Async(passwordOctets(passphrase), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(pkcs8), cipher.final()]);
  // PBKDF2-params (RFC 8018 appendix A.2): salt, iterationCount, keyLength (optional, written
  // as OpenSSL does), prf hmacWithSHA256 with NULL parameters (appendix B.1.2).
  const pbkdf2Params = derSequence(
    derOctetString(salt),
    derUnsignedInteger(integerOctets(iterations)),
    derUnsignedInteger(Uint8Array.of(32)),
    derAlgorithm(HMAC_WITH_SHA256, DER_NULL),
  );
  const pbes2Params = derSequence(derAlgorithm(PBES_OID.pbkdf2, pbkdf2Params), derAlgorithm(AES_256_CBC, derOctetString(iv)));
  return derSequence(derSequence(derOid(PBES_OID.pbes2), pbes2Params), derOctetString(encrypted));
}

/** Decrypts a DER EncryptedPrivateKeyInfo to the PKCS#8 PrivateKeyInfo inside it. */
export async function decryptPrivateKeyInfo(encryptedPrivateKeyInfo: Uint8Array, passphrase: string): Promise<Uint8Array> {
  const parsed = parseEncryptedPrivateKeyInfo(encryptedPrivateKeyInfo);
  const key = await pbkdf2Async(passwordOctets(passphrase), parsed.salt, parsed.iterations, parsed.cipher.keyLength, parsed.prf);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv(parsed.cipher.name, key, parsed.iv);
    plain = Buffer.concat([decipher.update(parsed.encryptedData), decipher.final()]);
  } catch (error) {
    throw new PassphraseKeyError('bad-passphrase', 'wrong passphrase (or the key file was altered)', { cause: error });
  }
  // One wrong passphrase in about 256 still ends in valid padding: what it yields is no PKCS#8.
  try {
    const [version, algorithm, privateKey] = readSequence(readDer(plain, 'PrivateKeyInfo'), 'PrivateKeyInfo');
    expectUniversal(version, Tag.integer, 'PrivateKeyInfo version');
    readSequence(algorithm, 'PrivateKeyInfo algorithm');
    expectUniversal(privateKey, Tag.octetString, 'PrivateKeyInfo privateKey');
  } catch (error) {
    throw new PassphraseKeyError('bad-passphrase', 'wrong passphrase (or the key file was altered)', { cause: error });
  }
  return new Uint8Array(plain);
}

interface ParsedEncryptedPrivateKeyInfo {
  salt: Uint8Array;
  iterations: number;
  prf: 'sha1' | 'sha256' | 'sha384' | 'sha512';
  cipher: { name: string; keyLength: number; ivLength: number };
  iv: Uint8Array;
  encryptedData: Uint8Array;
}

function parseEncryptedPrivateKeyInfo(der: Uint8Array): ParsedEncryptedPrivateKeyInfo {
  try {
    const [algorithm, data] = readSequence(readDer(der, 'EncryptedPrivateKeyInfo'), 'EncryptedPrivateKeyInfo');
    const [schemeOid, schemeParams] = readSequence(algorithm, 'encryptionAlgorithm');
    const scheme = readOid(schemeOid, 'encryptionAlgorithm');
    if (scheme !== PBES_OID.pbes2) throw new PassphraseKeyError('unsupported', `key encryption ${scheme} is not PBES2 (convert it: openssl pkcs8 -topk8 -v2 aes-256-cbc)`);
    const [kdf, encryption] = readSequence(schemeParams, 'PBES2-params');
    const [kdfOid, kdfParams] = readSequence(kdf, 'keyDerivationFunc');
    const kdfName = readOid(kdfOid, 'keyDerivationFunc');
    if (kdfName !== PBES_OID.pbkdf2) throw new PassphraseKeyError('unsupported', `key derivation ${kdfName} is not PBKDF2`);
    const fields = readSequence(kdfParams, 'PBKDF2-params');
    const salt = readOctetString(fields[0], 'PBKDF2 salt'); // the `otherSource` choice is reserved (§A.2)
    const iterations = readSmallInteger(fields[1], 'PBKDF2 iterationCount');
    let next = 2;
    let keyLength: number | undefined;
    if (fields[next] && isUniversal(fields[next] as DerElement, Tag.integer)) keyLength = readSmallInteger(fields[next++], 'PBKDF2 keyLength');
    let prf: ParsedEncryptedPrivateKeyInfo['prf'] = 'sha1'; // DEFAULT algid-hmacWithSHA1
    if (fields[next]) {
      const prfOid = readOid(readSequence(fields[next], 'PBKDF2 prf')[0], 'PBKDF2 prf');
      const known = PRF_BY_OID[prfOid];
      if (!known) throw new PassphraseKeyError('unsupported', `PBKDF2 PRF ${prfOid} is not supported`);
      prf = known;
    }
    const [cipherOid, ivElement] = readSequence(encryption, 'encryptionScheme');
    const cipherName = readOid(cipherOid, 'encryptionScheme');
    const cipher = CIPHER_BY_OID[cipherName];
    if (!cipher) throw new PassphraseKeyError('unsupported', `key encryption cipher ${cipherName} is not supported (AES-CBC and DES-EDE3-CBC are)`);
    const iv = readOctetString(ivElement, 'CBC IV');
    if (salt.length === 0 || salt.length > 1024) throw new PassphraseKeyError('malformed', 'PBKDF2 salt of an unusable length');
    if (iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) throw new PassphraseKeyError('malformed', `PBKDF2 iteration count ${iterations} out of range`);
    if (keyLength !== undefined && keyLength !== cipher.keyLength) throw new PassphraseKeyError('malformed', 'PBKDF2 keyLength does not fit the cipher');
    if (iv.length !== cipher.ivLength) throw new PassphraseKeyError('malformed', `${cipher.name} IV is not ${cipher.ivLength} octets`);
    const encryptedData = readOctetString(data, 'encryptedData');
    if (encryptedData.length === 0 || encryptedData.length % cipher.ivLength !== 0) throw new PassphraseKeyError('malformed', 'encrypted key of an impossible length');
    return { salt, iterations, prf, cipher, iv, encryptedData };
  } catch (error) {
    if (error instanceof CmsError) throw new PassphraseKeyError('malformed', `not an encrypted PKCS#8 key: ${error.message}`, { cause: error });
    throw error;
  }
}

function readSmallInteger(element: DerElement | undefined, what: string): number {
  const content = expectUniversal(element, Tag.integer, what).content;
  if (content.length === 0 || content.length > 6 || ((content[0] as number) & 0x80) !== 0) {
    throw new PassphraseKeyError('malformed', `${what}: not a small positive integer`);
  }
  let value = 0;
  for (const octet of content) value = value * 256 + octet;
  return value;
}

function integerOctets(value: number): Uint8Array {
  const octets: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Uint8Array.from(octets.length === 0 ? [0] : octets);
}

/**
 * The DER EncryptedPrivateKeyInfo in `input`, if that is what it holds: the first
 * `ENCRYPTED PRIVATE KEY` block of PEM text, or DER bytes shaped like one (a SEQUENCE that
 * starts with an AlgorithmIdentifier, where a plain PrivateKeyInfo starts with its version
 * INTEGER). Undefined otherwise.
 */
export function encryptedPrivateKeyInfoOf(input: string | Uint8Array): Uint8Array | undefined {
  if (typeof input === 'string') return pemDecodeAll(input).find((block) => block.label === 'ENCRYPTED PRIVATE KEY')?.der;
  try {
    const [first] = readSequence(readDer(input, 'private key'), 'private key');
    return first && isUniversal(first, Tag.sequence) ? input : undefined;
  } catch {
    return undefined;
  }
}

/** A private key kept in one file, PEM `ENCRYPTED PRIVATE KEY`, mode 0600. */
export class PassphraseKeyFile {
  constructor(readonly path: string) {}

  /** Writes (or replaces) the file with `pkcs8` encrypted under `passphrase`. */
  async write(pkcs8: Uint8Array, passphrase: string, options: EncryptOptions = {}): Promise<void> {
    await writePrivateFile(this.path, pemEncode('ENCRYPTED PRIVATE KEY', await encryptPrivateKeyInfo(pkcs8, passphrase, options)));
  }

  /** The PKCS#8 key, or undefined when the file does not exist. */
  async read(passphrase: string): Promise<Uint8Array | undefined> {
    const text = await readFileIfExists(this.path);
    if (text === undefined) return undefined;
    let der: Uint8Array | undefined;
    try {
      der = encryptedPrivateKeyInfoOf(text.toString('latin1'));
    } catch (error) {
      throw new PassphraseKeyError('malformed', `${this.path}: ${(error as Error).message}`, { cause: error });
    }
    if (!der) throw new PassphraseKeyError('malformed', `${this.path} holds no ENCRYPTED PRIVATE KEY block`);
    return decryptPrivateKeyInfo(der, passphrase);
  }

  /** Deletes the file; false when there was none. */
  async delete(): Promise<boolean> {
    const existed = (await readFileIfExists(this.path)) !== undefined;
    await rm(this.path, { force: true });
    return existed;
  }
}
