/**
 * main/security/pkcs12.ts against PKCS#12 files that the real `openssl pkcs12 -export` writes
 * at test time: OpenSSL 3 defaults (PBES2/AES-256-CBC, MAC SHA-256), `-legacy` (RC2-40
 * certificates, 3DES key, MAC SHA-1), other PBEs and MACs, no MAC, no encryption, empty and
 * non-ASCII passphrases, a CA chain; then every kind of bad input, each a typed Pkcs12Error,
 * and a bounded fast-check fuzz (fixed seed) in which nothing else may escape.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importIdentity, readCertificate } from '../../main/security/certificates.js';
import { derExplicit, derOctetString, derOid, derSequence, derSmallInteger, derUnsignedInteger, pemDecode, readDer, readSequence, type DerElement } from '../../main/security/cms/der.js';
import { Pkcs12Error, looksLikePkcs12, openPkcs12, pkcs12Kdf, type Pkcs12Contents, type Pkcs12ErrorCode } from '../../main/security/pkcs12.js';

const PASS = 'correct horse';
let dir: string;

function openssl(args: readonly string[]): Buffer {
  return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `openssl pkcs12 -export` of key + certificate (+ extra args); returns the file's bytes. */
function exportP12(name: string, key: string, cert: string, extra: readonly string[], passphrase = PASS): Uint8Array {
  openssl(['pkcs12', '-export', '-inkey', key, '-in', cert, '-out', name, '-passout', `pass:${passphrase}`, ...extra]);
  return new Uint8Array(readFileSync(join(dir, name)));
}

const pem = (name: string): string => readFileSync(join(dir, name), 'latin1');
const certDer = (name: string): Uint8Array => pemDecode(pem(name)).der;

/** The PKCS#8 DER of a PEM key file, as OpenSSL re-encodes it (so two encodings compare equal). */
function normalisedKey(pkcs8OrPem: Uint8Array | string): string {
  const key = typeof pkcs8OrPem === 'string' ? createPrivateKey(pkcs8OrPem) : createPrivateKey({ key: Buffer.from(pkcs8OrPem), format: 'der', type: 'pkcs8' });
  return key.export({ type: 'pkcs8', format: 'der' }).toString('hex');
}

async function expectError(promise: Promise<unknown>, code: Pkcs12ErrorCode, message?: RegExp): Promise<Pkcs12Error> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(Pkcs12Error);
  expect((error as Pkcs12Error).code).toBe(code);
  if (message) expect((error as Pkcs12Error).message).toMatch(message);
  return error as Pkcs12Error;
}

