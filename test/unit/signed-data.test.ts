/**
 * CMS SignedData (RFC 5652 §5, RFC 8551, RFC 8591 §4.1): round trips, the exactly-one-signer
 * rule, attribute checks, tampering, certs-only, an independent check against pkijs in both
 * directions, and fast-check properties that hostile bytes only ever give a CmsError. The
 * der.ts helpers are tested here too. OpenSSL interop: test/interop/openssl-signed.test.ts.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createIdentity, importSigningKey, readCertificate, signWithKey, type Identity } from '../../main/security/certificates.js';
import {
  CmsError,
  OID,
  derAlgorithm,
  derExplicit,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derSmallInteger,
  derTime,
  derTlv,
  pemDecode,
  pemDecodeAll,
  pemEncode,
  readChildren,
  readDer,
  readOctetString,
  readOid,
  readSequence,
  readTime,
  toArrayBuffer,
} from '../../main/security/cms/der.js';
import { certsOnly, readCertsOnly, signContent, verifySignedData } from '../../main/security/cms/signed-data.js';

const encoder = new TextEncoder();
const CONTENT = encoder.encode(
  'Content-Type: message/cpim\r\n\r\nFrom: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\nDateTime: 2026-03-01T12:00:00Z\r\n\r\n' +
    'Content-Type: text/plain;charset=utf-8\r\n\r\nGrüße, Bob ✓',
);
const SIGNING_TIME = new Date('2026-03-01T12:00:00Z');

const identities = new Map<string, Promise<Identity>>();
function identity(aor: string, algorithm: 'ECDSA-P256' | 'RSA-2048' = 'ECDSA-P256'): Promise<Identity> {
  const key = `${aor} ${algorithm}`;
  let created = identities.get(key);
  if (!created) {
    created = createIdentity({ aor, algorithm, now: SIGNING_TIME });
    identities.set(key, created);
  }
  return created;
}

async function cmsErrorOf(run: () => unknown): Promise<CmsError> {
  try {
    await run();
  } catch (error) {
    if (!(error instanceof CmsError)) throw error;
    return error;
  }
  throw new Error('expected a CmsError, nothing was thrown');
}

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

/** Offset of `needle` in `haystack` (test helper for targeted tampering). */
function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle));
}

