/**
 * AuthEnvelopedData (RFC 5083/5084) and legacy EnvelopedData: our own round trips, the exact
 * structure we write (RFC 8591 §4.2 algorithms), the X9.63 KDF and ECC-CMS-SharedInfo
 * (RFC 5753 §7.2), PKCS#1 v1.5 key transport, the error codes, and hostile input.
 * Interop with OpenSSL is in test/interop/openssl-enveloped.test.ts.
 *
 * Certificates here are minimal hand-built X.509 structures around WebCrypto keys: nothing in
 * the envelope code checks a certificate signature, so a zero signature will do.
 */
import { KeyObject, constants as cryptoConstants, publicEncrypt, randomBytes, type webcrypto } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { decryptEnveloped, encryptAuthEnveloped, openEnvelope } from '../../main/security/cms/auth-enveloped-data.js';
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
  derUnsignedInteger,
  isContext,
  readChildren,
  readDer,
  readOctetString,
  readOid,
  readSequence,
  type DerElement,
} from '../../main/security/cms/der.js';
import { eccCmsSharedInfo, pkcs1v15KeyOrFallback, recipientInfoFor, x963Kdf, type EnvelopeRecipient } from '../../main/security/cms/key-agreement.js';

const subtle = globalThis.crypto.subtle;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

// ---------------------------------------------------------------------------------------------
// Test identities

type KeyKind = 'P-256' | 'P-384' | 'P-521' | 'RSA' | 'Ed25519';

interface TestIdentity extends EnvelopeRecipient {
  readonly publicKey: webcrypto.CryptoKey;
}

let serialCounter = 1;

/** A v3 certificate: issuer = subject = CN, the given serial, the key, a subjectKeyIdentifier. */
function fakeCertificate(spki: Uint8Array, commonName: string, serial: number): Uint8Array {
  const name = derSequence(derSetOf([derSequence(derOid(OID.commonName), derTlv(0x0c, new TextEncoder().encode(commonName)))]));
  const tbs = derSequence(
    derExplicit(0, derSmallInteger(2)),
    derUnsignedInteger(Uint8Array.of(0x40, serial)),
    derAlgorithm(OID.ecdsaWithSha256),
    name,
    derSequence(derTime(new Date('2025-01-01T00:00:00Z')), derTime(new Date('2035-01-01T00:00:00Z'))),
    name,
    spki,
    derExplicit(3, derSequence(derSequence(derOid(OID.subjectKeyIdentifier), derOctetString(derOctetString(Uint8Array.of(1, 2, serial)))))),
  );
  return derSequence(tbs, derAlgorithm(OID.ecdsaWithSha256), derTlv(0x03, Uint8Array.of(0), new Uint8Array(64)));
}

async function makeIdentity(kind: KeyKind, commonName = `test ${kind}`): Promise<TestIdentity> {
  const keys =
    kind === 'RSA'
      ? await subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['encrypt', 'decrypt'])
      : kind === 'Ed25519'
        ? ((await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair)
        : await subtle.generateKey({ name: 'ECDH', namedCurve: kind }, true, ['deriveBits']);
  const spki = new Uint8Array(await subtle.exportKey('spki', keys.publicKey));
  return {
    certificateDer: fakeCertificate(spki, commonName, serialCounter++),
    privateKeyPkcs8: new Uint8Array(await subtle.exportKey('pkcs8', keys.privateKey)),
    publicKey: keys.publicKey,
  };
}

let alice: TestIdentity;
let bob: TestIdentity;
let bobRsa: TestIdentity;
let eve: TestIdentity;

beforeAll(async () => {
  [alice, bob, bobRsa, eve] = await Promise.all([makeIdentity('P-256', 'alice'), makeIdentity('P-256', 'bob'), makeIdentity('RSA', 'bob'), makeIdentity('P-256', 'eve')]);
});

async function rejection(promise: Promise<unknown>): Promise<CmsError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CmsError);
  return error as CmsError;
}