const files: Record<string, Uint8Array> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipnote-p12-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ec.key', '-out', 'ec.crt', '-days', '30', '-subj', '/CN=EC', '-addext', 'subjectAltName=URI:sip:ec@example.com']);
  // A CA and an RSA-2048 end-entity certificate it issued, with an intermediate: a corporate PKI.
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=Root CA']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'sub.key', '-out', 'sub.csr', '-subj', '/CN=Issuing CA']);
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\n');
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=URI:sip:rsa@example.com\n');
  openssl(['x509', '-req', '-in', 'sub.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'sub.crt', '-days', '30', '-extfile', 'ca.ext']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-out', 'rsa.csr', '-subj', '/CN=RSA']);
  openssl(['x509', '-req', '-in', 'rsa.csr', '-CA', 'sub.crt', '-CAkey', 'sub.key', '-CAcreateserial', '-out', 'rsa.crt', '-days', '30', '-extfile', 'leaf.ext']);
  writeFileSync(join(dir, 'chain.pem'), pem('sub.crt') + pem('ca.crt'));

  files.ecDefault = exportP12('ec-default.p12', 'ec.key', 'ec.crt', []);
  files.ecLegacy = exportP12('ec-legacy.p12', 'ec.key', 'ec.crt', ['-legacy']);
  files.rsaChain = exportP12('rsa-chain.p12', 'rsa.key', 'rsa.crt', ['-certfile', 'chain.pem']);
  files.rsaChainLegacy = exportP12('rsa-chain-legacy.p12', 'rsa.key', 'rsa.crt', ['-certfile', 'chain.pem', '-legacy']);
  files.noMac = exportP12('no-mac.p12', 'ec.key', 'ec.crt', ['-nomac']);
  files.noMacLegacy = exportP12('no-mac-legacy.p12', 'ec.key', 'ec.crt', ['-nomac', '-legacy']);
  files.plain = exportP12('plain.p12', 'ec.key', 'ec.crt', ['-keypbe', 'NONE', '-certpbe', 'NONE']);
  files.plainNoMac = exportP12('plain-no-mac.p12', 'ec.key', 'ec.crt', ['-keypbe', 'NONE', '-certpbe', 'NONE', '-nomac']);
  files.sha512 = exportP12('sha512.p12', 'ec.key', 'ec.crt', ['-macalg', 'sha512', '-keypbe', 'aes-128-cbc', '-certpbe', 'des-ede3-cbc']);
  files.sha1Mac = exportP12('sha1.p12', 'rsa.key', 'rsa.crt', ['-macalg', 'sha1', '-nomaciter', '-iter', '1']);
  files.twoKeyDes = exportP12('2des.p12', 'ec.key', 'ec.crt', ['-legacy', '-keypbe', 'PBE-SHA1-2DES', '-certpbe', 'PBE-SHA1-RC2-128']);
  files.tripleDesCerts = exportP12('descert.p12', 'ec.key', 'ec.crt', ['-descert']);
  files.rc4 = exportP12('rc4.p12', 'ec.key', 'ec.crt', ['-legacy', '-keypbe', 'PBE-SHA1-RC4-128']);
  files.empty = exportP12('empty.p12', 'ec.key', 'ec.crt', [], '');
  files.emptyLegacy = exportP12('empty-legacy.p12', 'ec.key', 'ec.crt', ['-legacy'], '');
  files.unicode = exportP12('unicode.p12', 'ec.key', 'ec.crt', [], 'pässwörd ☎');
  files.unicodeLegacy = exportP12('unicode-legacy.p12', 'ec.key', 'ec.crt', ['-legacy'], 'pässwörd ☎');
  files.keyOnly = new Uint8Array(openssl(['pkcs12', '-export', '-inkey', 'ec.key', '-nocerts', '-passout', `pass:${PASS}`]));
  files.certOnly = new Uint8Array(openssl(['pkcs12', '-export', '-in', 'ec.crt', '-nokeys', '-passout', `pass:${PASS}`]));
  files.otherCert = new Uint8Array(openssl(['pkcs12', '-export', '-inkey', 'ec.key', '-nocerts', '-certfile', 'rsa.crt', '-passout', `pass:${PASS}`]));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function expectEcIdentity(contents: Pkcs12Contents): void {
  expect(Buffer.from(contents.certificateDer).equals(Buffer.from(certDer('ec.crt')))).toBe(true);
  expect(normalisedKey(contents.privateKeyPkcs8)).toBe(normalisedKey(pem('ec.key')));
  expect(contents.otherCertificates).toEqual([]);
}