function flipped(bytes: Uint8Array, at: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

/**
 * A SignedData built field by field, for the structures signContent never writes (two
 * signers, odd attributes, no attributes, RSA-PSS). The signature is real unless `signature`
 * is given.
 */
async function buildSignedData(options: {
  signer: Identity;
  attributes?: Uint8Array[] | null; // null: no signedAttrs at all
  signerInfos?: number;
  signatureAlgorithm?: Uint8Array;
  sign?: (data: Uint8Array) => Promise<Uint8Array>;
  eContentType?: string;
  content?: Uint8Array;
}): Promise<Uint8Array> {
  const { signer, signerInfos = 1, content = CONTENT, eContentType = OID.data } = options;
  const certificate = readCertificate(signer.certificateDer);
  const key = await importSigningKey(signer.privateKeyPkcs8);
  const attributes =
    options.attributes === undefined
      ? [
          derSequence(derOid(OID.contentType), derSetOf([derOid(eContentType)])),
          derSequence(derOid(OID.signingTime), derSetOf([derTime(SIGNING_TIME)])),
          derSequence(derOid(OID.messageDigest), derSetOf([derOctetString(sha256(content))])),
        ]
      : options.attributes;
  const signedAttributes = attributes === null ? undefined : derSetOf(attributes);
  const toSign = signedAttributes ?? content;
  const signature = options.sign ? await options.sign(toSign) : await signWithKey(key, toSign);
  const signerInfo = derSequence(
    derSmallInteger(1),
    derSequence(certificate.issuer, derTlv(0x02, certificate.serialNumber)),
    derAlgorithm(OID.sha256),
    ...(signedAttributes ? [derTlv(0xa0, ...readChildren(readDer(signedAttributes, 'attrs'), 'attrs').map((a) => a.bytes))] : []),
    options.signatureAlgorithm ?? key.signatureAlgorithm,
    derOctetString(signature),
  );
  const signedData = derSequence(
    derSmallInteger(1),
    derSetOf([derAlgorithm(OID.sha256)]),
    derSequence(derOid(eContentType), derExplicit(0, derOctetString(content))),
    derTlv(0xa0, signer.certificateDer),
    derTlv(0x31, ...Array.from({ length: signerInfos }, () => signerInfo)),
  );
  return derSequence(derOid(OID.signedData), derExplicit(0, signedData));
}

describe('signContent + verifySignedData', () => {
  for (const algorithm of ['ECDSA-P256', 'RSA-2048'] as const) {
    it(`round-trips with an embedded ${algorithm} certificate`, async () => {
      const alice = await identity('sip:alice@example.com', algorithm);
      const der = await signContent({
        content: CONTENT,
        signerCertificateDer: alice.certificateDer,
        privateKeyPkcs8: alice.privateKeyPkcs8,
        signingTime: SIGNING_TIME,
        includeCertificate: true,
      });
      const verified = await verifySignedData(der);
      expect(verified.content).toEqual(CONTENT);
      expect(verified.signerCertificateDer).toEqual(alice.certificateDer);
      expect(verified.signerCertificateSource).toBe('embedded');
      expect(verified.signingTime).toEqual(SIGNING_TIME);
      expect(verified.messageDigest).toEqual(sha256(CONTENT));
      expect(verified.digestAlgorithm).toBe('SHA-256');
      expect(verified.signatureAlgorithm).toBe(algorithm === 'RSA-2048' ? 'RSASSA-PKCS1-v1_5' : 'ECDSA');
      expect(verified.signerCount).toBe(1);
      expect(verified.certificatesDer).toEqual([alice.certificateDer]);
    });
  }

  it('writes exactly the RFC 8591 Appendix A shape (three signed attributes, SHA-256, ecdsa-with-SHA256)', async () => {
    const alice = await identity('sip:alice@example.com');
    const der = await signContent({
      content: CONTENT,
      signerCertificateDer: alice.certificateDer,
      privateKeyPkcs8: alice.privateKeyPkcs8,
      signingTime: SIGNING_TIME,
      includeCertificate: false,
    });
    // Read it back with pkijs, an independent parser.
    const signedData = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(der)).content });
    expect(signedData.version).toBe(1);
    expect(signedData.certificates).toBeUndefined();
    expect(signedData.digestAlgorithms.map((a) => a.algorithmId)).toEqual([OID.sha256]);
    expect(signedData.encapContentInfo.eContentType).toBe(OID.data);
    const [signerInfo] = signedData.signerInfos;
    expect(signerInfo?.version).toBe(1);
    expect(signerInfo?.signatureAlgorithm.algorithmId).toBe(OID.ecdsaWithSha256);
    expect(signerInfo?.signatureAlgorithm.algorithmParams).toBeUndefined();
    expect(signerInfo?.signedAttrs?.attributes.map((a) => a.type)).toEqual([OID.contentType, OID.signingTime, OID.messageDigest]);
    expect(signerInfo?.unsignedAttrs).toBeUndefined();
    // The overhead is that of RFC 8591 §10.2 (395 octets for a 68-octet entity, no certificate).
    expect(der.length - CONTENT.length).toBeLessThanOrEqual(335);
  });

  it('finds the signer among the candidates when the certificate was left out (RFC 8591 §7.1)', async () => {
    const alice = await identity('sip:alice@example.com');
    const mallory = await identity('sip:mallory@example.com');
    const der = await signContent({
      content: CONTENT,
      signerCertificateDer: alice.certificateDer,
      privateKeyPkcs8: alice.privateKeyPkcs8,
      signingTime: SIGNING_TIME,
      includeCertificate: false,
    });
    expect((await cmsErrorOf(() => verifySignedData(der))).code).toBe('unknown-signer');
    expect((await cmsErrorOf(() => verifySignedData(der, { candidateCertificatesDer: [mallory.certificateDer] }))).code).toBe('unknown-signer');
    const verified = await verifySignedData(der, { candidateCertificatesDer: [Uint8Array.of(1, 2), mallory.certificateDer, alice.certificateDer] });
    expect(verified.signerCertificateSource).toBe('candidate');
    expect(verified.signerCertificateDer).toEqual(alice.certificateDer);
    expect(verified.certificatesDer).toEqual([]);
  });

  it('names the signer by subjectKeyIdentifier on request (v3 SignerInfo, smaller)', async () => {
    const alice = await identity('sip:alice@example.com');
    const common = { content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: false };
    const bySerial = await signContent(common);
    const byKeyId = await signContent({ ...common, signerIdentifier: 'subject-key-identifier' });
    expect(byKeyId.length).toBeLessThan(bySerial.length);
    const verified = await verifySignedData(byKeyId, { candidateCertificatesDer: [alice.certificateDer] });
    expect(verified.signerCertificateDer).toEqual(alice.certificateDer);
    const signedData = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(byKeyId)).content });
    expect(signedData.version).toBe(3);
    expect(signedData.signerInfos[0]?.version).toBe(3);
  });

  it('verifies a detached signature with the content given separately (multipart/signed)', async () => {
    const alice = await identity('sip:alice@example.com');
    const der = await signContent({
      content: CONTENT,
      signerCertificateDer: alice.certificateDer,
      privateKeyPkcs8: alice.privateKeyPkcs8,
      signingTime: SIGNING_TIME,
      includeCertificate: true,
      detached: true,
    });
    expect(indexOf(der, CONTENT)).toBe(-1);
    expect((await cmsErrorOf(() => verifySignedData(der))).code).toBe('detached-content-missing');
    expect((await verifySignedData(der, { detachedContent: CONTENT })).content).toEqual(CONTENT);
    expect((await cmsErrorOf(() => verifySignedData(der, { detachedContent: flipped(CONTENT, 3) }))).code).toBe('bad-signature');
    const encapsulated = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true });
    expect((await cmsErrorOf(() => verifySignedData(encapsulated, { detachedContent: CONTENT }))).code).toBe('malformed');
  });

  it('accepts a key from importSigningKey as well as PKCS#8 bytes, and an empty content', async () => {
    const alice = await identity('sip:alice@example.com');
    const key = await importSigningKey(alice.privateKeyPkcs8);
    const der = await signContent({ content: new Uint8Array(0), signerCertificateDer: alice.certificateDer, signingKey: key, signingTime: SIGNING_TIME, includeCertificate: true });
    expect((await verifySignedData(der)).content).toEqual(new Uint8Array(0));
    const withoutKey = { content: CONTENT, signerCertificateDer: alice.certificateDer, signingTime: SIGNING_TIME, includeCertificate: true } as never;
    expect((await cmsErrorOf(() => signContent(withoutKey))).code).toBe('invalid-argument');
  });

  it('leaves Node Buffer inputs untouched (Buffer.slice shares memory) and can verify them twice', async () => {
    const alice = await identity('sip:alice@example.com');
    const der = Buffer.from(await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true }));
    const before = Buffer.from(der);
    const first = await verifySignedData(der);
    expect(der.equals(before)).toBe(true);
    await verifySignedData(der);
    // What we return is ours: overwriting the input does not change it.
    der.fill(0);
    expect(first.content).toEqual(CONTENT);
    expect(first.signerCertificateDer).toEqual(alice.certificateDer);
  });

  it('does not sign with a stale key when the caller reuses its PKCS#8 buffer', async () => {
    const alice = await identity('sip:alice@example.com');
    const mallory = await identity('sip:mallory@example.com');
    const buffer = alice.privateKeyPkcs8.slice();
    const sign = (certificate: Uint8Array): Promise<Uint8Array> =>
      signContent({ content: CONTENT, signerCertificateDer: certificate, privateKeyPkcs8: buffer, signingTime: SIGNING_TIME, includeCertificate: true });
    await verifySignedData(await sign(alice.certificateDer));
    buffer.set(mallory.privateKeyPkcs8); // same length: P-256 PKCS#8 from WebCrypto
    await verifySignedData(await sign(mallory.certificateDer));
  });

  it('keeps signingTime across the UTCTime / GeneralizedTime boundary (RFC 5652 §11.3)', async () => {
    const alice = await identity('sip:alice@example.com');
    for (const time of ['1950-01-01T00:00:00Z', '2049-12-31T23:59:59Z', '2050-01-01T00:00:00Z', '2101-06-01T10:20:30Z']) {
      const der = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: new Date(time), includeCertificate: true });
      expect((await verifySignedData(der)).signingTime?.toISOString()).toBe(new Date(time).toISOString());
    }
    // Milliseconds are dropped: signingTime has whole seconds.
    const der = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: new Date('2026-03-01T12:00:00.999Z'), includeCertificate: true });
    expect((await verifySignedData(der)).signingTime?.toISOString()).toBe('2026-03-01T12:00:00.000Z');
  });

  it('signs and verifies a 1 MiB body', async () => {
    const alice = await identity('sip:alice@example.com');
    const big = Buffer.alloc(1 << 20, 'S/MIME ');
    const der = await signContent({ content: big, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true });
    expect(Buffer.from((await verifySignedData(der)).content).equals(big)).toBe(true);
  });
});

