/**
 * Interop of our enveloped messages with the real `openssl cms` (OpenSSL 3.0), both ways:
 * - what encryptAuthEnveloped writes (AES-128-GCM, ECDH sha256kdf + AES-128-KW, RSA-OAEP SHA-256)
 *   decrypts with `openssl cms -decrypt` byte for byte;
 * - what `openssl cms -encrypt` writes (AuthEnvelopedData with -aes-*-gcm, EnvelopedData with
 *   -aes-*-cbc; its default key agreement and key transport, OAEP, -keyid, cofactor ECDH, BER
 *   streaming) decrypts with decryptEnveloped;
 * - tampering and a wrong key end in the right CmsError code.
 * Keys and certificates are made with `openssl req -x509` in a temp folder. Every openssl run is a
 * short child process with a timeout.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptEnveloped, encryptAuthEnveloped, openEnvelope } from '../../main/security/cms/auth-enveloped-data.js';
import { CmsError, pemDecode, readChildren, readDer, readSequence } from '../../main/security/cms/der.js';

interface Party {
  readonly certPath: string;
  readonly keyPath: string;
  readonly certificateDer: Uint8Array;
  readonly privateKeyPkcs8: Uint8Array;
}

let dir = '';
let ec: Party;
let rsa: Party;
let otherEc: Party;
let p384: Party;

/** Runs openssl; resolves with its exit code and stderr (never rejects on a non-zero exit). */
function openssl(args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 20_000 }, (error, _stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? Number(error.code) : 0, stderr: String(stderr) });
    });
  });
}

async function makeParty(name: string, keyArgs: readonly string[]): Promise<Party> {
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  const made = await openssl([
    'req', '-x509', ...keyArgs, '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '30',
    '-subj', `/CN=${name}`, '-addext', `subjectAltName=URI:sip:${name}@example.org`,
  ]);
  expect(made.code, made.stderr).toBe(0);
  return {
    certPath,
    keyPath,
    certificateDer: pemDecode(readFileSync(certPath, 'utf8')).der,
    privateKeyPkcs8: pemDecode(readFileSync(keyPath, 'utf8')).der,
  };
}

let counter = 0;
function file(data?: Uint8Array): string {
  const path = join(dir, `f${counter++}`);
  if (data) writeFileSync(path, data);
  return path;
}

/** `openssl cms -encrypt -binary <cipher> … -outform DER`; each recipient is `-recip cert` plus its `-keyopt`s. */
async function opensslEncrypt(content: Uint8Array, cipher: string, recipients: readonly (readonly [Party, ...string[]])[], extra: readonly string[] = []): Promise<Uint8Array> {
  const out = file();
  const args = ['cms', '-encrypt', '-binary', cipher, '-in', file(content), '-outform', 'DER', '-out', out, ...extra];
  for (const [party, ...options] of recipients) args.push('-recip', party.certPath, ...options);
  const result = await openssl(args);
  expect(result.code, result.stderr).toBe(0);
  return new Uint8Array(readFileSync(out));
}

async function opensslDecrypt(der: Uint8Array, party: Party): Promise<{ code: number; content: Uint8Array; stderr: string }> {
  const out = file();
  const result = await openssl(['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', file(der), '-recip', party.certPath, '-inkey', party.keyPath, '-out', out]);
  return { ...result, content: result.code === 0 ? new Uint8Array(readFileSync(out)) : new Uint8Array() };
}

async function rejection(promise: Promise<unknown>): Promise<CmsError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(CmsError);
  return error as CmsError;
}