describe('openPkcs12 with files from openssl pkcs12 -export', () => {
  it('reads the OpenSSL 3 default (PBES2 AES-256-CBC, MAC SHA-256) with an EC P-256 key', async () => {
    const contents = await openPkcs12(files.ecDefault as Uint8Array, PASS);
    expectEcIdentity(contents);
    expect(contents.protection).toEqual({ integrity: 'MAC SHA-256', encryption: ['PBES2 aes-256-cbc'] });
    // What comes out is what the identity store takes: the key signs for the certificate.
    const identity = await importIdentity(contents.certificateDer, contents.privateKeyPkcs8);
    expect(identity.info.sipUris).toEqual(['sip:ec@example.com']);
  });

  it('reads -legacy: certificates under RC2-40, the key under 3DES, MAC SHA-1', async () => {
    const contents = await openPkcs12(files.ecLegacy as Uint8Array, PASS);
    expectEcIdentity(contents);
    expect(contents.protection).toEqual({ integrity: 'MAC SHA-1', encryption: ['pbeWithSHAAnd40BitRC2-CBC', 'pbeWithSHAAnd3-KeyTripleDES-CBC'] });
  });

  it.each(['rsaChain', 'rsaChainLegacy'])('%s: picks the RSA-2048 key and its certificate out of a chain, and returns the CA certificates', async (name) => {
    const contents = await openPkcs12(files[name] as Uint8Array, PASS);
    expect(Buffer.from(contents.certificateDer).equals(Buffer.from(certDer('rsa.crt')))).toBe(true);
    expect(normalisedKey(contents.privateKeyPkcs8)).toBe(normalisedKey(pem('rsa.key')));
    const chain = contents.otherCertificates.map((der) => Buffer.from(der).toString('hex')).sort();
    expect(chain).toEqual([certDer('sub.crt'), certDer('ca.crt')].map((der) => Buffer.from(der).toString('hex')).sort());
    expect((await importIdentity(contents.certificateDer, contents.privateKeyPkcs8)).info.keyAlgorithm).toBe('RSA-2048');
  });

  it.each([
    ['noMac', 'none', ['PBES2 aes-256-cbc']],
    // OpenSSL leaves the certificates unencrypted with -nomac -legacy.
    ['noMacLegacy', 'none', ['pbeWithSHAAnd3-KeyTripleDES-CBC']],
    ['plain', 'MAC SHA-256', []],
    ['sha512', 'MAC SHA-512', ['PBES2 des-ede3-cbc', 'PBES2 aes-128-cbc']],
    ['twoKeyDes', 'MAC SHA-1', ['pbeWithSHAAnd128BitRC2-CBC', 'pbeWithSHAAnd2-KeyTripleDES-CBC']],
    ['tripleDesCerts', 'MAC SHA-256', ['pbeWithSHAAnd3-KeyTripleDES-CBC', 'PBES2 aes-256-cbc']],
  ] as Array<[string, string, string[]]>)('reads %s (integrity %s)', async (name, integrity, encryption) => {
    const contents = await openPkcs12(files[name] as Uint8Array, PASS);
    expectEcIdentity(contents);
    expect(contents.protection).toEqual({ integrity, encryption });
  });

  it('reads a MAC with SHA-1 and the DEFAULT of one iteration (-nomaciter, -iter 1)', async () => {
    const contents = await openPkcs12(files.sha1Mac as Uint8Array, PASS);
    expect(contents.protection.integrity).toBe('MAC SHA-1');
    expect(Buffer.from(contents.certificateDer).equals(Buffer.from(certDer('rsa.crt')))).toBe(true);
  });

  it.each(['empty', 'emptyLegacy'])('%s: opens a file exported with an empty passphrase', async (name) => {
    expectEcIdentity(await openPkcs12(files[name] as Uint8Array, ''));
    await expectError(openPkcs12(files[name] as Uint8Array, 'something'), 'bad-passphrase');
  });

  it.each(['unicode', 'unicodeLegacy'])('%s: a non-ASCII passphrase is taken as OpenSSL takes it (BMPString for the MAC, UTF-8 for PBES2)', async (name) => {
    expectEcIdentity(await openPkcs12(files[name] as Uint8Array, 'pässwörd ☎'));
    await expectError(openPkcs12(files[name] as Uint8Array, 'passwort ☎'), 'bad-passphrase');
  });

  it('recognises PKCS#12 by content, also when truncated, and nothing else', () => {
    for (const bytes of Object.values(files)) expect(looksLikePkcs12(bytes)).toBe(true);
    expect(looksLikePkcs12((files.ecDefault as Uint8Array).subarray(0, 30))).toBe(true);
    expect(looksLikePkcs12(certDer('ec.crt'))).toBe(false);
    expect(looksLikePkcs12(new Uint8Array(readFileSync(join(dir, 'ec.key'))))).toBe(false);
    expect(looksLikePkcs12(new Uint8Array(0))).toBe(false);
    expect(looksLikePkcs12(Uint8Array.of(0x30))).toBe(false);
  });
});