const MIME = new TextEncoder().encode('Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße, Bob\r\n');

// ---------------------------------------------------------------------------------------------
// Reading back what we wrote

interface Parsed {
  readonly contentType: string;
  readonly fields: DerElement[];
  readonly recipientInfos: DerElement[];
  readonly encryptedContentInfo: DerElement[];
}

function parse(der: Uint8Array): Parsed {
  const [type, explicit] = readSequence(readDer(der, 'ContentInfo'), 'ContentInfo');
  const [inner] = readChildren(explicit as DerElement, 'content');
  const fields = readSequence(inner, 'AuthEnvelopedData');
  return {
    contentType: readOid(type, 'type'),
    fields,
    recipientInfos: readChildren(fields[1] as DerElement, 'RecipientInfos'),
    encryptedContentInfo: readSequence(fields[2], 'EncryptedContentInfo'),
  };
}

describe('encryptAuthEnveloped', () => {
  it('round-trips for an EC recipient, an RSA recipient, and ourselves, with one content key', async () => {
    const der = await encryptAuthEnveloped({
      content: MIME,
      recipients: [{ certificateDer: bob.certificateDer }, { certificateDer: bobRsa.certificateDer }, { certificateDer: alice.certificateDer }],
    });
    for (const party of [bob, bobRsa, alice]) {
      const opened = await openEnvelope(der, party);
      expect(same(opened.content, MIME)).toBe(true);
      expect(opened.authenticated).toBe(true);
      expect(opened.contentType).toBe(OID.data);
      expect(opened.contentEncryptionAlgorithm).toBe(OID.aes128Gcm);
    }
    expect((await rejection(decryptEnveloped(der, eve))).code).toBe('no-recipient');
  });

  it.each(['P-384', 'P-521'] as const)('round-trips for a %s recipient', async (curve) => {
    const carol = await makeIdentity(curve);
    const der = await encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: carol.certificateDer }] });
    expect(same(await decryptEnveloped(der, carol), MIME)).toBe(true);
  });

  it('round-trips empty and large content', async () => {
    for (const content of [new Uint8Array(), new Uint8Array(randomBytes(300_000))]) {
      const der = await encryptAuthEnveloped({ content, recipients: [{ certificateDer: bob.certificateDer }] });
      expect(same(await decryptEnveloped(der, bob), content)).toBe(true);
    }
  });

  it('writes the RFC 5083/5084 structure with the RFC 8591 §4.2 algorithms', async () => {
    const der = await encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: bob.certificateDer }, { certificateDer: bobRsa.certificateDer }] });
    const { contentType, fields, recipientInfos, encryptedContentInfo } = parse(der);
    expect(contentType).toBe('1.2.840.113549.1.9.16.1.23');
    // version 0, recipientInfos, authEncryptedContentInfo, mac: no originatorInfo, no authAttrs
    expect(fields.map((f) => [f.tagClass, f.tagNumber])).toEqual([[0, 2], [0, 17], [0, 16], [0, 4]]);
    expect(hex((fields[0] as DerElement).content)).toBe('00');
    expect(readOctetString(fields[3], 'mac').length).toBe(16);

    const [innerType, algorithm, encryptedContent] = encryptedContentInfo as [DerElement, DerElement, DerElement];
    expect(readOid(innerType, 'type')).toBe(OID.data);
    const [algorithmOid, gcmParameters] = readSequence(algorithm, 'alg');
    expect(readOid(algorithmOid, 'oid')).toBe('2.16.840.1.101.3.4.1.6');
    const [nonce, icvLength] = readSequence(gcmParameters, 'GCMParameters');
    expect(readOctetString(nonce, 'nonce').length).toBe(12);
    expect(hex((icvLength as DerElement).content)).toBe('10');
    // [0] IMPLICIT, primitive, the ciphertext without the tag: as long as the plaintext
    expect([encryptedContent.tagClass, encryptedContent.tagNumber, encryptedContent.constructed]).toEqual([2, 0, false]);
    expect(encryptedContent.content.length).toBe(MIME.length);

    const kari = recipientInfos.find((ri) => isContext(ri, 1)) as DerElement;
    const [version, originator, keyEncryptionAlgorithm, recipientEncryptedKeys] = readChildren(kari, 'kari') as DerElement[];
    expect(hex(version!.content)).toBe('03');
    const originatorKey = readChildren(originator!, 'originator')[0] as DerElement;
    expect(isContext(originatorKey, 1)).toBe(true);
    const [keyAlgorithm, publicKey] = readChildren(originatorKey, 'originatorKey');
    expect(hex(keyAlgorithm!.bytes)).toBe(hex(derAlgorithm(OID.ecPublicKey))); // parameters absent
    expect(publicKey!.content.length).toBe(66); // unused-bits octet + uncompressed P-256 point
    expect(publicKey!.content[1]).toBe(0x04);
    expect(hex(keyEncryptionAlgorithm!.bytes)).toBe(hex(derAlgorithm('1.3.132.1.11.1', derAlgorithm('2.16.840.1.101.3.4.1.5'))));
    const [recipientEncryptedKey] = readChildren(recipientEncryptedKeys!, 'reks');
    const [rid, wrapped] = readSequence(recipientEncryptedKey, 'rek');
    expect(readOctetString(wrapped, 'wrapped').length).toBe(24); // AES-KW of a 16-octet key
    const [issuer, serial] = readSequence(rid, 'issuerAndSerialNumber');
    expect(hex(issuer!.bytes)).toBe(hex(readSequence(readSequence(readDer(bob.certificateDer, 'c'), 'c')[0], 'tbs')[3]!.bytes));
    expect(hex(serial!.content)).toBe(hex(readSequence(readSequence(readDer(bob.certificateDer, 'c'), 'c')[0], 'tbs')[1]!.content));

    const ktri = recipientInfos.find((ri) => ri.tagNumber === 16) as DerElement;
    const [ktriVersion, , ktriAlgorithm, encryptedKey] = readSequence(ktri, 'ktri');
    expect(hex(ktriVersion!.content)).toBe('00');
    expect(readOid(readSequence(ktriAlgorithm, 'alg')[0], 'oid')).toBe('1.2.840.113549.1.1.7');
    expect(readOctetString(encryptedKey, 'encryptedKey').length).toBe(256);
  });

  it('uses a fresh nonce, content key and ephemeral key every time', async () => {
    const first = parse(await encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: bob.certificateDer }] }));
    const second = parse(await encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: bob.certificateDer }] }));
    expect(hex(first.encryptedContentInfo[1]!.bytes)).not.toBe(hex(second.encryptedContentInfo[1]!.bytes));
    expect(hex(first.recipientInfos[0]!.bytes)).not.toBe(hex(second.recipientInfos[0]!.bytes));
    expect(hex(first.encryptedContentInfo[2]!.bytes)).not.toBe(hex(second.encryptedContentInfo[2]!.bytes));
  });

  it("refuses no recipients ('invalid-argument'), a key it cannot encrypt to ('unsupported-algorithm'), a broken certificate ('malformed')", async () => {
    expect((await rejection(encryptAuthEnveloped({ content: MIME, recipients: [] }))).code).toBe('invalid-argument');
    const edwards = await makeIdentity('Ed25519');
    expect((await rejection(encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: edwards.certificateDer }] }))).code).toBe('unsupported-algorithm');
    const broken = bob.certificateDer.subarray(0, 100);
    expect((await rejection(encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: broken }] }))).code).toBe('malformed');
  });
});