describe('independent cross-check with pkijs', () => {
  it('pkijs verifies what we sign (EC and RSA)', async () => {
    for (const id of [await identity('sip:alice@example.com'), await identity('sip:alice@example.com', 'RSA-2048')]) {
      const der = await signContent({ content: CONTENT, signerCertificateDer: id.certificateDer, privateKeyPkcs8: id.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true });
      const signedData = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(der)).content });
      const result = await signedData.verify({ signer: 0, checkChain: false, extendedMode: true });
      expect(result.signatureVerified).toBe(true);
    }
  });

  it('we verify what pkijs signs, including its constructed eContent for large bodies', async () => {
    const alice = await identity('sip:alice@example.com');
    const certificate = pkijs.Certificate.fromBER(toArrayBuffer(alice.certificateDer));
    const key = await crypto.subtle.importKey('pkcs8', alice.privateKeyPkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    for (const body of [CONTENT, new Uint8Array(100_000).fill(0x41)]) {
      const signedData = new pkijs.SignedData({
        version: 1,
        encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data, eContent: new asn1js.OctetString({ valueHex: toArrayBuffer(body) }) }),
        signerInfos: [new pkijs.SignerInfo({ version: 1, sid: new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber }) })],
        certificates: [certificate],
      });
      signedData.signerInfos[0]!.signedAttrs = new pkijs.SignedAndUnsignedAttributes({
        type: 0,
        attributes: [
          new pkijs.Attribute({ type: OID.contentType, values: [new asn1js.ObjectIdentifier({ value: OID.data })] }),
          new pkijs.Attribute({ type: OID.signingTime, values: [new asn1js.UTCTime({ valueDate: SIGNING_TIME })] }),
          new pkijs.Attribute({ type: OID.messageDigest, values: [new asn1js.OctetString({ valueHex: toArrayBuffer(sha256(body)) })] }),
        ],
      });
      await signedData.sign(key, 0, 'SHA-256');
      const der = new Uint8Array(new pkijs.ContentInfo({ contentType: OID.signedData, content: signedData.toSchema(true) }).toSchema().toBER(false));
      // pkijs writes eContent as a constructed OCTET STRING of 64 KiB segments (BER).
      const [, explicit] = readSequence(readDer(der, 'ContentInfo'), 'ContentInfo');
      const encapsulated = readSequence(readChildren(explicit!, 'x')[0], 'SignedData')[2];
      const eContent = readChildren(readSequence(encapsulated, 'encap')[1]!, 'eContent')[0]!;
      expect(eContent.constructed).toBe(true);
      const verified = await verifySignedData(der);
      expect(Buffer.from(verified.content).equals(body)).toBe(true);
      expect(verified.signingTime).toEqual(SIGNING_TIME);
    }
  });
});

