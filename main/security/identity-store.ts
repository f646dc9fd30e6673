/**
 * The S/MIME identity of each account (issue #4 item 1): its certificate in the data dir, its
 * private key in the OS keychain.
 *
 *   DATA_DIR/identities/<AoR as file name>/     0700
 *     certificate.pem                          0600  the certificate (public)
 *     identity.json                            0600  AoR, fingerprint, where the key is
 *     private-key.pem                          0600  only with the passphrase opt-in:
 *                                                    ENCRYPTED PRIVATE KEY (PBES2)
 *
 * Where the private key goes. The keychain entry holds the PKCS#8 PrivateKeyInfo itself (DER,
 * as a binary secret), and nothing about the key is written to the data dir, not even in
 * encrypted form: a copied or backed-up data dir gives nothing away, and there is one place to
 * delete it from. The other design (a 32-byte master key in the keychain, the PKCS#8
 * AES-GCM-encrypted on disk) exists only to dodge the 2560-octet blob limit of the Windows
 * Credential Manager, and binary PKCS#8 fits under it: P-256 is 138 octets, RSA-2048 about
 * 1.2 KB, RSA-4096 about 2.4 KB. Larger keys (RSA over 4096 bits) are refused with a pointer to
 * the passphrase-file opt-in. (The base64 form that made the limit a problem, 1624 characters
 * for RSA-2048, written as UTF-16 by keyring-rs, is avoided by storing binary.)
 *
 * Keychain entries are named `<canonical AoR>#<random id>`; the id is kept in identity.json.
 * Two data dirs (profiles, test runs) with the same AoR therefore never overwrite each other's
 * key, and forgetting one identity deletes only its own key.
 *
 * Order of writes: the key first, then the certificate, then identity.json, which marks the
 * identity as complete. A keychain failure leaves nothing behind; a crash leaves at most an
 * orphaned key that no identity refers to.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { aorFileName, canonicalAor, certificateNamesAor } from './aor.js';
import {
  certificateInfo,
  createIdentity,
  importIdentity as identityFromCertificateAndKey,
  type CertificateInfo,
  type Identity,
  type IdentityAlgorithm,
} from './certificates.js';
import { CmsError, pemDecodeAll, pemEncode } from './cms/der.js';
import { ensurePrivateDir, readFileIfExists, writePrivateFile } from './data-files.js';
import { MAX_SECRET_BYTES, type Keychain } from './keychain.js';
import { decryptPrivateKeyInfo, encryptedPrivateKeyInfoOf, PassphraseKeyFile, type EncryptOptions } from './passphrase-key-file.js';
import { openPkcs12 } from './pkcs12.js';

const CERTIFICATE_FILE = 'certificate.pem';
const RECORD_FILE = 'identity.json';
const KEY_FILE = 'private-key.pem';
const RECORD_FORMAT = 'sipnote-identity/1';

/** Where an identity's private key is kept. */
export type KeyLocation =
  | { readonly storage: 'keychain'; readonly account: string }
  | { readonly storage: 'passphrase-file'; readonly path: string };

/** The public part of an identity: what `show` and `export-cert` need, no key access. */
export interface IdentityRecord {
  /** The canonical AoR (see aor.ts). */
  readonly aor: string;
  readonly certificateDer: Uint8Array;
  readonly info: CertificateInfo;
  readonly certificatePath: string;
  readonly key: KeyLocation;
}

/** An identity with its private key, ready to sign and decrypt with. */
export interface StoredIdentity extends Identity, IdentityRecord {}

