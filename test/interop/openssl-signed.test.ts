/**
 * SignedData and certificates against the real `openssl` (OpenSSL 3.0, the S/MIME peer of
 * design.md), both ways:
 *  (a) what we sign verifies with `openssl cms -verify` and gives back the exact content,
 *      with the certificate embedded or supplied with -certfile, with either signer identifier;
 *  (b) what `openssl cms -sign` makes with its own EC P-256 and RSA keys (PKCS#1 v1.5 and PSS,
 *      with and without certificate, by key id, detached) verifies with ours, signingTime included;
 *  (c) tampered bytes fail on both sides;
 * plus certificate checks (`openssl verify -purpose smimesign`, fingerprint), key import from
 * OpenSSL's files, and certs-only bodies both ways. Files go to a temp dir removed after each
 * test; every openssl run is an execFile with a timeout.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createIdentity,
  exportCertificatePem,
  exportPrivateKeyPem,
  fingerprintSha256,
  importCertificate,
  importIdentity,
  type Identity,
} from '../../main/security/certificates.js';
import { CmsError } from '../../main/security/cms/der.js';
import { certsOnly, readCertsOnly, signContent, verifySignedData } from '../../main/security/cms/signed-data.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const CONTENT = Buffer.from(
  'Content-Type: message/cpim\r\n\r\nFrom: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n\r\n' +
    'Content-Type: text/plain;charset=utf-8\r\n\r\nHello Bob, secret \u2713\r\n\r\n.\n\x00\xff',
  'utf8',
);

interface Run {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs openssl with `args` in `cwd`; resolves with its exit code, never rejects on a non-zero exit. */
function openssl(cwd: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, encoding: 'buffer', timeout: 20_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error); // could not start, or timed out
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