describe('what verifySignedData refuses', () => {
  it('tampered content, signed attributes or signature: bad-signature', async () => {
    for (const algorithm of ['ECDSA-P256', 'RSA-2048'] as const) {
      const alice = await identity('sip:alice@example.com', algorithm);
      const der = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true });
      const contentAt = indexOf(der, CONTENT);
      const digestAt = indexOf(der, sha256(CONTENT));
      const timeAt = indexOf(der, derTime(SIGNING_TIME));
      expect(Math.min(contentAt, digestAt, timeAt)).toBeGreaterThan(0);
      for (const at of [contentAt + 40, digestAt + 5, timeAt + 6, der.length - 3]) {
        const error = await cmsErrorOf(() => verifySignedData(flipped(der, at)));
        expect([at, error.code]).toEqual([at, 'bad-signature']);
      }
    }
  });

  it('zero signers (a certs-only body) and several signers', async () => {
    const alice = await identity('sip:alice@example.com');
    expect((await cmsErrorOf(() => verifySignedData(certsOnly([alice.certificateDer])))).code).toBe('no-signer');
    const two = await buildSignedData({ signer: alice, signerInfos: 2 });
    expect((await cmsErrorOf(() => verifySignedData(two))).code).toBe('several-signers');
    // The same builder with one signer verifies, so the refusal is about the count.
    expect((await verifySignedData(await buildSignedData({ signer: alice }))).content).toEqual(CONTENT);
  });

  it('missing, repeated or inconsistent signed attributes: malformed (RFC 5652 §11)', async () => {
    const alice = await identity('sip:alice@example.com');
    const contentType = derSequence(derOid(OID.contentType), derSetOf([derOid(OID.data)]));
    const digest = derSequence(derOid(OID.messageDigest), derSetOf([derOctetString(sha256(CONTENT))]));
    const cases: [string, Uint8Array[]][] = [
      ['no contentType', [digest]],
      ['no messageDigest', [contentType]],
      ['contentType twice', [contentType, digest, contentType]],
      ['two contentType values', [derSequence(derOid(OID.contentType), derTlv(0x31, derOid(OID.data), derOid(OID.signedData))), digest]],
      ['contentType not eContentType', [derSequence(derOid(OID.contentType), derSetOf([derOid(OID.signedData)])), digest]],
      ['signingTime not a time', [contentType, digest, derSequence(derOid(OID.signingTime), derSetOf([derOctetString(Uint8Array.of(1))]))]],
    ];
    for (const [name, attributes] of cases) {
      const built = await buildSignedData({ signer: alice, attributes });
      const error = await cmsErrorOf(() => verifySignedData(built));
      expect([name, error.code]).toEqual([name, 'malformed']);
    }
    // Unknown extra attributes are fine (e.g. SMIMECapabilities).
    const withCapabilities = await buildSignedData({ signer: alice, attributes: [contentType, digest, derSequence(derOid(OID.smimeCapabilities), derSetOf([derSequence()]))] });
    const verified = await verifySignedData(withCapabilities);
    expect(verified.signingTime).toBeUndefined();
  });

  it('a wrong messageDigest attribute: bad-signature even though the signature over it is valid', async () => {
    const alice = await identity('sip:alice@example.com');
    const built = await buildSignedData({
      signer: alice,
      attributes: [
        derSequence(derOid(OID.contentType), derSetOf([derOid(OID.data)])),
        derSequence(derOid(OID.messageDigest), derSetOf([derOctetString(sha256(encoder.encode('something else')))])),
      ],
    });
    expect((await cmsErrorOf(() => verifySignedData(built))).code).toBe('bad-signature');
  });

  it('accepts no signed attributes at all (signature over the content, RFC 5652 §5.4)', async () => {
    const alice = await identity('sip:alice@example.com');
    const verified = await verifySignedData(await buildSignedData({ signer: alice, attributes: null }));
    expect(verified.content).toEqual(CONTENT);
    expect(verified.messageDigest).toEqual(sha256(CONTENT));
    expect(verified.signingTime).toBeUndefined();
  });

  it('verifies RSA-PSS (RFC 4056) and RSA signatures labelled rsaEncryption, as OpenSSL writes them', async () => {
    const bob = await identity('sips:bob@example.org', 'RSA-2048');
    const pssKey = await crypto.subtle.importKey('pkcs8', bob.privateKeyPkcs8, { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign']);
    const sha256Id = derAlgorithm(OID.sha256);
    const pssParameters = derSequence(
      derExplicit(0, sha256Id),
      derExplicit(1, derSequence(derOid(OID.mgf1), sha256Id)),
      derExplicit(2, derSmallInteger(32)),
    );
    const pss = await buildSignedData({
      signer: bob,
      signatureAlgorithm: derAlgorithm(OID.rsassaPss, pssParameters),
      sign: async (data) => new Uint8Array(await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, pssKey, data)),
    });
    expect((await verifySignedData(pss)).signatureAlgorithm).toBe('RSA-PSS');
    // MGF1 with another hash than the message: WebCrypto cannot, so unsupported.
    const mixed = await buildSignedData({
      signer: bob,
      signatureAlgorithm: derAlgorithm(OID.rsassaPss, derSequence(derExplicit(0, sha256Id), derExplicit(2, derSmallInteger(32)))),
      sign: async (data) => new Uint8Array(await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, pssKey, data)),
    });
    expect((await cmsErrorOf(() => verifySignedData(mixed))).code).toBe('unsupported-algorithm');
    const plainRsa = await buildSignedData({ signer: bob, signatureAlgorithm: derAlgorithm(OID.rsaEncryption, Uint8Array.of(5, 0)) });
    expect((await verifySignedData(plainRsa)).signatureAlgorithm).toBe('RSASSA-PKCS1-v1_5');
  });

  it('an algorithm that does not fit the key, or an unknown digest: unsupported-algorithm', async () => {
    const alice = await identity('sip:alice@example.com');
    const rsaOnEc = await buildSignedData({ signer: alice, signatureAlgorithm: derAlgorithm(OID.sha256WithRsaEncryption) });
    expect((await cmsErrorOf(() => verifySignedData(rsaOnEc))).code).toBe('unsupported-algorithm');
    const der = await buildSignedData({ signer: alice });
    const md5 = Buffer.from(der);
    // Replace the SignerInfo digest OID sha256 (…04 02 01) by an unknown …04 02 7f.
    const sha256Oid = derOid(OID.sha256);
    const last = md5.lastIndexOf(Buffer.from(sha256Oid));
    md5[last + sha256Oid.length - 1] = 0x7f;
    expect((await cmsErrorOf(() => verifySignedData(new Uint8Array(md5)))).code).toBe('unsupported-algorithm');
  });

  it('another content type, and things that are not CMS at all', async () => {
    const alice = await identity('sip:alice@example.com');
    const signedOther = await buildSignedData({ signer: alice, eContentType: '1.2.840.113549.1.9.16.1.4' });
    expect((await cmsErrorOf(() => verifySignedData(signedOther))).code).toBe('unexpected-content-type');
    const enveloped = derSequence(derOid(OID.authEnvelopedData), derExplicit(0, derSequence()));
    expect((await cmsErrorOf(() => verifySignedData(enveloped))).code).toBe('unexpected-content-type');
    for (const bytes of [new Uint8Array(0), encoder.encode('Content-Type: text/plain\r\n\r\nhi'), Uint8Array.of(0x30, 0x80)]) {
      expect((await cmsErrorOf(() => verifySignedData(bytes))).code).toBe('malformed');
    }
  });

  it('deep nesting and absurd lengths fail fast instead of overflowing the stack', async () => {
    const deep = new Uint8Array(200_000);
    for (let i = 0; i < deep.length; i += 2) deep.set([0x30, 0x80], i);
    expect((await cmsErrorOf(() => verifySignedData(deep))).code).toBe('malformed');
    expect((await cmsErrorOf(() => verifySignedData(Uint8Array.of(0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0)))).code).toBe('malformed');
    expect((await cmsErrorOf(() => verifySignedData(Uint8Array.of(0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1)))).code).toBe('malformed');
    expect((await cmsErrorOf(() => verifySignedData(Uint8Array.of(0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0)))).code).toBe('malformed');
  });
});