// ---------------------------------------------------------------------------------------------
// KDF and SharedInfo

describe('ANSI X9.63 KDF and ECC-CMS-SharedInfo (RFC 5753 §7.2)', () => {
  it('matches the NIST CAVS X9.63 SHA-256 vectors (one block, and many blocks with SharedInfo)', async () => {
    expect(hex(await x963Kdf('SHA-256', fromHex('96c05619d56c328ab95fe84b18264b08725b85e33fd34f08'), new Uint8Array(), 16))).toBe('443024c3dae66b95e6f5670601558f71');
    const long = await x963Kdf('SHA-256', fromHex('22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d'), fromHex('75eef81aa3041e33b80971203d2c0c52'), 128);
    expect(hex(long)).toBe(
      'c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21',
    );
  });

  it('writes keyInfo, no entityUInfo without a UKM, and the key length in bits', () => {
    expect(hex(eccCmsSharedInfo(derAlgorithm(OID.aes128Wrap), undefined, 16))).toBe('3015300b0609608648016503040105a206040400000080');
    expect(hex(eccCmsSharedInfo(derAlgorithm(OID.aes256Wrap), Uint8Array.of(0xab), 32))).toBe('301a300b060960864801650304012da0030401aba206040400000100');
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-built envelopes: authAttrs, EnvelopedData with AES-CBC, PKCS#1 v1.5 key transport

function contentInfo(type: string, inner: Uint8Array): Uint8Array {
  return derSequence(derOid(type), derExplicit(0, inner));
}

async function handBuiltAuthEnveloped(recipient: Uint8Array, options: { authAttrs?: Uint8Array; icvLength?: number } = {}): Promise<Uint8Array> {
  const tagLength = options.icvLength ?? 16;
  const contentKey = await subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['encrypt']);
  const nonce = randomBytes(12);
  // RFC 5083 §2.2: the AAD is authAttrs with a SET OF tag
  const additionalData = options.authAttrs ? derTlv(0x31, options.authAttrs) : undefined;
  const sealed = new Uint8Array(
    await subtle.encrypt({ name: 'AES-GCM', iv: nonce, tagLength: tagLength * 8, ...(additionalData ? { additionalData } : {}) }, contentKey, MIME),
  );
  return contentInfo(
    OID.authEnvelopedData,
    derSequence(
      derSmallInteger(0),
      derSetOf([await recipientInfoFor(recipient, contentKey)]),
      derSequence(derOid(OID.data), derAlgorithm(OID.aes128Gcm, derSequence(derOctetString(nonce), derSmallInteger(tagLength))), derTlv(0x80, sealed.subarray(0, -tagLength))),
      ...(options.authAttrs ? [derTlv(0xa1, options.authAttrs)] : []),
      derOctetString(sealed.subarray(-tagLength)),
    ),
  );
}

async function handBuiltCbcEnveloped(recipient: Uint8Array, keyBits: 128 | 256, content: Uint8Array = MIME): Promise<{ der: Uint8Array; ciphertext: Uint8Array }> {
  const contentKey = await subtle.generateKey({ name: 'AES-CBC', length: keyBits }, true, ['encrypt']);
  const iv = randomBytes(16);
  const ciphertext = new Uint8Array(await subtle.encrypt({ name: 'AES-CBC', iv }, contentKey, content));
  const der = contentInfo(
    OID.envelopedData,
    derSequence(
      derSmallInteger(2),
      derSetOf([await recipientInfoFor(recipient, contentKey)]),
      derSequence(derOid(OID.data), derAlgorithm(keyBits === 128 ? OID.aes128Cbc : OID.aes256Cbc, derOctetString(iv)), derTlv(0x80, ciphertext)),
    ),
  );
  return { der, ciphertext };
}

/** A KeyTransRecipientInfo with rsaEncryption (PKCS#1 v1.5), its key block built by `encode`. */
async function pkcs1v15Message(encode: (contentKey: Uint8Array) => Uint8Array): Promise<Uint8Array> {
  const contentKeyBytes = randomBytes(16);
  const contentKey = await subtle.importKey('raw', contentKeyBytes, 'AES-GCM', false, ['encrypt']);
  const nonce = randomBytes(12);
  const sealed = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: nonce }, contentKey, MIME));
  const publicKey = KeyObject.from(bobRsa.publicKey);
  const encryptedKey = publicEncrypt({ key: publicKey, padding: cryptoConstants.RSA_NO_PADDING }, encode(contentKeyBytes));
  const [tbs] = readSequence(readDer(bobRsa.certificateDer, 'cert'), 'cert');
  const tbsFields = readSequence(tbs, 'tbs');
  const ktri = derSequence(
    derSmallInteger(0),
    derSequence(tbsFields[3]!.bytes, tbsFields[1]!.bytes),
    derAlgorithm(OID.rsaEncryption, Uint8Array.of(0x05, 0x00)),
    derOctetString(encryptedKey),
  );
  return contentInfo(
    OID.authEnvelopedData,
    derSequence(
      derSmallInteger(0),
      derSetOf([ktri]),
      derSequence(derOid(OID.data), derAlgorithm(OID.aes128Gcm, derSequence(derOctetString(nonce), derSmallInteger(16))), derTlv(0x80, sealed.subarray(0, -16))),
      derOctetString(sealed.subarray(-16)),
    ),
  );
}