async function opensslOk(cwd: string, args: readonly string[]): Promise<Run> {
  const run = await openssl(cwd, args);
  if (run.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run;
}

const cleanups = cleanupsAfterEach();
function workDir(): string {
  return tempDir(cleanups, 'sipnote-openssl-cms-');
}

let alice: Identity; // ours, P-256
let bob: Identity; // ours, RSA-2048

beforeAll(async () => {
  [alice, bob] = await Promise.all([
    createIdentity({ aor: 'sip:alice@example.com' }),
    createIdentity({ aor: 'sips:bob@example.org', algorithm: 'RSA-2048' }),
  ]);
});

async function cmsErrorOf(run: () => Promise<unknown>): Promise<CmsError> {
  try {
    await run();
  } catch (error) {
    if (!(error instanceof CmsError)) throw error;
    return error;
  }
  throw new Error('expected a CmsError');
}

describe('our certificates under OpenSSL', () => {
  it('pass `openssl verify -purpose smimesign` as their own trust anchor, with the same fingerprint', async () => {
    for (const id of [alice, bob]) {
      const dir = workDir();
      writeFileSync(join(dir, 'cert.pem'), exportCertificatePem(id.certificateDer));
      await opensslOk(dir, ['verify', '-purpose', 'smimesign', '-CAfile', 'cert.pem', 'cert.pem']);
      const fingerprint = (await opensslOk(dir, ['x509', '-in', 'cert.pem', '-noout', '-fingerprint', '-sha256'])).stdout.toString();
      expect(fingerprint.trim()).toBe(`sha256 Fingerprint=${fingerprintSha256(id.certificateDer)}`);
      const text = (await opensslOk(dir, ['x509', '-in', 'cert.pem', '-noout', '-ext', 'subjectAltName,keyUsage,extendedKeyUsage,basicConstraints'])).stdout.toString();
      expect(text).toContain(`URI:${id.info.sipUris[0]}`);
      expect(text).toContain('E-mail Protection');
      expect(text).toContain(id === alice ? 'Digital Signature, Key Agreement' : 'Digital Signature, Key Encipherment');
      expect(text).toContain('CA:FALSE');
      // OpenSSL re-encodes nothing: DER in, the same DER out.
      const der = (await opensslOk(dir, ['x509', '-in', 'cert.pem', '-outform', 'DER'])).stdout;
      expect(der.equals(id.certificateDer)).toBe(true);
    }
  });
});

describe('(a) we sign, openssl cms -verify', () => {
  for (const [label, pick] of [
    ['ECDSA P-256', () => alice],
    ['RSA-2048', () => bob],
  ] as const) {
    for (const signerIdentifier of ['issuer-and-serial', 'subject-key-identifier'] as const) {
      it(`${label}, ${signerIdentifier}: verifies with the certificate embedded and with -certfile`, async () => {
        const id = pick();
        const dir = workDir();
        writeFileSync(join(dir, 'cert.pem'), exportCertificatePem(id.certificateDer));
        for (const includeCertificate of [true, false]) {
          const der = await signContent({
            content: CONTENT,
            signerCertificateDer: id.certificateDer,
            privateKeyPkcs8: id.privateKeyPkcs8,
            signingTime: new Date(),
            includeCertificate,
            signerIdentifier,
          });
          writeFileSync(join(dir, 'signed.der'), der);
          const args = ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'signed.der', '-CAfile', 'cert.pem', '-out', 'out.bin'];
          const run = await opensslOk(dir, includeCertificate ? args : [...args, '-certfile', 'cert.pem']);
          expect(run.stderr).toContain('Verification successful');
          expect(readFileSync(join(dir, 'out.bin')).equals(CONTENT)).toBe(true);
          // Without the certificate and without -certfile, OpenSSL cannot find the signer.
          if (!includeCertificate) expect((await openssl(dir, args)).code).not.toBe(0);
        }
      });
    }
  }

  it('a detached signature verifies with -content', async () => {
    const dir = workDir();
    writeFileSync(join(dir, 'cert.pem'), exportCertificatePem(alice.certificateDer));
    writeFileSync(join(dir, 'content.bin'), CONTENT);
    const der = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: new Date(), includeCertificate: true, detached: true });
    writeFileSync(join(dir, 'signed.der'), der);
    await opensslOk(dir, ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'signed.der', '-content', 'content.bin', '-CAfile', 'cert.pem', '-out', 'out.bin']);
    expect(readFileSync(join(dir, 'out.bin')).equals(CONTENT)).toBe(true);
  });

  it('openssl reads our signingTime and exactly three signed attributes', async () => {
    const dir = workDir();
    const der = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: new Date('2026-03-01T12:34:56Z'), includeCertificate: true });
    writeFileSync(join(dir, 'signed.der'), der);
    const printed = (await opensslOk(dir, ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'signed.der'])).stdout.toString();
    expect(printed).toMatch(/UTCTIME:Mar\s+1 12:34:56 2026 GMT/);
    expect(printed.match(/object: (contentType|signingTime|messageDigest) /g)).toEqual(['object: contentType ', 'object: signingTime ', 'object: messageDigest ']);
    expect(printed).toContain('algorithm: ecdsa-with-SHA256');
  });

  it('(c) tampered content fails openssl verification', async () => {
    for (const id of [alice, bob]) {
      const dir = workDir();
      writeFileSync(join(dir, 'cert.pem'), exportCertificatePem(id.certificateDer));
      const der = Buffer.from(await signContent({ content: CONTENT, signerCertificateDer: id.certificateDer, privateKeyPkcs8: id.privateKeyPkcs8, signingTime: new Date(), includeCertificate: true }));
      const at = der.indexOf(CONTENT) + 50;
      der[at] = der[at]! ^ 0x01;
      writeFileSync(join(dir, 'signed.der'), der);
      const run = await openssl(dir, ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'signed.der', '-CAfile', 'cert.pem', '-out', 'out.bin']);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/digest failure|verify error|Verification failure/i);
    }
  });
});

