/**
 * The identity store: certificates in the data dir, private keys in the real OS keychain (run
 * with `sh scripts/with-secret-service.sh npx vitest run test/unit/identity-store.test.ts`), or,
 * opted in, in a PBES2 file that OpenSSL opens. After every kind of init and import, every file
 * under the data dir is searched for the private key in every form we can think of.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createIdentity, exportPrivateKeyPem, fingerprintSha256 } from '../../main/security/certificates.js';
import { DER_NULL, derAlgorithm, derOctetString, derOid, derSequence, derTlv, derUnsignedInteger, readDer, readSequence } from '../../main/security/cms/der.js';
import {
  IdentityError,
  exportCertificatePem,
  forgetIdentity,
  identityDir,
  importIdentity,
  initIdentity,
  listIdentities,
  loadIdentity,
  readIdentityRecord,
  type StoredIdentity,
} from '../../main/security/identity-store.js';
import { KeychainUnavailableError, OsKeychain } from '../../main/security/keychain.js';
import { PassphraseKeyError, decryptPrivateKeyInfo, encryptPrivateKeyInfo } from '../../main/security/passphrase-key-file.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { MemoryKeychain, unavailableKeychain } from '../support/keychains.js';
import { keychainGate } from '../support/secret-service.js';

const gate = await keychainGate('test/unit/identity-store.test.ts');
const keychain = new OsKeychain({ timeoutMs: 15_000 });
const hasSecretTool = process.platform === 'linux' && spawnSync('sh', ['-c', 'command -v secret-tool'], { stdio: 'ignore' }).status === 0;

const cleanups = cleanupsAfterEach();

/** A fresh data dir (not yet created: the store creates it, with mode 0700). */
function newDataDir(): string {
  const parent = tempDir(cleanups, 'sipnote-identity-');
  return join(parent, 'data');
}

/** Forgets the identity at the end of the test, so no test key stays in the keychain. */
function forgetLater(dataDir: string, aor: string): void {
  cleanups.push(() => forgetIdentity(dataDir, aor, { keychain }).catch(() => false));
}

function uniqueAor(name: string): string {
  return `sip:${name}-${randomBytes(4).toString('hex')}@example.com`;
}

// ---------------------------------------------------------------------------------------------
// Searching a directory for a private key

function filesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...filesUnder(path));
    else files.push(path);
  }
  return files;
}

/** The private key in every encoding it could leak in: PKCS#8, SEC 1 / PKCS#1, and the bare secret numbers. */
function privateKeyForms(pkcs8: Uint8Array): Array<{ form: string; bytes: Buffer }> {
  const der = Buffer.from(pkcs8);
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const forms: Array<{ form: string; bytes: Buffer }> = [
    { form: 'PKCS#8 DER', bytes: der },
    { form: 'PKCS#8 base64', bytes: Buffer.from(der.toString('base64')) },
    { form: 'PKCS#8 PEM', bytes: Buffer.from(exportPrivateKeyPem(pkcs8)) },
    { form: 'PKCS#8 hex', bytes: Buffer.from(der.toString('hex')) },
  ];
  const traditional = key.asymmetricKeyType === 'ec' ? 'sec1' : 'pkcs1';
  const legacy = key.export({ format: 'der', type: traditional }) as Buffer;
  forms.push({ form: `${traditional} DER`, bytes: legacy }, { form: `${traditional} base64`, bytes: Buffer.from(legacy.toString('base64')) });
  const jwk = key.export({ format: 'jwk' }) as Record<string, string | undefined>;
  for (const field of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
    const value = jwk[field];
    if (value === undefined) continue;
    const raw = Buffer.from(value, 'base64url');
    forms.push(
      { form: `${field} raw`, bytes: raw },
      { form: `${field} hex`, bytes: Buffer.from(raw.toString('hex')) },
      { form: `${field} HEX`, bytes: Buffer.from(raw.toString('hex').toUpperCase()) },
      { form: `${field} base64`, bytes: Buffer.from(raw.toString('base64')) },
      { form: `${field} base64url`, bytes: Buffer.from(value) },
    );
  }
  return forms;
}

/** Every `file: form` where some form of the key appears (also across line breaks of base64 text). */
function findPrivateKey(dir: string, pkcs8: Uint8Array): string[] {
  const forms = privateKeyForms(pkcs8);
  const hits: string[] = [];
  for (const file of filesUnder(dir)) {
    const content = readFileSync(file);
    const unwrapped = Buffer.from(content.toString('latin1').replace(/\s+/g, ''), 'latin1');
    for (const { form, bytes } of forms) {
      if (content.includes(bytes) || unwrapped.includes(bytes)) hits.push(`${file}: ${form}`);
    }
  }
  return hits;
}