describe('hostile input, property-based', () => {
  it('random bytes give a CmsError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 800 }), async (bytes) => {
        await expect(verifySignedData(bytes)).rejects.toBeInstanceOf(CmsError);
      }),
      { numRuns: 1000 },
    );
  });

  it('flipped and truncated signed messages either verify to the same content or give a CmsError', async () => {
    const alice = await identity('sip:alice@example.com');
    const der = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true });
    await fc.assert(
      fc.asyncProperty(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(der.length), async (at, xor, cut) => {
        const mutated = der.slice(0, Math.max(cut, at + 1));
        mutated[at] = mutated[at]! ^ xor;
        try {
          const verified = await verifySignedData(mutated, { candidateCertificatesDer: [alice.certificateDer] });
          // Only bytes outside what is signed may change: the embedded certificate's own
          // signature, say, or the version number; never the content.
          expect(verified.content).toEqual(CONTENT);
        } catch (error) {
          expect(error).toBeInstanceOf(CmsError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('structured garbage (random DER trees under the right OIDs) gives a CmsError', async () => {
    const leaf = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => derTlv(0x04, b)),
      fc.constantFrom(derOid(OID.data), derOid(OID.signedData), derSmallInteger(1), derTime(SIGNING_TIME), Uint8Array.of(5, 0)),
    );
    const tree = fc.letrec<{ node: Uint8Array }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc.array(tie('node'), { maxLength: 5 }).map((children) => derSequence(...children)),
        fc.array(tie('node'), { maxLength: 5 }).map((children) => derTlv(0x31, ...children)),
        fc.array(tie('node'), { maxLength: 3 }).map((children) => derExplicit(0, ...children)),
      ),
    })).node;
    await fc.assert(
      fc.asyncProperty(tree, async (signedData) => {
        const der = derSequence(derOid(OID.signedData), derExplicit(0, signedData));
        await expect(verifySignedData(der)).rejects.toBeInstanceOf(CmsError);
        try {
          readCertsOnly(der);
        } catch (error) {
          expect(error).toBeInstanceOf(CmsError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('certs-only (RFC 8551 §3.6, the 493 body of RFC 3261 §23.2)', () => {
  it('round-trips one or several certificates, byte for byte', async () => {
    const alice = await identity('sip:alice@example.com');
    const bob = await identity('sips:bob@example.org', 'RSA-2048');
    expect(readCertsOnly(certsOnly([alice.certificateDer]))).toEqual([alice.certificateDer]);
    expect(readCertsOnly(certsOnly([alice.certificateDer, bob.certificateDer]))).toEqual([alice.certificateDer, bob.certificateDer]);
    // pkijs reads it as a SignedData without signers.
    const signedData = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(certsOnly([alice.certificateDer]))).content });
    expect(signedData.signerInfos).toEqual([]);
    expect(signedData.certificates).toHaveLength(1);
  });

  it('refuses an empty list, non-certificates, and a body that has signers', async () => {
    const alice = await identity('sip:alice@example.com');
    expect((await cmsErrorOf(() => certsOnly([]))).code).toBe('invalid-argument');
    expect((await cmsErrorOf(() => certsOnly([Uint8Array.of(0x30, 0)]))).code).toBe('invalid-argument');
    const signed = await signContent({ content: CONTENT, signerCertificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8, signingTime: SIGNING_TIME, includeCertificate: true });
    expect((await cmsErrorOf(() => readCertsOnly(signed))).code).toBe('malformed');
    expect((await cmsErrorOf(() => readCertsOnly(Uint8Array.of(1)))).code).toBe('malformed');
  });
});

describe('der.ts helpers', () => {
  it('PEM: 64-column lines, several blocks, surrounding text ignored, bad base64 refused', () => {
    const der = new Uint8Array(100).map((_, i) => i);
    const pem = pemEncode('CERTIFICATE', der);
    expect(pem.split('\n')[1]).toHaveLength(64);
    expect(pemDecode(pem)).toEqual({ label: 'CERTIFICATE', der });
    expect(pemDecodeAll(`Bag Attributes\n${pem}junk\r\n${pemEncode('PRIVATE KEY', der.subarray(3)).replace(/\n/g, '\r\n')}`).map((b) => b.label)).toEqual([
      'CERTIFICATE',
      'PRIVATE KEY',
    ]);
    expect(() => pemDecode('nothing')).toThrow(CmsError);
    expect(() => pemDecode('-----BEGIN X-----\nab$d\n-----END X-----')).toThrow(CmsError);
  });

  it('OIDs encode and decode (X.690 §8.19)', () => {
    for (const oid of Object.values(OID)) expect(readOid(readDer(derOid(oid), 'oid'), 'oid')).toBe(oid);
    expect(Buffer.from(derOid(OID.sha256)).toString('hex')).toBe('0609608648016503040201');
    expect(() => readOid(readDer(Uint8Array.of(6, 2, 0x80, 1), 'oid'), 'oid')).toThrow(CmsError);
    expect(() => readOid(readDer(Uint8Array.of(6, 1, 0x81), 'oid'), 'oid')).toThrow(CmsError);
  });

  it('times: the UTCTime century rule, GeneralizedTime fractions, impossible dates refused', () => {
    const time = (tag: number, text: string): Date => readTime(readDer(derTlv(tag, encoder.encode(text)), 't'), 't');
    expect(time(0x17, '500101000000Z').toISOString()).toBe('1950-01-01T00:00:00.000Z');
    expect(time(0x17, '491231235959Z').toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(time(0x18, '20500101000000.25Z').toISOString()).toBe('2050-01-01T00:00:00.250Z');
    expect(time(0x18, '00500101000000Z').getUTCFullYear()).toBe(50);
    for (const bad of ['260230120000Z', '261301000000Z', '260101246000Z', '2601011200Z0', '260101120000+0100']) {
      expect(() => time(0x17, bad)).toThrow(CmsError);
    }
    expect(Buffer.from(derTime(new Date('2026-03-01T12:00:00.500Z'))).toString('latin1')).toBe('\x17\x0d260301120000Z');
    expect(Buffer.from(derTime(new Date('2050-03-01T12:00:00Z'))).toString('latin1')).toBe('\x18\x0f20500301120000Z');
    expect(() => derTime(new Date(Number.NaN))).toThrow(CmsError);
  });

  it('reads definite and indefinite lengths, and sorts SET OF', () => {
    const indefinite = Uint8Array.of(0x30, 0x80, 0x04, 0x01, 0xaa, 0x24, 0x80, 0x04, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x00);
    const children = readSequence(readDer(indefinite, 'x'), 'x');
    expect(children.map((c) => c.tagNumber)).toEqual([4, 4]);
    expect(readChildren(children[1]!, 'x')[0]!.content).toEqual(Uint8Array.of(0xbb));
    expect(Buffer.from(derSetOf([Uint8Array.of(4, 1, 2), Uint8Array.of(4, 1, 1), Uint8Array.of(2, 1, 9)])).toString('hex')).toBe('3109020109040101040102');
    for (const length of [0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 24]) {
      const element = derTlv(0x04, new Uint8Array(length));
      expect(readDer(element, 'x').content.length).toBe(length);
      expect(element.length - length).toBe(length < 128 ? 2 : length < 256 ? 3 : length < 65536 ? 4 : length < 1 << 24 ? 5 : 6);
    }
    // Constructed OCTET STRING segments nested without end are refused, not recursed into.
    let nested = derTlv(0x04, Uint8Array.of(1));
    for (let i = 0; i < 100; i++) nested = derTlv(0x24, nested);
    expect(() => readOctetString(readDer(nested, 'x'), 'x')).toThrow(CmsError);
    const long = derTlv(0x04, new Uint8Array(300));
    expect(Array.from(long.subarray(0, 4))).toEqual([0x04, 0x82, 0x01, 0x2c]);
    expect(readDer(long, 'x').content.length).toBe(300);
  });
});