/** EME-PKCS1-v1_5 (RFC 8017 §7.2.1) for a 2048-bit modulus: 00 ‖ blockType ‖ non-zero padding ‖ 00 ‖ message. */
function emePkcs1v15(message: Uint8Array, { blockType = 2 } = {}): Uint8Array {
  const paddingLength = 256 - 3 - message.length;
  const block = new Uint8Array(256);
  block[1] = blockType;
  const padding = randomBytes(paddingLength).map((b) => b || 1);
  block.set(padding, 2);
  block[2 + paddingLength] = 0;
  block.set(message, 3 + paddingLength);
  return block;
}

describe('decryptEnveloped on hand-built messages', () => {
  it('authenticates authAttrs as GCM additional data (RFC 5083 §2.2)', async () => {
    const attribute = derSequence(derOid(OID.contentType), derSetOf([derOid(OID.data)]));
    const der = await handBuiltAuthEnveloped(bob.certificateDer, { authAttrs: attribute });
    expect(same(await decryptEnveloped(der, bob), MIME)).toBe(true);
    // change the attribute's OID (id-data → id-signedData): same length, different AAD
    const tampered = Uint8Array.from(der);
    const at = Buffer.from(tampered).indexOf(Buffer.from(derTlv(0xa1, attribute)));
    expect(at).toBeGreaterThan(0);
    const dataOidEnd = at + derTlv(0xa1, attribute).length - 1;
    tampered[dataOidEnd] = 2;
    expect((await rejection(decryptEnveloped(tampered, bob))).code).toBe('decryption-failed');
  });

  it('accepts GCM tags of 12 octets (the DER default) and refuses an ICVlen outside 12..16', async () => {
    expect(same(await decryptEnveloped(await handBuiltAuthEnveloped(bob.certificateDer, { icvLength: 12 }), bob), MIME)).toBe(true);
    const der = await handBuiltAuthEnveloped(bob.certificateDer, { icvLength: 16 });
    const icv = Buffer.from(der).indexOf(Buffer.from([0x02, 0x01, 0x10]));
    const bad = Uint8Array.from(der);
    bad[icv + 2] = 17;
    expect((await rejection(decryptEnveloped(bad, bob))).code).toBe('malformed');
  });

  it('opens EnvelopedData with AES-128/256-CBC, marked not authenticated', async () => {
    for (const [party, bits] of [[bob, 128], [bobRsa, 256]] as const) {
      const { der } = await handBuiltCbcEnveloped(party.certificateDer, bits);
      const opened = await openEnvelope(der, party);
      expect(same(opened.content, MIME)).toBe(true);
      expect(opened.authenticated).toBe(false);
      expect(opened.contentEncryptionAlgorithm).toBe(bits === 128 ? OID.aes128Cbc : OID.aes256Cbc);
    }
  });

  it("a CBC ciphertext whose padding no longer checks is 'decryption-failed'", async () => {
    const { der, ciphertext } = await handBuiltCbcEnveloped(bob.certificateDer, 128, new Uint8Array(32));
    // Flipping the last octet of the second-to-last block flips the last plaintext octet: the padding breaks.
    const at = Buffer.from(der).indexOf(Buffer.from(ciphertext));
    const tampered = Uint8Array.from(der);
    tampered[at + ciphertext.length - 17] = (tampered[at + ciphertext.length - 17] as number) ^ 0x55;
    expect((await rejection(decryptEnveloped(tampered, bob))).code).toBe('decryption-failed');
  });

  it('decrypts RSAES-PKCS1-v1_5 key transport, and every broken encoding fails alike (RFC 3218 §2.3.2)', async () => {
    expect(same(await decryptEnveloped(await pkcs1v15Message((key) => emePkcs1v15(key)), bobRsa), MIME)).toBe(true);
    const broken: ((key: Uint8Array) => Uint8Array)[] = [
      (key) => emePkcs1v15(key, { blockType: 1 }), // wrong block type
      (key) => emePkcs1v15(key).map((b, i) => (i === 5 ? 0 : b)), // a zero within the first 8 padding octets
      (key) => emePkcs1v15(Uint8Array.from([...key, 1, 2, 3, 4, 5, 6, 7, 8])), // a 24-octet key for AES-128
      (key) => emePkcs1v15(key).map((b, i) => (i === 0 ? 0 : b || 1)), // no zero separator at all
    ];
    for (const encode of broken) {
      expect((await rejection(decryptEnveloped(await pkcs1v15Message(encode), bobRsa))).code).toBe('decryption-failed');
    }
  });
});