/** The private scalar of an EC key (PKCS#8 DER or any PEM), as base64url: the key's identity. */
function secretScalar(key: Uint8Array | string): string | undefined {
  const object = typeof key === 'string' ? createPrivateKey(key) : createPrivateKey({ key: Buffer.from(key), format: 'der', type: 'pkcs8' });
  return (object.export({ format: 'jwk' }) as { d?: string }).d;
}

function expectModes(dataDir: string, identity: StoredIdentity): void {
  if (process.platform === 'win32') return;
  const dir = identityDir(dataDir, identity.aor);
  for (const path of [dataDir, join(dataDir, 'identities'), dir]) expect(statSync(path).mode & 0o777, path).toBe(0o700);
  for (const file of readdirSync(dir)) expect(statSync(join(dir, file)).mode & 0o777, file).toBe(0o600);
}

describe('the private-key search', () => {
  it('finds the key when it is there, in each of its forms (so the searches below can fail)', async () => {
    const dir = newDataDir();
    const identity = await createIdentity({ aor: 'sip:plant@example.com' });
    const forms = privateKeyForms(identity.privateKeyPkcs8);
    expect(forms.map((form) => form.form)).toEqual(expect.arrayContaining(['PKCS#8 DER', 'PKCS#8 PEM', 'd raw', 'sec1 DER']));
    for (const [index, { bytes }] of forms.entries()) {
      const sub = join(dir, String(index));
      execFileSync('mkdir', ['-p', sub]);
      writeFileSync(join(sub, 'file'), Buffer.concat([Buffer.from('noise '), bytes, Buffer.from(' noise')]));
    }
    const hits = findPrivateKey(dir, identity.privateKeyPkcs8);
    for (const [index, { form }] of forms.entries()) expect(hits).toContain(`${join(dir, String(index), 'file')}: ${form}`);
    // PEM wrapped at 64 columns is found through its base64 as well.
    expect(hits.some((hit) => hit.includes(`${join(dir, '2', 'file')}: PKCS#8 base64`))).toBe(true);
  });
});