describe('openPkcs12 refuses bad input with a typed error', () => {
  it.each(['ecDefault', 'ecLegacy', 'rsaChain'])('%s: a wrong passphrase is bad-passphrase (the MAC says so)', async (name) => {
    await expectError(openPkcs12(files[name] as Uint8Array, 'wrong horse'), 'bad-passphrase', /wrong passphrase/);
  });

  it.each(['noMac', 'noMacLegacy'])('%s: without a MAC a wrong passphrase is still bad-passphrase (the decryption says so)', async (name) => {
    // Random wrong passphrases: about 1 in 256 decrypts to valid padding and must still be caught.
    for (let i = 0; i < 20; i++) await expectError(openPkcs12(files[name] as Uint8Array, randomBytes(6).toString('hex')), 'bad-passphrase', /wrong passphrase/);
  });

  it('a truncated file is malformed', async () => {
    const whole = files.ecDefault as Uint8Array;
    for (const length of [1, 2, 10, 100, whole.length - 1]) await expectError(openPkcs12(whole.subarray(0, length), PASS), 'malformed');
  });

  it('a random file, a certificate, a PEM key and empty input are malformed', async () => {
    await expectError(openPkcs12(randomBytes(2000), PASS), 'malformed', /not a PKCS#12/);
    await expectError(openPkcs12(certDer('ec.crt'), PASS), 'malformed');
    await expectError(openPkcs12(new Uint8Array(readFileSync(join(dir, 'ec.key'))), PASS), 'malformed');
    await expectError(openPkcs12(new Uint8Array(0), PASS), 'malformed');
    await expectError(openPkcs12(new Uint8Array(2 << 20), PASS), 'malformed', /too large/);
  });

  it('a flipped bit under the MAC is reported as a bad passphrase or alteration', async () => {
    const altered = new Uint8Array(files.ecDefault as Uint8Array);
    altered[200] = (altered[200] as number) ^ 1;
    await expectError(openPkcs12(altered, PASS), 'bad-passphrase', /altered/);
  });

  it('no key, no matching certificate', async () => {
    await expectError(openPkcs12(files.certOnly as Uint8Array, PASS), 'no-key', /no private key/);
    await expectError(openPkcs12(files.keyOnly as Uint8Array, PASS), 'no-certificate', /0 other/);
    await expectError(openPkcs12(files.otherCert as Uint8Array, PASS), 'no-certificate', /1 other/);
  });

  it('an RC4-encrypted key is unsupported, and the error names the algorithm and the openssl command to re-export', async () => {
    const error = await expectError(openPkcs12(files.rc4 as Uint8Array, PASS), 'unsupported', /pbeWithSHAAnd128BitRC4/);
    expect(error.message).toContain('openssl pkcs12 -in OLD.p12 -legacy -nodes | openssl pkcs12 -export -out NEW.p12');
  });

  /** `bytes` with the first occurrence of the hex string `from` replaced by `to` (same length). */
  function patched(bytes: Uint8Array, from: string, to: string): Uint8Array {
    const hex = Buffer.from(bytes).toString('hex');
    const at = hex.indexOf(from);
    expect(at % 2).toBe(0);
    return new Uint8Array(Buffer.from(hex.slice(0, at) + to + hex.slice(at + from.length), 'hex'));
  }

  it('modes and MACs not read are unsupported, named, with the re-export command', async () => {
    const sha256Oid = '0609608648016503040201';
    const pbmac1Oid = '06092a864886f70d01050e';
    const pbmac1 = await expectError(openPkcs12(patched(files.ecDefault as Uint8Array, sha256Oid, pbmac1Oid), PASS), 'unsupported', /PBMAC1/);
    expect(pbmac1.message).toContain('openssl pkcs12 -export');
    const data = '06092a864886f70d010701';
    await expectError(openPkcs12(patched(files.ecDefault as Uint8Array, data, '06092a864886f70d010702'), PASS), 'unsupported', /public-key integrity mode/);
    // The default file without its MacData, so that the change below is not caught by the MAC.
    const [version, authSafe] = readSequence(readDer(files.ecDefault as Uint8Array, 'PFX'), 'PFX');
    const noMac = derSequence((version as DerElement).bytes, (authSafe as DerElement).bytes);
    expectEcIdentity(await openPkcs12(noMac, PASS));
    const encryptedData = '06092a864886f70d010706';
    await expectError(openPkcs12(patched(noMac, encryptedData, '06092a864886f70d010703'), PASS), 'unsupported', /public-key privacy mode/);
  });

  it('a file asking for too much key derivation in all is refused', async () => {
    // -legacy, 2048 iterations each: MAC 2048, RC2-40 key and IV 2 × 2048, the 3DES key in two
    // SHA-1 blocks and its IV 3 × 2048: 12288 in all, more than 4 × 3000.
    await expectError(openPkcs12(files.ecLegacy as Uint8Array, PASS, { maxIterations: 3000 }), 'unsupported', /more than 12000 key-derivation iterations in all/);
    expectEcIdentity(await openPkcs12(files.ecLegacy as Uint8Array, PASS, { maxIterations: 4000 }));
  });

  it('a huge iteration count is refused before any hashing', async () => {
    const started = Date.now();
    await expectError(openPkcs12(files.ecDefault as Uint8Array, PASS, { maxIterations: 2000 }), 'unsupported', /2048 is more than the 2000/);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('openPkcs12 with hand-built files', () => {
  const oid = {
    data: '1.2.840.113549.1.7.1',
    keyBag: '1.2.840.113549.1.12.10.1.1',
    certBag: '1.2.840.113549.1.12.10.1.3',
    x509: '1.2.840.113549.1.9.22.1',
  };
  const pkcs8 = (file: string): Uint8Array => new Uint8Array(createPrivateKey(pem(file)).export({ type: 'pkcs8', format: 'der' }));
  const keyBag = (file: string): Uint8Array => derSequence(derOid(oid.keyBag), derExplicit(0, pkcs8(file)));
  const certBag = (file: string): Uint8Array => derSequence(derOid(oid.certBag), derExplicit(0, derSequence(derOid(oid.x509), derExplicit(0, derOctetString(certDer(file))))));
  /** A PFX without MAC or encryption holding `bags` in one SafeContents (RFC 7292 §4). */
  const pfx = (bags: readonly Uint8Array[]): Uint8Array => {
    const safeContents = derSequence(...bags);
    const authenticatedSafe = derSequence(derSequence(derOid(oid.data), derExplicit(0, derOctetString(safeContents))));
    return derSequence(derSmallInteger(3), derSequence(derOid(oid.data), derExplicit(0, derOctetString(authenticatedSafe))));
  };

  it('refuses a file with two identities as several-keys, and picks the matching pair in any order', async () => {
    await expectError(openPkcs12(pfx([keyBag('ec.key'), certBag('ec.crt'), keyBag('rsa.key'), certBag('rsa.crt')]), ''), 'several-keys', /2 keys/);
    const contents = await openPkcs12(pfx([certBag('ca.crt'), certBag('rsa.crt'), certBag('sub.crt'), keyBag('rsa.key')]), '');
    expect(Buffer.from(contents.certificateDer).equals(Buffer.from(certDer('rsa.crt')))).toBe(true);
    expect(contents.otherCertificates.length).toBe(2);
    expect(contents.protection).toEqual({ integrity: 'none', encryption: [] });
  });

  it('an empty passphrase also verifies as no password at all (zero octets, OpenSSL\'s NULL password)', async () => {
    const safeContents = derSequence(keyBag('ec.key'), certBag('ec.crt'));
    const authenticatedSafe = derSequence(derSequence(derOid(oid.data), derExplicit(0, derOctetString(safeContents))));
    const salt = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    const macKey = pkcs12Kdf('sha256', 64, new Uint8Array(0), salt, 3, 2048, 32);
    const mac = new Uint8Array(createHmac('sha256', macKey).update(authenticatedSafe).digest());
    const macData = derSequence(derSequence(derSequence(derOid('2.16.840.1.101.3.4.2.1'), Uint8Array.of(5, 0)), derOctetString(mac)), derOctetString(salt), derUnsignedInteger(Uint8Array.of(8, 0)));
    const file = derSequence(derSmallInteger(3), derSequence(derOid(oid.data), derExplicit(0, derOctetString(authenticatedSafe))), macData);
    const contents = await openPkcs12(file, '');
    expectEcIdentity(contents);
    expect(contents.protection.integrity).toBe('MAC SHA-256');
    await expectError(openPkcs12(file, 'x'), 'bad-passphrase');
  });

  it('reads BER as Windows writes it: indefinite lengths and a constructed OCTET STRING in pieces', async () => {
    const indefinite = (tag: number, ...content: readonly Uint8Array[]): Uint8Array => Uint8Array.from([tag, 0x80, ...content.flatMap((part) => [...part]), 0, 0]);
    const pieces = (bytes: Uint8Array): Uint8Array => indefinite(0x24, derOctetString(bytes.subarray(0, 7)), derOctetString(bytes.subarray(7)));
    const safeContents = derSequence(keyBag('ec.key'), certBag('ec.crt'));
    const authenticatedSafe = indefinite(0x30, indefinite(0x30, derOid(oid.data), indefinite(0xa0, pieces(safeContents))));
    const file = indefinite(0x30, derSmallInteger(3), indefinite(0x30, derOid(oid.data), indefinite(0xa0, pieces(authenticatedSafe))));
    expect(looksLikePkcs12(file)).toBe(true);
    expectEcIdentity(await openPkcs12(file, ''));
  });
});

describe('pkcs12Kdf (RFC 7292 appendix B.2)', () => {
  const bmp = (text: string): Uint8Array => Uint8Array.from([...Buffer.from(text, 'utf16le').swap16(), 0, 0]);
  // The long-standing known answers of the OpenSSL and Bouncy Castle test suites (SHA-1).
  it.each([
    ['smeg', '0A58CF64530D823F', 1, 1, 24, '8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3'],
    ['smeg', '0A58CF64530D823F', 2, 1, 8, '79993DFE048D3B76'],
    ['queeg', '1682C0FC5B3F7EC5', 1, 1000, 24, '483DD6E919D7DE2E8E648BA8F862F3FBFBDC2BCB2C02957F'],
  ] as Array<[string, string, 1 | 2 | 3, number, number, string]>)('password %s, salt %s, ID %i, %i iterations: %i octets', (password, salt, id, iterations, length, expected) => {
    const derived = pkcs12Kdf('sha1', 64, bmp(password), new Uint8Array(Buffer.from(salt, 'hex')), id, iterations, length);
    expect(Buffer.from(derived).toString('hex').toUpperCase()).toBe(expected);
  });
});

describe('openPkcs12 fuzz (fixed seed)', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
    let bytes = Array.from(input);
    for (const m of mutations) {
      const at = bytes.length === 0 ? 0 : m.at % bytes.length;
      if (m.kind === 'flip') bytes[at] = m.value;
      else if (m.kind === 'insert') bytes.splice(at, 0, ...m.bytes);
      else if (m.kind === 'delete') bytes.splice(at, m.length);
      else bytes = bytes.slice(0, at);
    }
    return Uint8Array.from(bytes);
  }

  /** Opens the bytes; returns the outcome ('ok' or the error code); anything but a Pkcs12Error fails the test. */
  async function outcome(bytes: Uint8Array, passphrase: string): Promise<string> {
    try {
      const contents = await openPkcs12(bytes, passphrase, { maxIterations: 4096 });
      readCertificate(contents.certificateDer);
      return 'ok';
    } catch (error) {
      if (!(error instanceof Pkcs12Error)) throw error;
      // openPkcs12 wraps even its own bugs in a Pkcs12Error; a programming error as the cause is one.
      if (error.cause instanceof TypeError || error.cause instanceof RangeError || error.cause instanceof ReferenceError) throw error.cause;
      return error.code;
    }
  }

  // Insertions, deletions and truncations mostly break the outer DER lengths; byte flips keep
  // the shape and reach the MAC, the decryption, the bag, certificate and key parsers. Without
  // a MAC (and with plain bags) a flip goes all the way to node:crypto's key import.
  it.each([
    ['plainNoMac', 400],
    ['noMac', 200],
    ['noMacLegacy', 150],
    ['ecDefault', 100],
    ['rsaChainLegacy', 60],
  ] as Array<[string, number]>)('mutated %s: only Pkcs12Error escapes', async (name, numRuns) => {
    const seedFile = files[name] as Uint8Array;
    const seen = new Set<string>();
    const flips = fc.array(fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(fc.oneof(flips, fc.array(mutation, { minLength: 1, maxLength: 4 })), async (mutations) => {
        seen.add(await outcome(mutate(seedFile, mutations), PASS));
      }),
      { numRuns, seed: 0x5117_0012 },
    );
    // The fuzz got past the first check: more than one kind of outcome.
    expect(seen.size).toBeGreaterThan(1);
  }, 60_000);

  it('arbitrary bytes behind a PFX header: only Pkcs12Error escapes', async () => {
    const header = (files.plain as Uint8Array).subarray(0, 24);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.boolean(), async (tail, withHeader) => {
        await outcome(withHeader ? Uint8Array.from([...header, ...tail]) : tail, '');
      }),
      { numRuns: 300, seed: 0x5117_0013 },
    );
  });
});