export type IdentityErrorCode =
  /** There is no identity for this AoR in the data dir. */
  | 'not-found'
  /** There already is one (forget it first). */
  | 'exists'
  /** identity.json says the key is in the keychain, and it is not there. */
  | 'key-missing'
  /** The stored key does not belong to the certificate. */
  | 'key-mismatch'
  /** The key is in a passphrase file and no passphrase was given. */
  | 'passphrase-required'
  /** The certificate to import does not name the account's AoR. */
  | 'aor-mismatch'
  /** The key is too large for the keychain (over MAX_SECRET_BYTES as PKCS#8). */
  | 'key-too-large'
  /** The certificate or key to import could not be read. */
  | 'bad-input'
  /** identity.json or certificate.pem cannot be read. */
  | 'corrupt';

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  constructor(
    readonly code: IdentityErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Where the private key goes. Without `passphraseKeyFile` it goes to `keychain`. */
export interface KeyStorageOptions {
  readonly keychain: Keychain;
  /**
   * The opt-in for machines without a keychain: keep the key in a PBES2-encrypted PKCS#8 file
   * (private-key.pem) in the identity's directory instead. Only when the user asked for it.
   */
  readonly passphraseKeyFile?: { readonly passphrase: string } & EncryptOptions;
}

export interface InitIdentityOptions extends KeyStorageOptions {
  /** ECDSA P-256 (default, RFC 8591 §4.1) or RSA-2048. */
  readonly algorithm?: IdentityAlgorithm;
  readonly validDays?: number;
  readonly now?: Date;
}

export interface ImportIdentityOptions extends KeyStorageOptions {
  /** The passphrase of `privateKey` when it is an ENCRYPTED PRIVATE KEY. */
  readonly privateKeyPassphrase?: string;
}

export interface LoadIdentityOptions {
  readonly keychain: Keychain;
  /** Needed when the key is in a passphrase file. */
  readonly passphrase?: string;
}

/** The directory of `aor`'s identity (whether or not it exists). */
export function identityDir(dataDir: string, aor: string): string {
  return join(dataDir, 'identities', aorFileName(canonicalAor(aor)));
}

/** Creates a key pair and self-signed certificate for `aor` (certificates.ts) and stores both. */
export async function initIdentity(dataDir: string, aor: string, options: InitIdentityOptions): Promise<StoredIdentity> {
  const canonical = canonicalAor(aor);
  await refuseExisting(dataDir, canonical);
  const identity = await createIdentity({
    aor: canonical,
    ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm }),
    ...(options.validDays === undefined ? {} : { validDays: options.validDays }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return store(dataDir, canonical, identity, options);
}

/**
 * Stores an existing certificate and its private key (PEM or DER each; the key as PKCS#8,
 * SEC 1 `EC PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, or a PBES2 `ENCRYPTED PRIVATE KEY` with
 * `privateKeyPassphrase`). The key must belong to the certificate, and the certificate must
 * name `aor` (a SIP URI in its subjectAltName, RFC 8591 §4.4.1, or the RFC 3261 §23.1
 * `user@host` rfc822Name): peers check exactly that on every message.
 */
export async function importIdentity(
  dataDir: string,
  aor: string,
  certificate: string | Uint8Array,
  privateKey: string | Uint8Array,
  options: ImportIdentityOptions,
): Promise<StoredIdentity> {
  const canonical = canonicalAor(aor);
  await refuseExisting(dataDir, canonical);
  let key = privateKey;
  const encrypted = safely(() => encryptedPrivateKeyInfoOf(privateKey));
  if (encrypted) {
    if (options.privateKeyPassphrase === undefined) throw new IdentityError('passphrase-required', 'the private key to import is encrypted: its passphrase is needed');
    key = await decryptPrivateKeyInfo(encrypted, options.privateKeyPassphrase);
  }
  let identity: Identity;
  try {
    identity = await identityFromCertificateAndKey(certificate, key);
  } catch (error) {
    if (error instanceof CmsError) {
      throw new IdentityError(error.code === 'key-mismatch' ? 'key-mismatch' : 'bad-input', error.message, { cause: error });
    }
    throw error;
  }
  if (!certificateNamesAor(identity.info, canonical)) {
    const names = [...identity.info.sipUris, ...identity.info.emailAddresses];
    throw new IdentityError('aor-mismatch', `the certificate is for ${names.length > 0 ? names.join(', ') : identity.info.subject}, not ${canonical}`);
  }
  return store(dataDir, canonical, identity, options);
}

/**
 * Stores the identity in a PKCS#12 (.p12/.pfx) file opened with `passphrase` (RFC 7292,
 * pkcs12.ts): its private key and the certificate whose public key matches it, checked as
 * `importIdentity` checks them (the key signs for the certificate, the certificate names
 * `aor`). The file's other certificates (a CA chain) are returned but not stored: sipnote pins
 * certificates instead of chaining them (RFC 3261 §23.2). Throws `Pkcs12Error` when the file
 * cannot be opened, otherwise what `importIdentity` throws.
 */
export async function importPkcs12Identity(
  dataDir: string,
  aor: string,
  pfx: Uint8Array,
  passphrase: string,
  options: KeyStorageOptions,
): Promise<{ readonly identity: StoredIdentity; readonly otherCertificates: readonly Uint8Array[] }> {
  await refuseExisting(dataDir, canonicalAor(aor));
  const contents = await openPkcs12(pfx, passphrase);
  const identity = await importIdentity(dataDir, aor, contents.certificateDer, contents.privateKeyPkcs8, options);
  return { identity, otherCertificates: contents.otherCertificates };
}

/** Throws IdentityError('exists') when `aor` already has an identity in `dataDir` (checked before asking for passphrases). */
export async function assertNoIdentity(dataDir: string, aor: string): Promise<void> {
  await refuseExisting(dataDir, canonicalAor(aor));
}

/** The certificate and key location of `aor`'s identity, or undefined when there is none. */
export async function readIdentityRecord(dataDir: string, aor: string): Promise<IdentityRecord | undefined> {
  const canonical = canonicalAor(aor);
  const dir = identityDir(dataDir, canonical);
  const recordText = await readFileIfExists(join(dir, RECORD_FILE));
  if (recordText === undefined) return undefined;
  const key = parseRecord(recordText.toString('utf8'), canonical, dir);
  const certificatePath = join(dir, CERTIFICATE_FILE);
  const pem = await readFileIfExists(certificatePath);
  if (pem === undefined) throw new IdentityError('corrupt', `${certificatePath} is missing`);
  let certificateDer: Uint8Array | undefined;
  try {
    certificateDer = pemDecodeAll(pem.toString('latin1')).find((block) => block.label === 'CERTIFICATE')?.der;
  } catch (error) {
    throw new IdentityError('corrupt', `${certificatePath}: ${(error as Error).message}`, { cause: error });
  }
  if (!certificateDer) throw new IdentityError('corrupt', `${certificatePath} holds no CERTIFICATE`);
  let info: CertificateInfo;
  try {
    info = certificateInfo(certificateDer);
  } catch (error) {
    throw new IdentityError('corrupt', `${certificatePath}: ${(error as Error).message}`, { cause: error });
  }
  return { aor: canonical, certificateDer, info, certificatePath, key };
}

/**
 * The identity of `aor` with its private key, which is checked to belong to the certificate.
 * Throws IdentityError ('not-found', 'key-missing', 'passphrase-required', 'key-mismatch',
 * 'corrupt'), KeychainUnavailableError, or PassphraseKeyError ('bad-passphrase').
 */
export async function loadIdentity(dataDir: string, aor: string, options: LoadIdentityOptions): Promise<StoredIdentity> {
  const record = await readIdentityRecord(dataDir, aor);
  if (!record) throw notFound(canonicalAor(aor));
  let privateKeyPkcs8: Uint8Array | undefined;
  if (record.key.storage === 'keychain') {
    privateKeyPkcs8 = await options.keychain.get(record.key.account);
    if (!privateKeyPkcs8) {
      throw new IdentityError(
        'key-missing',
        `the private key of ${record.aor} is not in ${options.keychain.description} (account ${record.key.account}): ` +
          'it was deleted there, or this is another user or machine. Import the key again (`sipnote keys forget` then `sipnote keys import`), or make a new identity (`forget`, then `init`) and give your contacts its certificate',
      );
    }
  } else {
    if (options.passphrase === undefined) throw new IdentityError('passphrase-required', `the private key of ${record.aor} is in a passphrase-protected file: its passphrase is needed`);
    privateKeyPkcs8 = await new PassphraseKeyFile(record.key.path).read(options.passphrase);
    if (!privateKeyPkcs8) throw new IdentityError('key-missing', `the private key file ${record.key.path} of ${record.aor} is missing`);
  }
  try {
    const identity = await identityFromCertificateAndKey(record.certificateDer, privateKeyPkcs8);
    return { ...record, ...identity };
  } catch (error) {
    if (error instanceof CmsError) {
      throw new IdentityError('key-mismatch', `the stored private key of ${record.aor} does not belong to its certificate (${error.message})`, { cause: error });
    }
    throw error;
  }
}

/** The certificate of `aor`'s identity as PEM (RFC 7468), for giving to contacts. */
export async function exportCertificatePem(dataDir: string, aor: string): Promise<string> {
  const record = await readIdentityRecord(dataDir, aor);
  if (!record) throw notFound(canonicalAor(aor));
  return pemEncode('CERTIFICATE', record.certificateDer);
}

/**
 * Deletes `aor`'s identity: its key (from the keychain, or the passphrase file) and its
 * directory. False when there was none. The key goes first: if the keychain cannot be reached
 * nothing is deleted, so the identity does not end up pointing at a key nobody can remove.
 */
export async function forgetIdentity(dataDir: string, aor: string, options: { readonly keychain: Keychain }): Promise<boolean> {
  const canonical = canonicalAor(aor);
  const dir = identityDir(dataDir, canonical);
  const recordText = await readFileIfExists(join(dir, RECORD_FILE));
  if (recordText === undefined) {
    // Perhaps the remains of an interrupted init: no record means no key we know of.
    const leftovers = (await readFileIfExists(join(dir, CERTIFICATE_FILE))) !== undefined;
    await rm(dir, { recursive: true, force: true });
    return leftovers;
  }
  const key = parseRecord(recordText.toString('utf8'), canonical, dir);
  if (key.storage === 'keychain') await options.keychain.delete(key.account);
  await rm(dir, { recursive: true, force: true });
  return true;
}

/** The AoRs with an identity in `dataDir`. */
export async function listIdentities(dataDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(dataDir, 'identities'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const aors: string[] = [];
  for (const name of names.sort()) {
    const text = await readFileIfExists(join(dataDir, 'identities', name, RECORD_FILE));
    if (text === undefined) continue;
    try {
      const record = JSON.parse(text.toString('utf8')) as { aor?: unknown };
      if (typeof record.aor === 'string') aors.push(record.aor);
    } catch {
      // a damaged record is reported when that identity is used, not here
    }
  }
  return aors;
}

// ---------------------------------------------------------------------------------------------

async function refuseExisting(dataDir: string, canonical: string): Promise<void> {
  const existing = await readFileIfExists(join(identityDir(dataDir, canonical), RECORD_FILE));
  if (existing !== undefined) {
    throw new IdentityError('exists', `${canonical} already has an identity in ${dataDir} (see it with \`sipnote keys show --aor ${canonical}\`); to replace it, \`sipnote keys forget --aor ${canonical}\` first`);
  }
}

async function store(dataDir: string, canonical: string, identity: Identity, options: KeyStorageOptions): Promise<StoredIdentity> {
  const dir = identityDir(dataDir, canonical);
  let key: KeyLocation;
  if (options.passphraseKeyFile) {
    await ensurePrivateDir(dir);
    const path = join(dir, KEY_FILE);
    const { passphrase, ...encryptOptions } = options.passphraseKeyFile;
    await new PassphraseKeyFile(path).write(identity.privateKeyPkcs8, passphrase, encryptOptions);
    key = { storage: 'passphrase-file', path };
  } else {
    if (identity.privateKeyPkcs8.length > MAX_SECRET_BYTES) {
      throw new IdentityError(
        'key-too-large',
        `the private key is ${identity.privateKeyPkcs8.length} octets, more than a keychain entry holds on every platform (${MAX_SECRET_BYTES}); use a smaller key (P-256, RSA up to 4096 bits) or the passphrase-protected key file`,
      );
    }
    const account = `${canonical}#${randomBytes(8).toString('hex')}`;
    await options.keychain.set(account, identity.privateKeyPkcs8);
    key = { storage: 'keychain', account };
  }
  try {
    await ensurePrivateDir(join(dataDir, 'identities'));
    await ensurePrivateDir(dir);
    const certificatePath = join(dir, CERTIFICATE_FILE);
    await writePrivateFile(certificatePath, pemEncode('CERTIFICATE', identity.certificateDer));
    const record = {
      format: RECORD_FORMAT,
      aor: canonical,
      fingerprintSha256: identity.info.fingerprintSha256,
      key: key.storage === 'keychain' ? { storage: 'keychain', account: key.account } : { storage: 'passphrase-file', file: KEY_FILE },
    };
    await writePrivateFile(join(dir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
    return { ...identity, aor: canonical, certificatePath, key };
  } catch (error) {
    // Do not leave a key behind that no identity refers to.
    if (key.storage === 'keychain') await options.keychain.delete(key.account).catch(() => false);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

function parseRecord(text: string, canonical: string, dir: string): KeyLocation {
  let record: { format?: unknown; aor?: unknown; key?: { storage?: unknown; account?: unknown; file?: unknown } };
  try {
    record = JSON.parse(text) as typeof record;
  } catch (error) {
    throw new IdentityError('corrupt', `${join(dir, RECORD_FILE)} is not JSON`, { cause: error });
  }
  if (record.format !== RECORD_FORMAT || record.aor !== canonical) {
    throw new IdentityError('corrupt', `${join(dir, RECORD_FILE)} is not the identity record of ${canonical}`);
  }
  if (record.key?.storage === 'keychain' && typeof record.key.account === 'string') return { storage: 'keychain', account: record.key.account };
  if (record.key?.storage === 'passphrase-file' && record.key.file === KEY_FILE) return { storage: 'passphrase-file', path: join(dir, KEY_FILE) };
  throw new IdentityError('corrupt', `${join(dir, RECORD_FILE)} does not say where the private key is`);
}

function notFound(canonical: string): IdentityError {
  return new IdentityError('not-found', `${canonical} has no identity here yet: create one with \`sipnote keys init --aor ${canonical}\` or import one`);
}

function safely<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