describe.skipIf(gate.skip)('identities with the key in the OS keychain', () => {
  it('init makes an ECDSA P-256 identity: certificate in the data dir, key only in the keychain', async () => {
    const dataDir = newDataDir();
    const aor = uniqueAor('alice');
    forgetLater(dataDir, aor);
    const identity = await initIdentity(dataDir, aor, { keychain });
    expect(identity.aor).toBe(aor);
    expect(identity.info.keyAlgorithm).toBe('ECDSA-P256');
    expect(identity.info.sipUris).toEqual([aor]);
    expect(identity.key.storage).toBe('keychain');
    expect(identity.certificatePath).toBe(join(identityDir(dataDir, aor), 'certificate.pem'));
    expect(readFileSync(identity.certificatePath, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expectModes(dataDir, identity);

    // The keychain holds exactly the PKCS#8 key.
    if (identity.key.storage !== 'keychain') throw new Error('unreachable');
    expect(await keychain.get(identity.key.account)).toEqual(identity.privateKeyPkcs8);
    if (hasSecretTool) {
      const looked = execFileSync('secret-tool', ['lookup', 'service', 'org.sipnote.keys', 'username', identity.key.account]);
      expect(new Uint8Array(looked)).toEqual(identity.privateKeyPkcs8);
    }
    expect(findPrivateKey(dataDir, identity.privateKeyPkcs8)).toEqual([]);

    const loaded = await loadIdentity(dataDir, aor, { keychain });
    expect(loaded.privateKeyPkcs8).toEqual(identity.privateKeyPkcs8);
    expect(loaded.certificateDer).toEqual(identity.certificateDer);
    expect(loaded.info.fingerprintSha256).toBe(fingerprintSha256(identity.certificateDer));
    expect(await listIdentities(dataDir)).toEqual([aor]);
  });

  it('keys the identity on the canonical AoR', async () => {
    const dataDir = newDataDir();
    const user = `Carol-${randomBytes(3).toString('hex')}`;
    forgetLater(dataDir, `sip:${user}@example.com`);
    const identity = await initIdentity(dataDir, `sip:${user}@EXAMPLE.com;transport=tcp`, { keychain });
    expect(identity.aor).toBe(`sip:${user}@example.com`);
    expect((await loadIdentity(dataDir, `sip:${user}@example.com`, { keychain })).aor).toBe(identity.aor);
    await expect(readIdentityRecord(dataDir, `sip:${user.toLowerCase()}@example.com`)).resolves.toBeUndefined(); // the user part is case-sensitive
    await expect(initIdentity(dataDir, 'tel:+15551234', { keychain })).rejects.toThrow(/sip: or sips:/);
  });

  it('init --rsa makes RSA-2048, whose PKCS#8 fits in a keychain entry', async () => {
    const dataDir = newDataDir();
    const aor = uniqueAor('rsa');
    forgetLater(dataDir, aor);
    const identity = await initIdentity(dataDir, aor, { keychain, algorithm: 'RSA-2048' });
    expect(identity.info.keyAlgorithm).toBe('RSA-2048');
    expect(identity.privateKeyPkcs8.length).toBeGreaterThan(1100);
    expect(findPrivateKey(dataDir, identity.privateKeyPkcs8)).toEqual([]);
    expect((await loadIdentity(dataDir, aor, { keychain })).privateKeyPkcs8).toEqual(identity.privateKeyPkcs8);
  });

  it('refuses a second init, and exports the certificate as PEM', async () => {
    const dataDir = newDataDir();
    const aor = uniqueAor('bob');
    forgetLater(dataDir, aor);
    const identity = await initIdentity(dataDir, aor, { keychain });
    await expect(initIdentity(dataDir, aor, { keychain })).rejects.toMatchObject({ name: 'IdentityError', code: 'exists' });
    const pem = await exportCertificatePem(dataDir, aor);
    expect(pem).toBe(readFileSync(identity.certificatePath, 'utf8'));
    const printed = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: pem, encoding: 'utf8' });
    expect(printed.trim()).toBe(`sha256 Fingerprint=${identity.info.fingerprintSha256}`);
    await expect(exportCertificatePem(dataDir, uniqueAor('nobody'))).rejects.toMatchObject({ code: 'not-found' });
  });

  it('forget deletes the keychain entry and the files; loading then fails with not-found', async () => {
    const dataDir = newDataDir();
    const aor = uniqueAor('dave');
    const identity = await initIdentity(dataDir, aor, { keychain });
    if (identity.key.storage !== 'keychain') throw new Error('unreachable');
    expect(await forgetIdentity(dataDir, aor, { keychain })).toBe(true);
    expect(await keychain.get(identity.key.account)).toBeUndefined();
    expect(() => statSync(identityDir(dataDir, aor))).toThrow();
    await expect(loadIdentity(dataDir, aor, { keychain })).rejects.toMatchObject({ code: 'not-found' });
    expect(await forgetIdentity(dataDir, aor, { keychain })).toBe(false);
  });

  it('a key deleted from the keychain behind our back is reported as key-missing, with what to do', async () => {
    const dataDir = newDataDir();
    const aor = uniqueAor('erin');
    forgetLater(dataDir, aor);
    const identity = await initIdentity(dataDir, aor, { keychain });
    if (identity.key.storage !== 'keychain') throw new Error('unreachable');
    await keychain.delete(identity.key.account);
    const error = await loadIdentity(dataDir, aor, { keychain }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(IdentityError);
    expect(error).toMatchObject({ code: 'key-missing' });
    expect((error as Error).message).toContain(identity.key.account);
    expect((error as Error).message).toMatch(/sipnote keys/);
  });

  it('two data dirs with the same AoR keep separate keys', async () => {
    const [one, two] = [newDataDir(), newDataDir()];
    const aor = uniqueAor('twin');
    forgetLater(one, aor);
    forgetLater(two, aor);
    const first = await initIdentity(one, aor, { keychain });
    const second = await initIdentity(two, aor, { keychain });
    expect(first.key).not.toEqual(second.key);
    await forgetIdentity(one, aor, { keychain });
    expect((await loadIdentity(two, aor, { keychain })).privateKeyPkcs8).toEqual(second.privateKeyPkcs8);
  });

  it('a stored key that does not belong to the certificate is refused (key-mismatch)', async () => {
    const dataDir = newDataDir();
    const aor = uniqueAor('frank');
    forgetLater(dataDir, aor);
    const identity = await initIdentity(dataDir, aor, { keychain });
    if (identity.key.storage !== 'keychain') throw new Error('unreachable');
    const other = await createIdentity({ aor });
    await keychain.set(identity.key.account, other.privateKeyPkcs8);
    await expect(loadIdentity(dataDir, aor, { keychain })).rejects.toMatchObject({ code: 'key-mismatch' });
  });

  describe('import', () => {
    /** An OpenSSL-made identity: SEC 1 EC key, self-signed certificate with the given SAN. */
    function opensslIdentity(san: string): { dir: string; keyPem: string; certPem: string } {
      const dir = tempDir(cleanups, 'sipnote-openssl-');
      execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'key.pem')]);
      execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=Carol', '-days', '30', '-addext', `subjectAltName=${san}`, '-out', join(dir, 'cert.pem')]);
      return { dir, keyPem: readFileSync(join(dir, 'key.pem'), 'utf8'), certPem: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    }

    it('imports an OpenSSL certificate and SEC 1 key; the key goes to the keychain only', async () => {
      const dataDir = newDataDir();
      const aor = uniqueAor('carol');
      forgetLater(dataDir, aor);
      const made = opensslIdentity(`URI:${aor}`);
      expect(made.keyPem).toContain('BEGIN EC PRIVATE KEY');
      const identity = await importIdentity(dataDir, aor, made.certPem, made.keyPem, { keychain });
      expect(identity.info.subject).toBe('CN=Carol');
      expect(findPrivateKey(dataDir, identity.privateKeyPkcs8)).toEqual([]);
      const loaded = await loadIdentity(dataDir, aor, { keychain });
      expect(secretScalar(loaded.privateKeyPkcs8)).toBe(secretScalar(made.keyPem));
      expect(await exportCertificatePem(dataDir, aor)).toBe(made.certPem);
    });

    it('imports a PBES2-encrypted key with its passphrase, and asks for it otherwise', async () => {
      const dataDir = newDataDir();
      const aor = uniqueAor('grace');
      forgetLater(dataDir, aor);
      const made = opensslIdentity(`URI:${aor}`);
      const encrypted = execFileSync('openssl', ['pkcs8', '-topk8', '-in', join(made.dir, 'key.pem'), '-v2', 'aes-128-cbc', '-passout', 'pass:correct horse'], { encoding: 'utf8' });
      expect(encrypted).toContain('BEGIN ENCRYPTED PRIVATE KEY');
      await expect(importIdentity(dataDir, aor, made.certPem, encrypted, { keychain })).rejects.toMatchObject({ code: 'passphrase-required' });
      await expect(importIdentity(dataDir, aor, made.certPem, encrypted, { keychain, privateKeyPassphrase: 'wrong horse' })).rejects.toMatchObject({ code: 'bad-passphrase' });
      const identity = await importIdentity(dataDir, aor, made.certPem, encrypted, { keychain, privateKeyPassphrase: 'correct horse' });
      expect(findPrivateKey(dataDir, identity.privateKeyPkcs8)).toEqual([]);
      expect(secretScalar(identity.privateKeyPkcs8)).toBe(secretScalar(made.keyPem));

      // The same as DER.
      const other = newDataDir();
      forgetLater(other, aor);
      const der = execFileSync('openssl', ['pkcs8', '-topk8', '-in', join(made.dir, 'key.pem'), '-v2', 'aes-256-cbc', '-passout', 'pass:correct horse', '-outform', 'DER']);
      await expect(importIdentity(other, aor, made.certPem, new Uint8Array(der), { keychain })).rejects.toMatchObject({ code: 'passphrase-required' });
      const fromDer = await importIdentity(other, aor, made.certPem, new Uint8Array(der), { keychain, privateKeyPassphrase: 'correct horse' });
      expect(fromDer.privateKeyPkcs8).toEqual(identity.privateKeyPkcs8);
    });

    it('accepts the RFC 3261 §23.1 rfc822Name form user@host', async () => {
      const dataDir = newDataDir();
      const aor = uniqueAor('heidi');
      forgetLater(dataDir, aor);
      const made = opensslIdentity(`email:${aor.slice('sip:'.length)}`);
      expect((await importIdentity(dataDir, aor, made.certPem, made.keyPem, { keychain })).info.emailAddresses).toEqual([aor.slice(4)]);
    });

    it('refuses a certificate of another AoR, a key of another certificate, and garbage; stores nothing then', async () => {
      const dataDir = newDataDir();
      const aor = uniqueAor('ivan');
      const made = opensslIdentity('URI:sip:someone-else@example.com');
      await expect(importIdentity(dataDir, aor, made.certPem, made.keyPem, { keychain })).rejects.toMatchObject({ code: 'aor-mismatch' });
      const other = opensslIdentity(`URI:${aor}`);
      await expect(importIdentity(dataDir, aor, other.certPem, made.keyPem, { keychain })).rejects.toMatchObject({ code: 'key-mismatch' });
      await expect(importIdentity(dataDir, aor, 'not a certificate', made.keyPem, { keychain })).rejects.toMatchObject({ code: 'bad-input' });
      expect(await readIdentityRecord(dataDir, aor)).toBeUndefined();
    });

    it('refuses a key larger than a keychain entry holds on every platform (key-too-large)', async () => {
      const dataDir = newDataDir();
      const aor = uniqueAor('judy');
      const identity = await createIdentity({ aor });
      // PKCS#8 with a 3000-octet attribute (RFC 5958 §2 attributes [0]): a valid key, too large.
      const fields = readSequence(readDer(identity.privateKeyPkcs8, 'PKCS#8'), 'PKCS#8').map((field) => field.bytes);
      const padded = derSequence(...fields, derTlv(0xa0, derSequence(derOid('1.2.3.4'), derTlv(0x31, derOctetString(new Uint8Array(3000))))));
      await expect(importIdentity(dataDir, aor, identity.certificateDer, padded, { keychain })).rejects.toMatchObject({ code: 'key-too-large' });
      expect(await readIdentityRecord(dataDir, aor)).toBeUndefined();
    });
  });
});