describe('EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2)', () => {
  const key = Uint8Array.from([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]); // zeros inside M must not matter
  const fallback = new Uint8Array(16).fill(0xee);
  const block = (...parts: (number | Uint8Array)[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' ? [p] : [...p])));
  const padding = (length: number): Uint8Array => new Uint8Array(length).fill(0x5a);

  it('returns M for a valid block, also with the shortest padding string (8 octets)', () => {
    expect(hex(pkcs1v15KeyOrFallback(block(0, 2, padding(237), 0, key), fallback))).toBe(hex(key));
    expect(hex(pkcs1v15KeyOrFallback(block(0, 2, padding(8), 0, key), fallback))).toBe(hex(key));
  });

  it.each([
    ['a padding string of 7 octets', block(0, 2, padding(7), 0, key)],
    ['block type 1', block(0, 1, padding(237), 0, key)],
    ['a non-zero first octet', block(1, 2, padding(237), 0, key)],
    ['a 24-octet message where 16 are due', block(0, 2, padding(229), 0, key, padding(8))],
    ['no zero separator', block(0, 2, padding(238), padding(16))],
    ['a zero early in the padding string', block(0, 2, padding(3), 0, padding(233), 0, key)],
  ])('returns the fallback for %s', (_label, encoded) => {
    expect(hex(pkcs1v15KeyOrFallback(encoded, fallback))).toBe(hex(fallback));
  });
});

// ---------------------------------------------------------------------------------------------
// Errors

describe('decryptEnveloped errors', () => {
  let message: Uint8Array;
  beforeAll(async () => {
    message = await encryptAuthEnveloped({ content: MIME, recipients: [{ certificateDer: bob.certificateDer }] });
  });

  it("is 'no-recipient' for a certificate with our issuer name but another serial number", async () => {
    const twin = await makeIdentity('P-256', 'bob'); // same issuer Name, different serial
    expect((await rejection(decryptEnveloped(message, twin))).code).toBe('no-recipient');
  });

  it("is 'decryption-failed' when the ciphertext, the tag or the wrapped key changes", async () => {
    const { encryptedContentInfo, recipientInfos } = parse(message);
    const wrappedKeyAt = Buffer.from(message).indexOf(Buffer.from(recipientInfos[0]!.bytes)) + recipientInfos[0]!.bytes.length - 1;
    const ciphertextAt = Buffer.from(message).indexOf(Buffer.from(encryptedContentInfo[2]!.content));
    for (const offset of [message.length - 1, ciphertextAt, ciphertextAt + 5, wrappedKeyAt]) {
      const tampered = Uint8Array.from(message);
      tampered[offset] = (tampered[offset] as number) ^ 0x01;
      expect((await rejection(decryptEnveloped(tampered, bob))).code).toBe('decryption-failed');
    }
  });

  it("is 'unsupported-algorithm' for AES-CCM content encryption", async () => {
    const ccm = Uint8Array.from(message);
    const gcmOid = derOid(OID.aes128Gcm);
    const at = Buffer.from(ccm).indexOf(Buffer.from(gcmOid));
    ccm[at + gcmOid.length - 1] = 7; // id-aes128-CCM (RFC 5084 §3.1)
    expect((await rejection(decryptEnveloped(ccm, bob))).code).toBe('unsupported-algorithm');
  });

  it("is 'unexpected-content-type' for another ContentInfo and 'malformed' for trailing bytes", async () => {
    const signed = contentInfo(OID.signedData, derSequence(derSmallInteger(1)));
    expect((await rejection(decryptEnveloped(signed, bob))).code).toBe('unexpected-content-type');
    expect((await rejection(decryptEnveloped(Uint8Array.from([...message, 0]), bob))).code).toBe('malformed');
  });

  it("is 'invalid-argument' for an unreadable certificate of ours and 'key-mismatch' for an unusable key", async () => {
    expect((await rejection(decryptEnveloped(message, { certificateDer: new Uint8Array(3), privateKeyPkcs8: bob.privateKeyPkcs8 }))).code).toBe('invalid-argument');
    expect((await rejection(decryptEnveloped(message, { certificateDer: bob.certificateDer, privateKeyPkcs8: new Uint8Array(10) }))).code).toBe('key-mismatch');
  });

  it('turns random bytes into CmsError only', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        await rejection(decryptEnveloped(bytes, bob));
      }),
      { numRuns: 500 },
    );
  });

  it('turns every truncation of a real message into CmsError only', async () => {
    for (let length = 0; length < message.length; length++) {
      await rejection(decryptEnveloped(message.subarray(0, length), bob));
    }
  });

  it('never returns other content than was sent, whatever octet is changed', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: message.length - 1 }), fc.integer({ min: 1, max: 255 }), async (offset, flip) => {
        const mutated = Uint8Array.from(message);
        mutated[offset] = (mutated[offset] as number) ^ flip;
        const outcome = await decryptEnveloped(mutated, bob).then(
          (content) => content,
          (error: unknown) => error,
        );
        if (outcome instanceof Uint8Array) expect(same(outcome, MIME)).toBe(true);
        else expect(outcome).toBeInstanceOf(CmsError);
      }),
      { numRuns: 400 },
    );
  });

  it('turns any changed octet of an AES-CBC EnvelopedData into content or CmsError only', async () => {
    const { der } = await handBuiltCbcEnveloped(bobRsa.certificateDer, 128);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: der.length - 1 }), fc.integer({ min: 1, max: 255 }), async (offset, flip) => {
        const mutated = Uint8Array.from(der);
        mutated[offset] = (mutated[offset] as number) ^ flip;
        // CBC is malleable, so changed content may come out: that is why it is marked unauthenticated.
        const outcome = await openEnvelope(mutated, bobRsa).then(
          (opened) => opened.authenticated,
          (error: unknown) => error,
        );
        if (typeof outcome === 'boolean') expect(outcome).toBe(false);
        else expect(outcome).toBeInstanceOf(CmsError);
      }),
      { numRuns: 300 },
    );
  });
});
