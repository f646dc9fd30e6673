/**
 * Identities and certificates (RFC 8591 §4.4, RFC 5280): what `createIdentity` issues is
 * checked field by field with our reader and, independently, with Node's X509Certificate
 * (OpenSSL) and pkijs; import/export and the key-match check; hostile certificates end in
 * CmsError. The OpenSSL command line side is in test/interop/openssl-signed.test.ts.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import {
  certificateInfo,
  createIdentity,
  ecdsaDerToRaw,
  ecdsaRawToDer,
  exportCertificatePem,
  exportPrivateKeyPem,
  fingerprintSha256,
  importCertificate,
  importIdentity,
  importPrivateKey,
  importSigningKey,
  knownCertificate,
  readCertificate,
  signWithKey,
  sipUrisOfCertificate,
  type Identity,
} from '../../main/security/certificates.js';
import { CmsError, pemDecode, toArrayBuffer } from '../../main/security/cms/der.js';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const HOUR = 3600_000;
const DAY = 24 * HOUR;

async function cmsErrorOf(run: () => unknown): Promise<CmsError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(CmsError);
    return error as CmsError;
  }
  throw new Error('expected a CmsError, nothing was thrown');
}

const identities = new Map<string, Promise<Identity>>();
/** One identity per (aor, algorithm), created once for the whole file: RSA generation is slow. */
function identity(aor: string, algorithm: 'ECDSA-P256' | 'RSA-2048' = 'ECDSA-P256'): Promise<Identity> {
  const key = `${aor} ${algorithm}`;
  let created = identities.get(key);
  if (!created) {
    created = createIdentity({ aor, algorithm, now: NOW });
    identities.set(key, created);
  }
  return created;
}