describe('without a keychain', () => {
  const unavailable = unavailableKeychain('a keychain that is not there', 'test', 'linux');

  it('init fails with KeychainUnavailableError and writes nothing (no silent fallback to a file)', async () => {
    const dataDir = newDataDir();
    await expect(initIdentity(dataDir, 'sip:nokeychain@example.com', { keychain: unavailable })).rejects.toBeInstanceOf(KeychainUnavailableError);
    expect(() => statSync(dataDir)).toThrow();
  });

  it('forget leaves the identity alone when its key cannot be deleted', async () => {
    const dataDir = newDataDir();
    const aor = 'sip:stuck@example.com';
    const working = new MemoryKeychain();
    await initIdentity(dataDir, aor, { keychain: working });
    await expect(forgetIdentity(dataDir, aor, { keychain: unavailable })).rejects.toBeInstanceOf(KeychainUnavailableError);
    expect(await readIdentityRecord(dataDir, aor)).toBeDefined();
    expect(working.entries.size).toBe(1);
  });

  it('opted in: the key goes to a PBES2 file that openssl opens, and nowhere else', async () => {
    const dataDir = newDataDir();
    const aor = 'sip:offline@example.com';
    const passphrase = 'ein langes Passwort, ünïcode';
    const identity = await initIdentity(dataDir, aor, { keychain: unavailable, passphraseKeyFile: { passphrase } });
    if (identity.key.storage !== 'passphrase-file') throw new Error('expected a passphrase file');
    expect(identity.key.path).toBe(join(identityDir(dataDir, aor), 'private-key.pem'));
    expectModes(dataDir, identity);
    expect(readFileSync(identity.key.path, 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
    expect(findPrivateKey(dataDir, identity.privateKeyPkcs8)).toEqual([]);

    // Standard PKCS#8 + PBES2: OpenSSL decrypts it to the same key (which `openssl pkcs8` prints
    // in the traditional SEC 1 form), and names the algorithms.
    const opened = execFileSync('openssl', ['pkcs8', '-in', identity.key.path, '-passin', `pass:${passphrase}`], { encoding: 'utf8' });
    expect(secretScalar(opened)).toBe(secretScalar(identity.privateKeyPkcs8));
    const structure = execFileSync('openssl', ['asn1parse', '-in', identity.key.path], { encoding: 'utf8' });
    for (const name of ['PBES2', 'PBKDF2', 'hmacWithSHA256', 'aes-256-cbc']) expect(structure).toContain(name);
    expect(structure).toMatch(/INTEGER\s+:0927C0/); // 600000 iterations
    const wrong = spawnSync('openssl', ['pkcs8', '-in', identity.key.path, '-passin', 'pass:not it', '-outform', 'DER']);
    expect(wrong.status).not.toBe(0);

    await expect(loadIdentity(dataDir, aor, { keychain: unavailable })).rejects.toMatchObject({ code: 'passphrase-required' });
    await expect(loadIdentity(dataDir, aor, { keychain: unavailable, passphrase: 'wrong passphrase' })).rejects.toBeInstanceOf(PassphraseKeyError);
    const loaded = await loadIdentity(dataDir, aor, { keychain: unavailable, passphrase });
    expect(loaded.privateKeyPkcs8).toEqual(identity.privateKeyPkcs8);

    // Forgetting needs no keychain for such an identity.
    const keyPath = identity.key.path;
    expect(await forgetIdentity(dataDir, aor, { keychain: unavailable })).toBe(true);
    expect(() => statSync(keyPath)).toThrow();
  });

  it('refuses a short passphrase', async () => {
    const dataDir = newDataDir();
    await expect(initIdentity(dataDir, 'sip:short@example.com', { keychain: unavailable, passphraseKeyFile: { passphrase: 'short' } })).rejects.toMatchObject({
      name: 'PassphraseKeyError',
      code: 'weak-passphrase',
    });
    expect(await readIdentityRecord(dataDir, 'sip:short@example.com')).toBeUndefined();
  });
});

describe('PBES2 EncryptedPrivateKeyInfo', () => {
  it('round-trips, and reads what openssl writes with each PRF, AES key size and 3DES', async () => {
    const { privateKeyPkcs8 } = await createIdentity({ aor: 'sip:pbes2@example.com' });
    const encrypted = await encryptPrivateKeyInfo(privateKeyPkcs8, 'passphrase 1', { iterations: 1000 });
    expect(await decryptPrivateKeyInfo(encrypted, 'passphrase 1')).toEqual(privateKeyPkcs8);
    await expect(decryptPrivateKeyInfo(encrypted, 'passphrase 2')).rejects.toMatchObject({ code: 'bad-passphrase' });

    const dir = tempDir(cleanups, 'sipnote-pbes2-');
    writeFileSync(join(dir, 'plain.pem'), exportPrivateKeyPem(privateKeyPkcs8));
    for (const [cipher, prf] of [['aes-128-cbc', 'hmacWithSHA1'], ['aes-192-cbc', 'hmacWithSHA256'], ['aes-256-cbc', 'hmacWithSHA512'], ['des-ede3-cbc', 'hmacWithSHA256']] as const) {
      const der = execFileSync('openssl', ['pkcs8', '-topk8', '-in', join(dir, 'plain.pem'), '-v2', cipher, '-v2prf', prf, '-iter', '2048', '-passout', 'pass:from openssl', '-outform', 'DER']);
      expect(await decryptPrivateKeyInfo(new Uint8Array(der), 'from openssl'), `${cipher}/${prf}`).toEqual(privateKeyPkcs8);
    }
  });

  it('turns garbage, PBES1 and absurd iteration counts into PassphraseKeyError, not crashes', async () => {
    await expect(decryptPrivateKeyInfo(Uint8Array.of(0x30, 0x03, 0x02, 0x01), 'x')).rejects.toMatchObject({ code: 'malformed' });
    const { privateKeyPkcs8 } = await createIdentity({ aor: 'sip:pbes1@example.com' });
    const dir = tempDir(cleanups, 'sipnote-pbes1-');
    writeFileSync(join(dir, 'plain.pem'), exportPrivateKeyPem(privateKeyPkcs8));
    const pbes1 = spawnSync('openssl', ['pkcs8', '-topk8', '-in', join(dir, 'plain.pem'), '-v1', 'PBE-SHA1-3DES', '-passout', 'pass:legacy', '-outform', 'DER']);
    if (pbes1.status === 0) await expect(decryptPrivateKeyInfo(new Uint8Array(pbes1.stdout), 'legacy')).rejects.toMatchObject({ code: 'unsupported' });
    // A well-formed file asking for 2^31-1 PBKDF2 iterations is refused before any hashing.
    const absurd = derSequence(
      derSequence(
        derOid('1.2.840.113549.1.5.13'),
        derSequence(
          derSequence(derOid('1.2.840.113549.1.5.12'), derSequence(derOctetString(new Uint8Array(16)), derUnsignedInteger(Uint8Array.of(0x7f, 0xff, 0xff, 0xff)), derAlgorithm('1.2.840.113549.2.9', DER_NULL))),
          derSequence(derOid('2.16.840.1.101.3.4.1.42'), derOctetString(new Uint8Array(16))),
        ),
      ),
      derOctetString(new Uint8Array(32)),
    );
    await expect(decryptPrivateKeyInfo(absurd, 'x')).rejects.toMatchObject({ name: 'PassphraseKeyError', code: 'malformed' });
  });
});