describe('(b) openssl cms -sign, we verify', () => {
  /** An OpenSSL-made key and self-signed certificate in `dir`: key.pem (PKCS#8) and cert.pem. */
  async function opensslIdentity(dir: string, newkey: string[], aor: string): Promise<Uint8Array> {
    await opensslOk(dir, [
      'req', '-x509', ...newkey, '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '30', '-subj', `/CN=${aor}`,
      '-addext', `subjectAltName=URI:${aor}`, '-addext', 'keyUsage=critical,digitalSignature,keyAgreement,keyEncipherment', '-addext', 'extendedKeyUsage=emailProtection',
    ]);
    return importCertificate(readFileSync(join(dir, 'cert.pem'), 'utf8'));
  }

  const keys = {
    'EC P-256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    'RSA-2048': ['-newkey', 'rsa:2048'],
  } as const;

  for (const [label, newkey] of Object.entries(keys)) {
    it(`${label}: encapsulated, with and without certificate, by serial and by key id`, async () => {
      const dir = workDir();
      const certificate = await opensslIdentity(dir, [...newkey], 'sip:carol@example.net');
      writeFileSync(join(dir, 'content.bin'), CONTENT);
      const variants: [string, string[]][] = [
        ['default', []],
        ['-nocerts', ['-nocerts']],
        ['-keyid -nosmimecap', ['-keyid', '-nosmimecap']],
      ];
      for (const [name, extra] of variants) {
        const before = Date.now();
        await opensslOk(dir, ['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-signer', 'cert.pem', '-inkey', 'key.pem', '-in', 'content.bin', '-outform', 'DER', '-out', 'signed.der', ...extra]);
        const der = readFileSync(join(dir, 'signed.der'));
        const verified = await verifySignedData(der, { candidateCertificatesDer: [alice.certificateDer, certificate] });
        expect([name, Buffer.from(verified.content).equals(CONTENT)]).toEqual([name, true]);
        expect(Buffer.from(verified.signerCertificateDer).equals(certificate)).toBe(true);
        expect(verified.signerCertificateSource).toBe(name === '-nocerts' ? 'candidate' : 'embedded');
        expect(verified.signatureAlgorithm).toBe(label === 'RSA-2048' ? 'RSASSA-PKCS1-v1_5' : 'ECDSA');
        // OpenSSL stamps the current time (whole seconds).
        expect(verified.signingTime!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 2000);
        expect(verified.signingTime!.getTime()).toBeLessThanOrEqual(Date.now() + 2000);
        if (name === '-nocerts') {
          expect((await cmsErrorOf(() => verifySignedData(der))).code).toBe('unknown-signer');
        }
        // (c) a flipped content byte fails ours.
        const tampered = Buffer.from(der);
        const at = tampered.indexOf(CONTENT) + 10;
        tampered[at] = tampered[at]! ^ 0x20;
        expect([name, (await cmsErrorOf(() => verifySignedData(tampered, { candidateCertificatesDer: [certificate] }))).code]).toEqual([name, 'bad-signature']);
      }
    });
  }

  it('RSA-PSS (OpenSSL salt length = maximum) and a detached signature', async () => {
    const dir = workDir();
    const certificate = await opensslIdentity(dir, [...keys['RSA-2048']], 'sip:dave@example.net');
    writeFileSync(join(dir, 'content.bin'), CONTENT);
    await opensslOk(dir, ['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-signer', 'cert.pem', '-inkey', 'key.pem', '-keyopt', 'rsa_padding_mode:pss', '-in', 'content.bin', '-outform', 'DER', '-out', 'pss.der']);
    const pss = await verifySignedData(readFileSync(join(dir, 'pss.der')));
    expect(pss.signatureAlgorithm).toBe('RSA-PSS');
    expect(Buffer.from(pss.content).equals(CONTENT)).toBe(true);
    await opensslOk(dir, ['cms', '-sign', '-binary', '-md', 'sha256', '-signer', 'cert.pem', '-inkey', 'key.pem', '-in', 'content.bin', '-outform', 'DER', '-out', 'detached.der']);
    const detached = readFileSync(join(dir, 'detached.der'));
    expect((await cmsErrorOf(() => verifySignedData(detached))).code).toBe('detached-content-missing');
    const verified = await verifySignedData(detached, { detachedContent: CONTENT });
    expect(Buffer.from(verified.signerCertificateDer).equals(certificate)).toBe(true);
  });

  it('OpenSSL key files import (PKCS#8, SEC1, PKCS#1), and what we sign with them verifies in openssl', async () => {
    for (const [label, newkey, legacy] of [
      ['EC', keys['EC P-256'], ['ec', '-in', 'key.pem', '-out', 'legacy.pem']],
      ['RSA', keys['RSA-2048'], ['rsa', '-in', 'key.pem', '-traditional', '-out', 'legacy.pem']],
    ] as const) {
      const dir = workDir();
      await opensslIdentity(dir, [...newkey], 'sip:erin@example.net');
      await opensslOk(dir, [...legacy]);
      expect(readFileSync(join(dir, 'legacy.pem'), 'utf8')).toContain(label === 'EC' ? 'BEGIN EC PRIVATE KEY' : 'BEGIN RSA PRIVATE KEY');
      const certificatePem = readFileSync(join(dir, 'cert.pem'), 'utf8');
      const fromPkcs8 = await importIdentity(certificatePem, readFileSync(join(dir, 'key.pem'), 'utf8'));
      const fromLegacy = await importIdentity(certificatePem, readFileSync(join(dir, 'legacy.pem'), 'utf8'));
      expect(fromLegacy.info).toEqual(fromPkcs8.info);
      const der = await signContent({ content: CONTENT, signerCertificateDer: fromLegacy.certificateDer, privateKeyPkcs8: fromLegacy.privateKeyPkcs8, signingTime: new Date(), includeCertificate: true });
      writeFileSync(join(dir, 'signed.der'), der);
      await opensslOk(dir, ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'signed.der', '-CAfile', 'cert.pem', '-out', 'out.bin']);
      expect(readFileSync(join(dir, 'out.bin')).equals(CONTENT)).toBe(true);
      // Our PKCS#8 export is one OpenSSL reads back as the same key.
      writeFileSync(join(dir, 'ours.pem'), exportPrivateKeyPem(fromLegacy.privateKeyPkcs8));
      const a = (await opensslOk(dir, ['pkey', '-in', 'ours.pem', '-pubout'])).stdout.toString();
      const b = (await opensslOk(dir, ['pkey', '-in', 'key.pem', '-pubout'])).stdout.toString();
      expect(a).toBe(b);
    }
  });

  it('Ed25519 (RFC 8419): an OpenSSL-made certificate and key sign and verify with ours', async () => {
    // OpenSSL 3.0 itself has no EdDSA in CMS ("eddsa_digest_signverify_init: invalid digest"),
    // so only the certificate and key come from it here.
    const dir = workDir();
    await opensslIdentity(dir, ['-newkey', 'ed25519'], 'sip:frank@example.net');
    const id = await importIdentity(readFileSync(join(dir, 'cert.pem'), 'utf8'), readFileSync(join(dir, 'key.pem'), 'utf8'));
    expect(id.info.keyAlgorithm).toBe('Ed25519');
    const der = await signContent({ content: CONTENT, signerCertificateDer: id.certificateDer, privateKeyPkcs8: id.privateKeyPkcs8, signingTime: new Date(), includeCertificate: true });
    const verified = await verifySignedData(der);
    expect([verified.signatureAlgorithm, verified.digestAlgorithm]).toEqual(['Ed25519', 'SHA-512']);
    expect(Buffer.from(verified.content).equals(CONTENT)).toBe(true);
    const tampered = Buffer.from(der);
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 1; // inside the signature
    expect((await cmsErrorOf(() => verifySignedData(tampered))).code).toBe('bad-signature');
  });

  it('refuses an RSA-1024 signer as too weak', async () => {
    const dir = workDir();
    await opensslIdentity(dir, ['-newkey', 'rsa:1024'], 'sip:weak@example.net');
    writeFileSync(join(dir, 'content.bin'), CONTENT);
    await opensslOk(dir, ['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-signer', 'cert.pem', '-inkey', 'key.pem', '-in', 'content.bin', '-outform', 'DER', '-out', 'signed.der']);
    expect((await cmsErrorOf(() => verifySignedData(readFileSync(join(dir, 'signed.der'))))).code).toBe('unsupported-algorithm');
  });
});