/** A MIME entity with CRLFs and every octet value, as a signed-data body would be. */
function sampleContent(size = 3000): Uint8Array {
  const head = new TextEncoder().encode('Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: binary\r\n\r\n');
  const out = new Uint8Array(head.length + size);
  out.set(head);
  out.set(randomBytes(size), head.length);
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipnote-cms-'));
  [ec, rsa, otherEc, p384] = await Promise.all([
    makeParty('bob-ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    makeParty('bob-rsa', ['-newkey', 'rsa:2048']),
    makeParty('eve-ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    makeParty('carol-p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']),
  ]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('encryptAuthEnveloped → openssl cms -decrypt', () => {
  it.each([
    ['an EC P-256 certificate (ECDH, sha256kdf, AES-128-KW)', () => ec],
    ['an RSA-2048 certificate (RSA-OAEP SHA-256)', () => rsa],
    ['an EC P-384 certificate', () => p384],
  ])('decrypts byte for byte for %s', async (_label, party) => {
    const content = sampleContent();
    const der = await encryptAuthEnveloped({ content, recipients: [{ certificateDer: party().certificateDer }] });
    const result = await opensslDecrypt(der, party());
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(Buffer.from(result.content).equals(Buffer.from(content))).toBe(true);
  });

  it('wraps one content key for every recipient: each decrypts the same message', async () => {
    const content = sampleContent(100);
    const der = await encryptAuthEnveloped({ content, recipients: [{ certificateDer: ec.certificateDer }, { certificateDer: rsa.certificateDer }] });
    for (const party of [ec, rsa]) {
      const result = await opensslDecrypt(der, party);
      expect(result.code, result.stderr).toBe(0);
      expect(Buffer.from(result.content).equals(Buffer.from(content))).toBe(true);
    }
    expect((await opensslDecrypt(der, otherEc)).code).not.toBe(0);
  });

  it('empty content decrypts to empty content', async () => {
    const der = await encryptAuthEnveloped({ content: new Uint8Array(), recipients: [{ certificateDer: ec.certificateDer }] });
    const result = await opensslDecrypt(der, ec);
    expect(result.code, result.stderr).toBe(0);
    expect(result.content.length).toBe(0);
  });

  it('openssl refuses our message once a ciphertext or tag octet is flipped', async () => {
    const der = await encryptAuthEnveloped({ content: sampleContent(50), recipients: [{ certificateDer: ec.certificateDer }] });
    for (const offset of [der.length - 1, der.length - 20]) {
      const tampered = Uint8Array.from(der);
      tampered[offset] = (tampered[offset] as number) ^ 0x01;
      expect((await opensslDecrypt(tampered, ec)).code).not.toBe(0);
    }
  });

  it('writes the RSAES-OAEP parameters exactly as openssl -keyopt rsa_oaep_md:sha256 does', async () => {
    const keyEncryptionAlgorithm = (der: Uint8Array): string => {
      const [, explicit] = readSequence(readDer(der, 'ci'), 'ci');
      const [authEnveloped] = readChildren(explicit!, 'content');
      const [, recipientInfos] = readSequence(authEnveloped, 'AuthEnvelopedData');
      const [ktri] = readChildren(recipientInfos!, 'RecipientInfos');
      return Buffer.from(readSequence(ktri, 'ktri')[2]!.bytes).toString('hex');
    };
    const ours = await encryptAuthEnveloped({ content: new Uint8Array([1]), recipients: [{ certificateDer: rsa.certificateDer }] });
    const theirs = await opensslEncrypt(new Uint8Array([1]), '-aes-128-gcm', [[rsa, '-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256']]);
    expect(keyEncryptionAlgorithm(ours)).toBe(keyEncryptionAlgorithm(theirs));
  });
});

describe('openssl cms -encrypt → decryptEnveloped', () => {
  const OAEP_SHA256 = ['-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256'];
  const cases: [string, string, () => Party, string[], string[]][] = [
    ['AES-128-GCM, EC, openssl default KDF (sha1kdf)', '-aes-128-gcm', () => ec, [], []],
    ['AES-128-GCM, EC, sha256kdf (RFC 8591 §4.2)', '-aes-128-gcm', () => ec, ['-keyopt', 'ecdh_kdf_md:sha256'], []],
    ['AES-256-GCM, EC, sha512kdf + AES-256-KW', '-aes-256-gcm', () => ec, ['-keyopt', 'ecdh_kdf_md:sha512'], []],
    ['AES-128-GCM, EC, cofactor ECDH', '-aes-128-gcm', () => ec, ['-keyopt', 'ecdh_cofactor_mode:1', '-keyopt', 'ecdh_kdf_md:sha256'], []],
    ['AES-128-GCM, EC, recipient by key id (rKeyId)', '-aes-128-gcm', () => ec, ['-keyopt', 'ecdh_kdf_md:sha256'], ['-keyid']],
    ['AES-128-GCM, EC P-384', '-aes-128-gcm', () => p384, ['-keyopt', 'ecdh_kdf_md:sha384'], []],
    ['AES-128-GCM, EC, BER streaming (indefinite lengths, segmented content)', '-aes-128-gcm', () => ec, [], ['-stream']],
    ['AES-128-GCM, RSA, openssl default (PKCS#1 v1.5 key transport)', '-aes-128-gcm', () => rsa, [], []],
    ['AES-128-GCM, RSA-OAEP default (SHA-1)', '-aes-128-gcm', () => rsa, ['-keyopt', 'rsa_padding_mode:oaep'], []],
    ['AES-128-GCM, RSA-OAEP SHA-256', '-aes-128-gcm', () => rsa, OAEP_SHA256, []],
    ['AES-256-GCM, RSA-OAEP SHA-256, recipient by key id', '-aes-256-gcm', () => rsa, OAEP_SHA256, ['-keyid']],
    ['AES-128-CBC EnvelopedData, EC sha256kdf', '-aes-128-cbc', () => ec, ['-keyopt', 'ecdh_kdf_md:sha256'], []],
    ['AES-256-CBC EnvelopedData, EC default', '-aes-256-cbc', () => ec, [], []],
    ['AES-192-CBC EnvelopedData, RSA PKCS#1 v1.5', '-aes-192-cbc', () => rsa, [], []],
    ['AES-256-CBC EnvelopedData, RSA-OAEP SHA-256', '-aes-256-cbc', () => rsa, OAEP_SHA256, []],
    ['AES-128-CBC EnvelopedData, RSA, BER streaming', '-aes-128-cbc', () => rsa, [], ['-stream']],
  ];
  it.each(cases)('%s', async (_label, cipher, party, keyOptions, extra) => {
    const content = sampleContent(1500);
    const der = await opensslEncrypt(content, cipher, [[party(), ...keyOptions]], extra);
    const opened = await openEnvelope(der, party());
    expect(Buffer.from(opened.content).equals(Buffer.from(content))).toBe(true);
    expect(opened.authenticated).toBe(cipher.endsWith('gcm'));
    expect(opened.contentType).toBe('1.2.840.113549.1.7.1');
  });

  it('a message for two recipients (EC and RSA) opens for each', async () => {
    const content = sampleContent(10);
    const der = await opensslEncrypt(content, '-aes-128-gcm', [[ec, '-keyopt', 'ecdh_kdf_md:sha256'], [rsa, ...OAEP_SHA256]]);
    for (const party of [ec, rsa]) expect(Buffer.from(await decryptEnveloped(der, party)).equals(Buffer.from(content))).toBe(true);
  });
});

describe('failures', () => {
  it("a flipped ciphertext or tag octet in openssl's GCM output is 'decryption-failed'", async () => {
    const der = await opensslEncrypt(sampleContent(64), '-aes-128-gcm', [[ec, '-keyopt', 'ecdh_kdf_md:sha256']]);
    // The mac is the last 16 octets; the ciphertext ends just before its 2-octet header.
    for (const offset of [der.length - 1, der.length - 16, der.length - 19]) {
      const tampered = Uint8Array.from(der);
      tampered[offset] = (tampered[offset] as number) ^ 0x80;
      expect((await rejection(decryptEnveloped(tampered, ec))).code).toBe('decryption-failed');
    }
  });

  it("a flipped octet of a PKCS#1 v1.5 encrypted key is 'decryption-failed', not a padding oracle", async () => {
    const der = await opensslEncrypt(sampleContent(64), '-aes-128-gcm', [[rsa]]);
    const index = Buffer.from(der).indexOf(Buffer.from([0x04, 0x82, 0x01, 0x00])); // encryptedKey OCTET STRING (256 octets)
    expect(index).toBeGreaterThan(0);
    const tampered = Uint8Array.from(der);
    tampered[index + 10] = (tampered[index + 10] as number) ^ 0x01;
    expect((await rejection(decryptEnveloped(tampered, rsa))).code).toBe('decryption-failed');
  });

  it("a message for someone else is 'no-recipient'", async () => {
    const der = await opensslEncrypt(sampleContent(10), '-aes-128-gcm', [[ec], [rsa]]);
    expect((await rejection(decryptEnveloped(der, otherEc))).code).toBe('no-recipient');
    const cbc = await opensslEncrypt(sampleContent(10), '-aes-128-cbc', [[ec]]);
    expect((await rejection(decryptEnveloped(cbc, otherEc))).code).toBe('no-recipient');
  });

  it("our certificate with someone else's key is 'decryption-failed'", async () => {
    const der = await opensslEncrypt(sampleContent(10), '-aes-128-gcm', [[ec]]);
    const mixed = { certificateDer: ec.certificateDer, privateKeyPkcs8: otherEc.privateKeyPkcs8 };
    expect((await rejection(decryptEnveloped(der, mixed))).code).toBe('decryption-failed');
  });

  it("an RSA key with an EC certificate's message is 'key-mismatch'", async () => {
    const der = await opensslEncrypt(sampleContent(10), '-aes-128-gcm', [[ec]]);
    const mixed = { certificateDer: ec.certificateDer, privateKeyPkcs8: rsa.privateKeyPkcs8 };
    expect((await rejection(decryptEnveloped(der, mixed))).code).toBe('key-mismatch');
  });
});