describe('createIdentity', () => {
  it('issues a self-signed P-256 certificate with the AoR in CN and in the SAN URI', async () => {
    const alice = await identity('sip:alice@example.com');
    const info = alice.info;
    expect(info.subject).toBe('CN=sip:alice@example.com');
    expect(info.issuer).toBe(info.subject);
    expect(info.selfIssued).toBe(true);
    expect(info.sipUris).toEqual(['sip:alice@example.com']);
    expect(info.uris).toEqual(['sip:alice@example.com']);
    expect(info.keyAlgorithm).toBe('ECDSA-P256');
    expect(info.keyUsage).toEqual(['digitalSignature', 'keyAgreement']);
    expect(info.extendedKeyUsage).toEqual(['emailProtection']);
    // Backdated one hour for slow peer clocks; 730 days by default; whole seconds.
    expect(info.notBefore.getTime()).toBe(NOW.getTime() - HOUR);
    expect(info.notAfter.getTime()).toBe(NOW.getTime() + 730 * DAY);
    expect(sipUrisOfCertificate(alice.certificateDer)).toEqual(['sip:alice@example.com']);
    expect(info).toEqual(certificateInfo(alice.certificateDer));
  });

  it('uses keyEncipherment instead of keyAgreement for RSA-2048', async () => {
    const bob = await identity('sips:bob@example.org', 'RSA-2048');
    expect(bob.info.keyAlgorithm).toBe('RSA-2048');
    expect(bob.info.keyUsage).toEqual(['digitalSignature', 'keyEncipherment']);
    expect(bob.info.sipUris).toEqual(['sips:bob@example.org']);
  });

  it('draws a fresh positive 16-octet serial number each time', async () => {
    const [a, b] = await Promise.all([
      createIdentity({ aor: 'sip:carol@example.com', now: NOW }),
      createIdentity({ aor: 'sip:carol@example.com', now: NOW }),
    ]);
    const serialA = readCertificate(a.certificateDer).serialNumber;
    const serialB = readCertificate(b.certificateDer).serialNumber;
    expect(serialA.length).toBe(16);
    expect(serialA[0]! & 0x80).toBe(0);
    expect(serialA[0]).not.toBe(0);
    expect(Buffer.from(serialA).equals(Buffer.from(serialB))).toBe(false);
    expect(a.info.fingerprintSha256).not.toBe(b.info.fingerprintSha256);
  });

  it('honours validDays and uses GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5)', async () => {
    const late = await createIdentity({ aor: 'sip:late@example.com', now: new Date('2049-12-01T00:00:00Z'), validDays: 365 });
    expect(late.info.notAfter.toISOString()).toBe('2050-12-01T00:00:00.000Z');
    expect(new X509Certificate(late.certificateDer).validTo).toBe('Dec  1 00:00:00 2050 GMT');
  });

  it('refuses what is not a SIP AoR, and silly validity', async () => {
    for (const aor of ['alice@example.com', 'sip:alice @example.com', 'tel:+123', 'sip:ålice@example.com', '']) {
      expect((await cmsErrorOf(() => createIdentity({ aor }))).code).toBe('invalid-argument');
    }
    expect((await cmsErrorOf(() => createIdentity({ aor: 'sip:a@b', validDays: 0 }))).code).toBe('invalid-argument');
  });

  it('is read the same way by OpenSSL (node:crypto X509Certificate)', async () => {
    for (const [aor, algorithm] of [
      ['sip:alice@example.com', 'ECDSA-P256'],
      ['sips:bob@example.org', 'RSA-2048'],
    ] as const) {
      const id = await identity(aor, algorithm);
      const x509 = new X509Certificate(id.certificateDer);
      expect(x509.subject).toBe(`CN=${aor}`);
      expect(x509.subjectAltName).toBe(`URI:${aor}`);
      expect(x509.fingerprint256).toBe(fingerprintSha256(id.certificateDer));
      expect(x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.4']); // node reports the EKU here
      expect(x509.ca).toBe(false);
      expect(x509.serialNumber).toBe(id.info.serialNumberHex);
      expect(x509.verify(x509.publicKey)).toBe(true); // the self-signature
      expect(x509.checkPrivateKey(createPrivateKey({ key: Buffer.from(id.privateKeyPkcs8), format: 'der', type: 'pkcs8' }))).toBe(true);
      expect(new Date(x509.validFrom).getTime()).toBe(id.info.notBefore.getTime());
    }
  });

  it('is read the same way by pkijs, whose own signature check passes', async () => {
    for (const id of [await identity('sip:alice@example.com'), await identity('sips:bob@example.org', 'RSA-2048')]) {
      const certificate = pkijs.Certificate.fromBER(toArrayBuffer(id.certificateDer));
      expect(await certificate.verify()).toBe(true);
      expect(certificate.version).toBe(2);
      const san = certificate.extensions?.find((extension) => extension.extnID === '2.5.29.17');
      expect(san?.critical).toBe(false);
      const names = san?.parsedValue as pkijs.AltName;
      expect(names.altNames.map((name) => [name.type, name.value])).toEqual([[6, id.info.sipUris[0]]]);
      const basic = certificate.extensions?.find((extension) => extension.extnID === '2.5.29.19');
      expect(basic?.critical).toBe(true);
      expect((basic?.parsedValue as pkijs.BasicConstraints).cA).toBe(false);
      // pkijs re-encodes every field from its parsed form: byte-identical means canonical DER.
      expect(Buffer.from(certificate.toSchema(true).toBER(false)).equals(Buffer.from(id.certificateDer))).toBe(true);
    }
  });
});

describe('certificate reading', () => {
  it('fingerprints the DER as colon-separated uppercase SHA-256 hex', async () => {
    const alice = await identity('sip:alice@example.com');
    expect(fingerprintSha256(alice.certificateDer)).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(fingerprintSha256(Uint8Array.of())).toBe(
      'E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55',
    );
  });

  it('keeps only sip: and sips: URIs as SIP identities', async () => {
    // A certificate naming several identities (RFC 8591 §4.4.1 allows several URIs), built
    // with pkijs so that our reader is checked against another writer.
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const certificate = new pkijs.Certificate();
    certificate.version = 2;
    certificate.serialNumber = new asn1js.Integer({ value: 7 });
    for (const name of [certificate.issuer, certificate.subject]) {
      name.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.10', value: new asn1js.PrintableString({ value: 'Example' }) }));
      name.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.BmpString({ value: 'Zoë' }) }));
    }
    certificate.notBefore.value = new Date('2020-01-01T00:00:00Z');
    certificate.notAfter.value = new Date('2030-01-01T00:00:00Z');
    certificate.extensions = [
      new pkijs.Extension({
        extnID: '2.5.29.17',
        extnValue: new pkijs.GeneralNames({
          names: [
            new pkijs.GeneralName({ type: 1, value: 'zoe@example.com' }),
            new pkijs.GeneralName({ type: 6, value: 'SIP:zoe@example.com' }),
            new pkijs.GeneralName({ type: 6, value: 'https://example.com/zoe' }),
            new pkijs.GeneralName({ type: 2, value: 'example.com' }),
            new pkijs.GeneralName({ type: 6, value: 'sips:zoe@example.com' }),
          ],
        })
          .toSchema()
          .toBER(false),
      }),
    ];
    await certificate.subjectPublicKeyInfo.importKey(keys.publicKey);
    await certificate.sign(keys.privateKey, 'SHA-256');
    const der = new Uint8Array(certificate.toSchema(true).toBER(false));
    expect(sipUrisOfCertificate(der)).toEqual(['SIP:zoe@example.com', 'sips:zoe@example.com']);
    const info = certificateInfo(der);
    expect(info.subject).toBe('O=Example, CN=Zoë');
    expect(info.emailAddresses).toEqual(['zoe@example.com']);
    expect(info.dnsNames).toEqual(['example.com']);
    expect(info.keyUsage).toEqual([]);
    expect(info.serialNumberHex).toBe('07');
    expect(info.notBefore.toISOString()).toBe('2020-01-01T00:00:00.000Z');
  });

  it('turns garbage, truncation and bit flips into CmsError, never another exception', async () => {
    const alice = await identity('sip:alice@example.com');
    const der = alice.certificateDer;
    expect((await cmsErrorOf(() => certificateInfo(Uint8Array.of()))).code).toBe('malformed');
    expect((await cmsErrorOf(() => certificateInfo(der.subarray(0, der.length - 1)))).code).toBe('malformed');
    expect((await cmsErrorOf(() => certificateInfo(Uint8Array.of(...der, 0)))).code).toBe('malformed');
    const readsOrRejects = (bytes: Uint8Array): void => {
      try {
        certificateInfo(bytes);
        sipUrisOfCertificate(bytes);
      } catch (error) {
        if (!(error instanceof CmsError)) throw error;
        expect(error.code).toBe('malformed');
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), readsOrRejects), { numRuns: 1000 });
    fc.assert(
      fc.property(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(der.length), (at, xor, cut) => {
        const mutated = der.slice(0, Math.max(cut, at + 1));
        mutated[at] = mutated[at]! ^ xor;
        readsOrRejects(mutated);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('certificates seen before (knownCertificate)', () => {
  it('reads each distinct certificate once, keyed by its bytes: equal bytes share, one changed byte does not', async () => {
    const der = (await identity('sip:alice@example.com')).certificateDer;
    const known = knownCertificate(der);
    expect(knownCertificate(der.slice())).toBe(known);
    expect(known.der).not.toBe(der);
    expect(known.der).toEqual(der);
    expect(known.sha256Hex).toBe(createHash('sha256').update(der).digest('hex'));
    expect(known.fingerprintSha256).toBe(fingerprintSha256(der));
    expect(known.core.serialNumber).toEqual(readCertificate(der).serialNumber);
    // The last octet is in the signature: the certificate still reads, and is another one.
    const flipped = der.slice();
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
    const other = knownCertificate(flipped);
    expect(other).not.toBe(known);
    expect(other.sha256Hex).toBe(createHash('sha256').update(flipped).digest('hex'));
    expect(other.fingerprintSha256).not.toBe(known.fingerprintSha256);
  });

  it('keeps its own copy: changing the array it was given changes nothing', async () => {
    const der = (await identity('sip:carol@example.com')).certificateDer;
    const mine = der.slice();
    const known = knownCertificate(mine);
    mine.fill(0);
    expect(known.der).toEqual(der);
    expect(knownCertificate(der)).toBe(known);
    expect(() => knownCertificate(mine)).toThrow(CmsError);
    // The same array refilled with another certificate (one octet of the signature differs).
    mine.set(der);
    mine[mine.length - 1] = mine[mine.length - 1]! ^ 0x80;
    const other = knownCertificate(mine);
    expect(other).not.toBe(known);
    expect(other.der).toEqual(mine);
    expect(other.sha256Hex).toBe(createHash('sha256').update(mine).digest('hex'));
    mine.set(der);
    expect(knownCertificate(mine)).toBe(known);
  });

  it('shares a frozen info, while certificateInfo hands out objects the caller may change', async () => {
    const der = (await identity('sip:dave@example.com')).certificateDer;
    const shared = knownCertificate(der).info;
    expect(Object.isFrozen(shared)).toBe(true);
    expect(Object.isFrozen(shared.sipUris)).toBe(true);
    const mine = certificateInfo(der);
    mine.sipUris.push('sip:mallory@example.com');
    mine.keyUsage.length = 0;
    mine.notAfter.setTime(0);
    const again = certificateInfo(der);
    expect(again.sipUris).toEqual(['sip:dave@example.com']);
    expect(again.keyUsage).toEqual(['digitalSignature', 'keyAgreement']);
    expect(again.notAfter.getTime()).toBe(NOW.getTime() + 730 * DAY);
    expect(shared.notAfter.getTime()).toBe(NOW.getTime() + 730 * DAY);
  });

  it('forgets the least recently used certificates beyond a few hundred', async () => {
    const der = (await identity('sip:erin@example.com')).certificateDer;
    const first = knownCertificate(der);
    for (let variant = 1; variant <= 300; variant++) {
      const other = der.slice();
      other[other.length - 1] = variant & 0xff;
      other[other.length - 2] = variant >> 8;
      knownCertificate(other);
    }
    // The array it was first given still finds it; the same bytes in another array are read again.
    expect(knownCertificate(der)).toBe(first);
    const again = knownCertificate(der.slice());
    expect(again).not.toBe(first);
    expect(again.sha256Hex).toBe(first.sha256Hex);
  });
});

describe('import and export', () => {
  it('round-trips an identity through PEM', async () => {
    const alice = await identity('sip:alice@example.com');
    const certificatePem = exportCertificatePem(alice.certificateDer);
    const keyPem = exportPrivateKeyPem(alice.privateKeyPkcs8);
    expect(certificatePem).toMatch(/^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/);
    expect(keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
    // Node (OpenSSL) reads our PEM too.
    expect(new X509Certificate(certificatePem).fingerprint256).toBe(alice.info.fingerprintSha256);
    const imported = await importIdentity(`some text before\n${certificatePem}`, keyPem);
    expect(Buffer.from(imported.certificateDer).equals(Buffer.from(alice.certificateDer))).toBe(true);
    expect(Buffer.from(imported.privateKeyPkcs8).equals(Buffer.from(alice.privateKeyPkcs8))).toBe(true);
    expect(imported.info).toEqual(alice.info);
    // DER in, DER out.
    const fromDer = await importIdentity(alice.certificateDer, alice.privateKeyPkcs8);
    expect(fromDer.info.fingerprintSha256).toBe(alice.info.fingerprintSha256);
  });

  it('accepts the OpenSSL legacy SEC1 and PKCS#1 key files', async () => {
    for (const [id, type] of [
      [await identity('sip:alice@example.com'), 'sec1'],
      [await identity('sips:bob@example.org', 'RSA-2048'), 'pkcs1'],
    ] as const) {
      const legacyPem = createPrivateKey({ key: Buffer.from(id.privateKeyPkcs8), format: 'der', type: 'pkcs8' }).export({ type, format: 'pem' }) as string;
      expect(legacyPem).toMatch(type === 'sec1' ? /BEGIN EC PRIVATE KEY/ : /BEGIN RSA PRIVATE KEY/);
      const pkcs8 = importPrivateKey(legacyPem);
      const imported = await importIdentity(exportCertificatePem(id.certificateDer), legacyPem);
      expect(imported.info.fingerprintSha256).toBe(id.info.fingerprintSha256);
      // The same key as before, whatever the wrapping.
      const jwk = (der: Uint8Array): unknown => createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
      expect(jwk(pkcs8)).toEqual(jwk(id.privateKeyPkcs8));
    }
  });

  it('refuses a key that belongs to another certificate', async () => {
    const alice = await identity('sip:alice@example.com');
    const mallory = await identity('sip:mallory@example.com');
    const bob = await identity('sips:bob@example.org', 'RSA-2048');
    expect((await cmsErrorOf(() => importIdentity(alice.certificateDer, mallory.privateKeyPkcs8))).code).toBe('key-mismatch');
    expect((await cmsErrorOf(() => importIdentity(alice.certificateDer, bob.privateKeyPkcs8))).code).toBe('key-mismatch');
    expect((await cmsErrorOf(() => importIdentity(bob.certificateDer, alice.privateKeyPkcs8))).code).toBe('key-mismatch');
  });

  it('refuses encrypted keys, non-PEM text and keys it cannot sign with', async () => {
    const encrypted = createPrivateKey({ key: Buffer.from((await identity('sip:alice@example.com')).privateKeyPkcs8), format: 'der', type: 'pkcs8' }).export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'secret',
    }) as string;
    expect((await cmsErrorOf(() => importPrivateKey(encrypted))).code).toBe('unsupported-algorithm');
    expect((await cmsErrorOf(() => importPrivateKey('no pem here'))).code).toBe('malformed');
    expect((await cmsErrorOf(() => importCertificate('-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n'))).code).toBe('malformed');
    expect((await cmsErrorOf(() => importCertificate(Uint8Array.of(1, 2, 3)))).code).toBe('malformed');
    // X25519 is a key-agreement key: nothing to sign with.
    const x25519 = pemDecode(generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).der;
    expect((await cmsErrorOf(() => importSigningKey(x25519))).code).toBe('unsupported-algorithm');
    expect((await cmsErrorOf(() => importSigningKey(Uint8Array.of(0x30, 0x00)))).code).toBe('malformed');
  });
});

describe('ECDSA signature encoding (RFC 5480 §2.2 / RFC 5753 §7.2)', () => {
  it('converts raw r‖s to DER and back, as pkijs does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (raw) => {
        const der = ecdsaRawToDer(raw);
        expect(Buffer.from(der).equals(Buffer.from(pkijs.createCMSECDSASignature(toArrayBuffer(raw))))).toBe(true);
        expect(ecdsaDerToRaw(der, 32)).toEqual(raw);
      }),
      { numRuns: 500 },
    );
    // r with its top bit set needs a 0x00 sign octet; a short r keeps its leading zeros out.
    const raw = new Uint8Array(64);
    raw[0] = 0x80;
    raw[63] = 1;
    expect(Buffer.from(ecdsaRawToDer(raw)).toString('hex')).toBe(`3026022100${'80' + '00'.repeat(31)}020101`);
  });

  it('rejects DER that is not two positive INTEGERs that fit', () => {
    const bad = [
      '3006020101020101ff', // trailing octet
      '300402010102', // truncated
      '3003020101', // one INTEGER
      '30060201ff020101', // negative r
      '30050200020101', // empty INTEGER
      `3025022101${'00'.repeat(32)}020101`, // r of 33 octets
    ];
    for (const hex of bad) expect(ecdsaDerToRaw(Buffer.from(hex, 'hex'), 32)).toBeUndefined();
  });

  it('signatures made through importSigningKey verify with node:crypto (ECDSA as DER, Ed25519 raw)', async () => {
    const alice = await identity('sip:alice@example.com');
    const key = await importSigningKey(alice.privateKeyPkcs8);
    const data = new TextEncoder().encode('hello');
    const signature = await signWithKey(key, data);
    const publicKey = createPublicKey(new X509Certificate(alice.certificateDer).publicKey.export({ type: 'spki', format: 'pem' }));
    expect(verify('sha256', data, publicKey, signature)).toBe(true); // node's default ECDSA form is DER
    const ed = generateKeyPairSync('ed25519');
    const edKey = await importSigningKey(pemDecode(ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).der);
    expect(edKey.digest).toBe('SHA-512');
    const edSignature = await signWithKey(edKey, data);
    expect(edSignature.length).toBe(64);
    expect(verify(null, data, ed.publicKey, edSignature)).toBe(true);
  });
});