describe('certs-only bodies (493, RFC 3261 §23.2)', () => {
  it('ours reads in openssl, and `openssl crl2pkcs7 -nocrl` reads in ours', async () => {
    const dir = workDir();
    writeFileSync(join(dir, 'ours.p7c'), certsOnly([alice.certificateDer, bob.certificateDer]));
    const printed = (await opensslOk(dir, ['pkcs7', '-inform', 'DER', '-in', 'ours.p7c', '-print_certs'])).stdout.toString();
    expect(printed).toContain('subject=CN = sip:alice@example.com');
    expect(printed).toContain('subject=CN = sips:bob@example.org');
    writeFileSync(join(dir, 'alice.pem'), exportCertificatePem(alice.certificateDer));
    writeFileSync(join(dir, 'bob.pem'), exportCertificatePem(bob.certificateDer));
    await opensslOk(dir, ['crl2pkcs7', '-nocrl', '-certfile', 'alice.pem', '-certfile', 'bob.pem', '-outform', 'DER', '-out', 'theirs.p7c']);
    const certificates = readCertsOnly(readFileSync(join(dir, 'theirs.p7c')));
    expect(certificates.map((c) => fingerprintSha256(c))).toEqual([alice.info.fingerprintSha256, bob.info.fingerprintSha256]);
    // Byte-identical to what openssl writes for the same certificates.
    expect(readFileSync(join(dir, 'theirs.p7c')).equals(readFileSync(join(dir, 'ours.p7c')))).toBe(true);
  });
});
